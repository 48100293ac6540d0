import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import * as fc from "fast-check";
import { hostToolsMissing } from "../lab/hostTools";
import { NetNs } from "../lab/netns";
import { tproxySchema } from "../components/config/schema";
import { renderBootUnit } from "../components/tproxy/bootUnit";
import { NODE_FILES, renderNodeBundle, type BundleFile, type NodeBundle, type NodeFile } from "../components/tproxy/nodeBundle";
import { bootScriptPath, DEFAULT_NODE_LAYOUT } from "../components/tproxy/nodeLayout";
import { scriptPath, scriptText } from "../components/commands/scripts";
import { heredocTerminator, MAX_COMMAND_BYTES } from "../components/commands/remoteCommand";
import { policyRouteArgs, policyRouteSpec, renderNetworkdDropIn, type PolicyRouteSpec } from "../components/tproxy/policyRoutes";
import { applyCommand, confirmCommand, deleteCommand, remoteSettings } from "../components/tproxy/tproxyCommands";

const SPEC: PolicyRouteSpec = { mark: 0x1, table: 100, priority: 1000, families: ["ipv4", "ipv6"] };
const RULESET = "table inet t {}\ndelete table inet t\ntable inet t {\n}\n";
const SCRIPT = scriptPath("tproxy/policy-routes");
const NODE_SCRIPTS_DIR = path.dirname(SCRIPT);
/** The texts run under the login shell of a node's user: check them with a strict POSIX shell when there is one. */
/** The node runner's hand-over to the node script (components/commands/scripts/node-runner.sh), carried inline without a store. */
const RUNS_THE_SCRIPT = /^"\$@" <\/dev\/null >"\$ckpr_stage\/\.stdout" \|\| ckpr_status=\$\?$/m;
const POSIX_SH = existsSync("/bin/dash") || existsSync("/usr/bin/dash") ? "dash" : "sh";

