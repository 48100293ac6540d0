import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import {
    NODE_PREFLIGHT_SCRIPT,
    OPERATOR_PREFLIGHT_SCRIPT,
    nodePreflightArgs,
    nodePreflightCommand,
    operatorPreflightEnv,
} from "../components/preflight/preflightArgs";
import { validateStackConfig, type MigrationConfig, type RawStackConfig } from "../components/config/validate";
import { hostToolsMissing } from "../lab/hostTools";
import { NetNs } from "../lab/netns";
import { PROJECT, rawStack, withValues } from "./support/stacks";

function config(raw: RawStackConfig): MigrationConfig {
    const result = validateStackConfig(PROJECT, raw);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return result.config;
}

test("node args come from the tproxy settings and the node; families follow the configured VIPs", () => {
    const prod = config(rawStack("prod"));
    assert.deepEqual(nodePreflightArgs(prod, prod.nodes[0]!), ["m600", "1", "0x1", "100", "1000", "ipv4", "auto"]);

    const dual = config(
        withValues(rawStack("prod"), {
            "tproxy.vip6": "2001:db8::1",
            "tproxy.mark": "0x20",
            "tproxy.routeTable": 300,
            "tproxy.rulePriority": 2000,
            "cluster.nodeCidrs": ["172.25.4.0/24", "2001:db8::/64"],
            "cluster.kubeProxy.iptablesBackend": "legacy",
        }),
    );
    assert.deepEqual(nodePreflightArgs(dual, dual.nodes[2]!), ["storage", "1", "0x20", "300", "2000", "ipv4,ipv6", "legacy"]);

    const off = config(rawStack("ipv6-native"));
    const args = nodePreflightArgs(off, off.nodes[0]!);
    assert.equal(args[1], "0");
    assert.equal(args[5], "none");
});

test("operator env carries the chart version, kube-proxy names, keepalived VIPs and the context only when set", () => {
    const prod = config(rawStack("prod"));
    assert.deepEqual(operatorPreflightEnv(prod), {
        CILIUM_VERSION: "1.19.0",
        // cilium/cilium#44464's verdict for 1.19.0, from components/ciliumVersions/ciliumVersions.ts.
        IPVS_HANG: "refuse",
        IPVS_HANG_MINOR: "1.19",
        IPVS_SAFE_MINOR: "1.18",
        KUBE_PROXY_NAMESPACE: "kube-system",
        KUBE_PROXY_DAEMONSET: "kube-proxy",
        KUBE_PROXY_CONFIGMAP: "kube-proxy",
        KEEPALIVED_VIPS: "172.25.4.1",
        NODEPORT_VIPS_SERVED: "",
        K8S_SERVICE_HOST: "172.25.4.1",
        NEEDS_HELM: "1",
    });
    const withContext = config(withValues(rawStack("prod"), { "cluster.context": "prod-admin", "cluster.kubeconfig": "/etc/kpr/kubeconfig" }));
    const env = operatorPreflightEnv(withContext);
    assert.equal(env["KUBECTL_CONTEXT"], "prod-admin");
    assert.equal(env["KUBECONFIG"], "/etc/kpr/kubeconfig");
});

test("the node command embeds node-preflight.sh byte for byte, its shared prelude inlined, and quotes every argument", () => {
    const prod = config(rawStack("prod"));
    const command = nodePreflightCommand(prod, prod.nodes[1]!);
    const file = readFileSync(NODE_PREFLIGHT_SCRIPT, "utf8");
    const prelude = readFileSync(path.join(path.dirname(NODE_PREFLIGHT_SCRIPT), "preflight-lib.sh"), "utf8");
    const sourceLines = '# shellcheck source=SCRIPTDIR/preflight-lib.sh\nsource "$(dirname "${BASH_SOURCE[0]}")/preflight-lib.sh"\n';
    assert.ok(file.includes(sourceLines), "the file sources the prelude");
    const script = file.replace(sourceLines, () => prelude.slice(prelude.indexOf("\n# preflight-lib.sh") + 1));
    // Carried as the runner's `-i NAME SHA256 TEXT`, TEXT one single-quoted word (a ' written as '\'').
    const embedded = (text: string) => /^ {2}-i 'node-preflight\.sh' [0-9a-f]{64} '((?:[^']|'\\'')*)' \\$/m.exec(text)![1]!.replace(/'\\''/g, "'");
    assert.equal(embedded(command), script);
    assert.match(command, / 'm601' '1' '0x1' '100' '1000' 'ipv4' 'auto'\n$/);
    // Quotes and lines that look like the text's own syntax stay inside the word.
    const tricky = `echo 'x'\n' \\\n  -- 'y'\nCKPR_RUNNER_X\n`;
    assert.equal(embedded(nodePreflightCommand(prod, prod.nodes[1]!, tricky)), tricky);
});

test(
    "the node command runs the script with its arguments as the remote shell would, and leaves no file behind",
    { skip: hostToolsMissing(["ip", "sh"]) },
    (t) => {
        const prod = config(rawStack("prod"));
        const ns = new NetNs("pfcmd");
        const scratch = mkdtempSync(path.join(tmpdir(), "kpr-preflight-cmd-"));
        t.after(() => {
            ns.dispose();
            rmSync(scratch, { recursive: true, force: true });
        });
        const r = spawnSync("ip", ["netns", "exec", ns.name, "env", `TMPDIR=${scratch}`, "sh", "-c", nodePreflightCommand(prod, prod.nodes[0]!)], {
            encoding: "utf8",
            timeout: 60_000,
        });
        const lines = r.stdout.split("\n").filter(Boolean);
        assert.equal(lines.length, 1, r.stderr);
        const report = JSON.parse(lines[0]!) as {
            ok: boolean;
            node: string;
            policyRouting: { mark: string; table: number; priority: number; families: string[] };
        };
        assert.equal(report.node, "m600");
        assert.deepEqual(report.policyRouting, { ...report.policyRouting, mark: "0x1", table: 100, priority: 1000, families: ["ipv4"] });
        // The command's exit status is the script's.
        assert.equal(r.status, report.ok ? 0 : 1, r.stderr);
        assert.deepEqual(readdirSync(scratch), []);
    },
);

test("both preflight scripts are shellcheck-clean", { skip: hostToolsMissing(["shellcheck"]) }, () => {
    for (const script of [NODE_PREFLIGHT_SCRIPT, OPERATOR_PREFLIGHT_SCRIPT]) {
        const r = spawnSync("shellcheck", ["-x", script], { encoding: "utf8", cwd: path.dirname(script) });
        assert.equal(r.status, 0, `${path.basename(script)}:\n${r.stdout}${r.stderr}`);
    }
});