describe("policy route parameters and boot persistence", () => {
    test("families follow the configured VIPs; the mark is rendered as ip prints it", () => {
        const v4 = tproxySchema.parse({ enabled: true, vip4: "172.25.4.1" });
        assert.deepEqual(policyRouteSpec(v4), { mark: 1, table: 100, priority: 1000, families: ["ipv4"] });
        const dual = tproxySchema.parse({ enabled: true, vip4: "172.25.4.1", vip6: "fd00::1", mark: "0x10", routeTable: 7, rulePriority: 900 });
        assert.deepEqual(policyRouteArgs(policyRouteSpec(dual)), ["0x10", "7", "900", "ipv4,ipv6"]);
        assert.throws(() => policyRouteArgs({ ...SPEC, families: [] }), /at least one family/);
        assert.throws(() => policyRouteArgs({ ...SPEC, priority: 40000 }), /out of range/);
    });

    test("the unit runs tproxy-boot.sh (revert an unconfirmed apply, routes, table + activation), orders itself before keepalived", () => {
        const notify = "/etc/keepalived/cilium-kpr-tproxy-notify.sh";
        const unit = renderBootUnit(SPEC, DEFAULT_NODE_LAYOUT, { tableName: "t", activationScriptPath: notify });
        const networkdDropIn = renderNetworkdDropIn(SPEC);
        const script = renderNodeBundle({ tableName: "t", ruleset: RULESET, routes: SPEC }).files.find(
            (f) => f.path === DEFAULT_NODE_LAYOUT.routesScriptPath,
        )?.content;
        const lines = unit.split("\n");
        const boot = `/bin/bash ${DEFAULT_NODE_LAYOUT.stateDir}/bin/tproxy-boot.sh`;
        const rest = `${DEFAULT_NODE_LAYOUT.stateDir} ${DEFAULT_NODE_LAYOUT.rulesetPath} ${DEFAULT_NODE_LAYOUT.routesScriptPath} ${notify} t 0x1 100 1000 ipv4,ipv6`;
        assert.deepEqual(
            lines.filter((l) => l.startsWith("ExecStart=")),
            [`ExecStart=${boot} start ${rest}`],
        );
        assert.deepEqual(
            lines.filter((l) => l.startsWith("ExecStop=")),
            // "-": after a boot-time revert of a first apply the script is gone, and stopping must still succeed.
            [`ExecStop=-${boot} stop ${rest}`],
        );
        assert.equal(bootScriptPath(DEFAULT_NODE_LAYOUT), `${DEFAULT_NODE_LAYOUT.stateDir}/bin/tproxy-boot.sh`);
        assert.ok(lines.includes("Type=oneshot") && lines.includes("RemainAfterExit=yes"));
        const after = lines.find((l) => l.startsWith("After="))?.split(/[= ]/) ?? [];
        for (const dep of ["network-online.target", "systemd-networkd.service", "nftables.service"]) assert.ok(after.includes(dep), dep);
        assert.ok(lines.includes("Before=keepalived.service"));
        const withoutNotify = renderBootUnit(SPEC, DEFAULT_NODE_LAYOUT, { tableName: "t" });
        assert.match(withoutNotify, / \/usr\/local\/lib\/cilium-kpr-tproxy\/policy-routes\.sh - t 0x1 /);
        assert.match(networkdDropIn, /^\[Network\]\nManageForeignRoutingPolicyRules=no\n$/m);
        assert.equal(script, readFileSync(SCRIPT, "utf8"));
    });

    test("systemd-analyze verify accepts the rendered unit", { skip: hostToolsMissing(["systemd-analyze"]) }, () => {
        const dir = mkdtempSync(path.join(tmpdir(), "kpr-unit-"));
        try {
            const layout = {
                ...DEFAULT_NODE_LAYOUT,
                unitPath: path.join(dir, "kpr-tproxy-test.service"),
                routesScriptPath: path.join(dir, "policy-routes.sh"),
                stateDir: path.join(dir, "state-tproxy"),
            };
            writeFileSync(layout.routesScriptPath, scriptText("tproxy/policy-routes"), { mode: 0o755 });
            mkdirSync(path.join(dir, "state-tproxy", "bin"), { recursive: true });
            writeFileSync(bootScriptPath(layout), scriptText("tproxy/tproxy-boot"), { mode: 0o700 });
            writeFileSync(layout.unitPath, renderBootUnit(SPEC, layout, { tableName: "t" }));
            const r = spawnSync("systemd-analyze", ["verify", layout.unitPath], { encoding: "utf8", timeout: 30_000 });
            assert.equal(r.status, 0, r.stderr);
            assert.doesNotMatch(r.stderr, /kpr-tproxy-test\.service/, r.stderr);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("node bundle", () => {
    const layout = DEFAULT_NODE_LAYOUT;
    test("carries ruleset, routes script, unit, drop-in and the keepalived notify script with their modes", () => {
        const notify = "#!/bin/bash\n";
        const bundle = renderNodeBundle({ tableName: "t", ruleset: RULESET, routes: SPEC, keepalivedNotify: notify });
        const fourFiles = [
            [layout.rulesetPath, "0600", "nft-ruleset"],
            [layout.routesScriptPath, "0755", "script"],
            [layout.unitPath, "0644", "systemd-unit"],
            [layout.networkdDropInPath, "0644", "config"],
        ];
        assert.deepEqual(
            bundle.files.map((f) => [f.path, f.mode, f.kind]),
            [...fourFiles, [layout.keepalivedNotifyPath, "0755", "activation-script"]],
        );
        assert.equal(bundle.files[0]?.content, RULESET);
        assert.equal(bundle.files[4]?.content, notify);
        const unitOf = (b: NodeBundle) => b.files.find((f) => f.kind === "systemd-unit")?.content ?? "";
        assert.match(unitOf(bundle), new RegExp(` ${layout.routesScriptPath} ${layout.keepalivedNotifyPath} t 0x1 `));
        // Without the notify script: no activation script, and the unit loads the table with plain nft -f.
        const bare = renderNodeBundle({ tableName: "t", ruleset: RULESET, routes: SPEC });
        assert.deepEqual(
            bare.files.map((f) => [f.path, f.mode, f.kind]),
            fourFiles,
        );
        assert.match(unitOf(bare), new RegExp(` ${layout.routesScriptPath} - t 0x1 `));
    });

    test("refuses unsafe or ambiguous files", () => {
        const base = { tableName: "t", ruleset: RULESET, routes: SPEC };
        // One more entry in the list, installed at the layout's (otherwise unused) notify path.
        const extra = ({ path: at, content, ...f }: Partial<BundleFile>) => {
            const entry: NodeFile = { path: "keepalivedNotifyPath", mode: "0644", owner: "root:root", content: () => content ?? "", kind: "file", ...f };
            return renderNodeBundle({ ...base, layout: { ...layout, keepalivedNotifyPath: at ?? "/etc/x" } }, [...NODE_FILES, entry]);
        };
        assert.equal(extra({}).files.at(-1)?.path, "/etc/x");
        assert.throws(() => extra({ path: "/etc/a b" }), /must be absolute/);
        assert.throws(() => extra({ path: "/etc/../x" }), /must be absolute/);
        assert.throws(() => extra({ path: "etc/x" }), /must be absolute/);
        assert.throws(() => extra({ mode: "0666" }), /writable/);
        assert.throws(() => extra({ mode: "644" }), /octal/);
        assert.throws(() => extra({ owner: "root" }), /user:group/);
        assert.throws(() => extra({ content: "a\0b" }), /NUL/);
        assert.throws(() => extra({ path: layout.unitPath }), /appears twice/);
        assert.throws(() => extra({ kind: "nft-ruleset" }), /second nft ruleset/);
        assert.throws(() => renderNodeBundle({ ...base, tableName: "t;x" }), /identifier/);
        assert.throws(() => renderNodeBundle({ ...base, layout: { ...layout, stateDir: "/var/lib" } }), /names tproxy/);
    });
});

describe("remote command texts", () => {
    const bundle = renderNodeBundle({ tableName: "t", ruleset: RULESET, routes: SPEC });
    const settings = remoteSettings(tproxySchema.parse({}));

    test("are deterministic, parse as POSIX sh, stay under sshd's argument limit and carry no key material", () => {
        for (const make of [applyCommand, confirmCommand, deleteCommand]) {
            const text = make(bundle, settings);
            assert.equal(text, make(bundle, settings), "same input, same text: no spurious Pulumi diffs");
            assert.ok(Buffer.byteLength(text) < MAX_COMMAND_BYTES);
            const parsed = spawnSync(POSIX_SH, ["-n"], { input: text, encoding: "utf8" });
            assert.equal(parsed.status, 0, parsed.stderr);
            assert.doesNotMatch(text, /PRIVATE KEY/);
        }
        assert.match(
            applyCommand(bundle, settings),
            /'\/var\/lib\/cilium-kpr-tproxy' 'auto' 'cilium-kpr-tproxy\.service' 't' '0x1' '100' '1000' 'ipv4,ipv6' '60'\n$/,
        );
        const huge = renderNodeBundle({ tableName: "t", ruleset: RULESET + "#".repeat(130_000) + "\n", routes: SPEC });
        assert.throws(() => applyCommand(huge, settings), /must stay below/);
        assert.throws(() => applyCommand(bundle, { ...settings, revertAfterSeconds: 0 }), /positive/);
    });

    test("the heredoc terminator never equals a line of the content", () => {
        fc.assert(
            fc.property(fc.string(), fc.array(fc.nat(3)), (text, extras) => {
                let content = text;
                // Plant the would-be terminators themselves into the content.
                for (const n of extras) {
                    const planted = heredocTerminator("F0", content);
                    content = `${content}\n${n % 2 === 0 ? planted : `${planted} `}`;
                }
                const terminator = heredocTerminator("F0", content);
                return !content.split("\n").includes(terminator);
            }),
            { numRuns: 300 },
        );
    });

    test("staged files arrive byte for byte through a POSIX shell, whatever they contain", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "kpr-stage-"));
        try {
            // Found by this property: dash lost the 0xCC byte of this file in a quoted heredoc.
            fc.assert(property(dir), { examples: [[["C\u0327\u0301", ""]]], numRuns: 60 });
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    function property(dir: string) {
        return fc.property(
            fc.array(
                fc.oneof(
                    fc.string(),
                    fc.string({ unit: "grapheme" }),
                    fc.string({ unit: "binary-ascii" }).filter((t) => !t.includes("\0")),
                    fc.constantFrom("", "\n", "no newline", "$HOME `id` $(id) 'q' \"d\" \\", "EOF\nCKPR_F4_0\n", "\t\r\n"),
                ),
                { minLength: 1, maxLength: 3 },
            ),
            (contents) => {
                const extraFiles: BundleFile[] = contents.map((content, i) => ({
                    path: `/etc/kpr-test/${i}`,
                    mode: "0644",
                    owner: "root:root",
                    content,
                    kind: "file",
                }));
                const b: NodeBundle = { ...bundle, files: [...bundle.files, ...extraFiles] };
                const out = mkdtempSync(path.join(dir, "o-"));
                // The real text, with the runner's final hand-over to the node script replaced by a copy.
                const text = applyCommand(b, settings).replace(RUNS_THE_SCRIPT, `cp -R "$ckpr_stage/." ${out}/ && : >"$ckpr_stage/.stdout"`);
                const r = spawnSync(POSIX_SH, ["-c", text], { encoding: "utf8" });
                assert.equal(r.status, 0, r.stderr);
                b.files.forEach((f, i) => assert.equal(readFileSync(path.join(out, "files", String(i)), "utf8"), f.content));
                assert.equal(readFileSync(path.join(out, "tproxy-apply.sh"), "utf8"), scriptText("tproxy/tproxy-apply"));
                return true;
            },
        );
    }

    test("a corrupted stage is refused before anything runs", () => {
        const text = applyCommand(bundle, settings).replace(RUNS_THE_SCRIPT, "echo SHOULD-NOT-RUN");
        // Flip one byte of the staged ruleset; the checksum list still names the original.
        const corrupted = text.replace("delete table inet t\n", "delete table inet u\n");
        assert.notEqual(corrupted, text);
        const r = spawnSync(POSIX_SH, ["-c", corrupted], { encoding: "utf8" });
        assert.notEqual(r.status, 0);
        assert.doesNotMatch(r.stdout, /SHOULD-NOT-RUN/);
        assert.match(r.stdout + r.stderr, /FAILED/);
    });
});

describe("policy-routes.sh on a real network namespace", { skip: hostToolsMissing(["ip"]) }, () => {
    const args = policyRouteArgs(SPEC);
    const routes = (ns: NetNs, action: string, a: readonly string[] = args) => ns.try(`bash ${SCRIPT} ${action} ${a.map((x) => `'${x}'`).join(" ")}`);
    const withNs = (fn: (ns: NetNs) => void) => () => {
        const ns = new NetNs("prt");
        try {
            fn(ns);
        } finally {
            ns.dispose();
        }
    };

    test(
        "up twice leaves exactly one rule per family and the local routes",
        withNs((ns) => {
            for (let i = 0; i < 2; i++) assert.equal(routes(ns, "up").status, 0);
            assert.equal(ns.sh("ip -N -4 rule show pref 1000"), "1000:\tfrom all fwmark 0x1 lookup 100\n");
            assert.equal(ns.sh("ip -N -6 rule show pref 1000"), "1000:\tfrom all fwmark 0x1 lookup 100\n");
            assert.equal(ns.sh("ip -4 route show table 100"), "local default dev lo scope host \n");
            assert.match(ns.sh("ip -6 route show table 100"), /^local default dev lo metric 1024/);
            assert.equal(routes(ns, "check").status, 0);
        }),
    );

    test(
        "down removes only ours: other rules and other routes in the table stay",
        withNs((ns) => {
            ns.sh(
                "ip -4 rule add pref 999 fwmark 0x1 lookup 100 && ip -4 rule add pref 1001 fwmark 0x2 lookup 101 && ip -4 route add 198.51.100.0/24 dev lo table 100",
            );
            const before = ns.sh("ip -4 rule; ip -6 rule; ip -4 route show table all; ip -6 route show table all");
            assert.equal(routes(ns, "up").status, 0);
            assert.notEqual(ns.sh("ip -4 rule; ip -6 rule; ip -4 route show table all; ip -6 route show table all"), before);
            assert.equal(routes(ns, "down").status, 0);
            assert.equal(ns.sh("ip -4 rule; ip -6 rule; ip -4 route show table all; ip -6 route show table all"), before);
            assert.equal(routes(ns, "down").status, 0, "down is idempotent");
        }),
    );

    test(
        "check reports each kind of drift",
        withNs((ns) => {
            assert.equal(routes(ns, "check").status, 1);
            assert.equal(routes(ns, "up").status, 0);
            ns.sh("ip -6 rule del pref 1000");
            let r = routes(ns, "check");
            assert.equal(r.status, 1);
            assert.match(r.stdout, /drift: ipv6 has 0 rule/);
            assert.equal(routes(ns, "up").status, 0, "up repairs");
            ns.sh("ip -4 route del local default dev lo table 100");
            r = routes(ns, "check");
            assert.match(r.stdout, /drift: ipv4 table 100 lacks/);
            assert.equal(routes(ns, "up").status, 0);
            ns.sh("ip -4 rule add pref 1000 fwmark 0x7 lookup 100");
            r = routes(ns, "check");
            assert.match(r.stdout, /drift: ipv4 has 1 foreign rule/);
        }),
    );

    test(
        "up refuses a priority held by someone else's rule, and an IPv6 route with lo down",
        withNs((ns) => {
            ns.sh("ip -4 rule add pref 1000 fwmark 0x9 lookup 90");
            const r = routes(ns, "up", policyRouteArgs({ ...SPEC, families: ["ipv4"] }));
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, /already holds a rule that is not ours/);
            assert.equal(ns.sh("ip -4 rule show pref 1000 fwmark 0x1"), "");
            ns.sh("ip link set lo down");
            const v6 = routes(ns, "up", policyRouteArgs({ ...SPEC, families: ["ipv6"] }));
            assert.notEqual(v6.status, 0);
            assert.match(v6.stderr, /lo is down/);
        }),
    );

    test(
        "rejects parameters that are not plain values",
        withNs((ns) => {
            for (const bad of [
                ["1", "100", "1000", "ipv4"],
                ["0x1", "1e2", "1000", "ipv4"],
                ["0x1", "100", "1000", "ipv4;id"],
                ["0x1", "100", "1000", "ipx"],
            ]) {
                assert.equal(routes(ns, "up", bad).status, 2, bad.join(" "));
            }
        }),
    );
});

test("every node script is shellcheck-clean", { skip: hostToolsMissing(["shellcheck"]) }, () => {
    const scripts = readdirSync(NODE_SCRIPTS_DIR).filter((f) => f.endsWith(".sh"));
    assert.ok(scripts.length >= 6, scripts.join(","));
    const r = spawnSync("shellcheck", ["-x", ...scripts], { cwd: NODE_SCRIPTS_DIR, encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
});
