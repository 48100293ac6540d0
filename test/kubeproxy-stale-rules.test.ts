import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { NetNs } from "./support/netns";
import { scriptPath } from "../components/kubeproxy/scriptFiles";

/*
 * The node-side cleanup, for real, inside a network namespace of its own (iptables state is
 * per namespace, so the host's rules are never touched). Base rules (Cilium's chains, kubelet's
 * canary/hint/KUBE-FIREWALL, the operator's own) are loaded and saved; kube-proxy's rules are
 * then loaded on top; after the cleanup the save output must equal the base save byte for byte.
 */

const RULES = join(__dirname, "fixtures", "kubeproxy", "iptables");
const CLEANUP = scriptPath("stale-rules-cleanup");
const VERIFY = scriptPath("stale-rules-verify");

type Backend = "nft" | "legacy";
type Family = "iptables" | "ip6tables";
const FAMILIES: readonly { family: Family; suffix: string }[] = [
    { family: "iptables", suffix: "v4" },
    { family: "ip6tables", suffix: "v6" },
];

function rules(name: string): string {
    return readFileSync(join(RULES, name), "utf8");
}

/** Save output without the comment lines that carry timestamps. */
function saved(ns: NetNs, family: Family, backend: Backend): string {
    return ns
        .sh(`${family}-${backend}-save 2>/dev/null`)
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .join("\n");
}

function load(ns: NetNs, backend: Backend, which: "base" | "kube-proxy"): void {
    for (const { family, suffix } of FAMILIES) {
        const flags = which === "base" ? "" : "--noflush";
        ns.sh(`${family}-${backend}-restore ${flags}`, rules(`${which}-${suffix}.rules`));
    }
}

const skip = hostToolsMissing(["ip", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"]);

for (const backend of ["nft", "legacy"] as const) {
    test(`stale-rules cleanup removes kube-proxy's chains with iptables-${backend}, IPv4 and IPv6, and nothing else`, { skip }, (t) => {
        const ns = new NetNs("kpclean");
        t.after(() => ns.dispose());
        load(ns, backend, "base");
        const base = FAMILIES.map(({ family }) => saved(ns, family, backend));
        load(ns, backend, "kube-proxy");
        const loaded = FAMILIES.map(({ family }) => saved(ns, family, backend));
        for (const [i, text] of loaded.entries()) {
            assert.notEqual(text, base[i], "kube-proxy rules were loaded");
            assert.match(text, /^:KUBE-SVC-NPX46M4PTMTKRN6Y /m);
            assert.match(text, /^-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
        }

        const before = ns.try(`bash ${VERIFY}`);
        assert.equal(before.status, 1, "verify fails while KUBE-SVC chains exist");
        assert.match(before.stdout, new RegExp(`"stale":\\[[^\\]]*"iptables-${backend}"`));
        assert.match(before.stdout, new RegExp(`"ip6tables-${backend}"`));

        const first = ns.try(`bash ${CLEANUP} auto`);
        assert.equal(first.status, 0, first.stderr);
        const summary = JSON.parse(first.stdout.trim()) as { cleanedBackends: string[]; changedTables: string[]; changed: boolean };
        assert.deepEqual(summary.cleanedBackends, [backend], "auto picked the backend holding KUBE- chains");
        assert.deepEqual(summary.changedTables, [`iptables-${backend}`, `ip6tables-${backend}`]);

        const after = FAMILIES.map(({ family }) => saved(ns, family, backend));
        assert.deepEqual(after, base, "everything but kube-proxy's rules is byte-identical");
        assert.match(after[0] ?? "", /^:KUBE-FIREWALL /m, "kubelet's KUBE-FIREWALL stays");
        assert.match(after[0] ?? "", /^:KUBE-KUBELET-CANARY /m, "kubelet's canary stays");
        for (const text of after) {
            // The operator's rule mentions "-j KUBE-SERVICES" inside a comment; it must survive as text.
            const withoutNote = text
                .split("\n")
                .filter((l) => !l.includes("operator note"))
                .join("\n");
            assert.doesNotMatch(withoutNote, /KUBE-(SVC|SEP|EXT|SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|FORWARD|PROXY)/);
            assert.match(text, /CILIUM_PRE_mangle/);
            assert.match(text, /OPERATOR-SSH/);
        }

        const second = ns.try(`bash ${CLEANUP} auto`);
        assert.equal(second.status, 0, second.stderr);
        assert.equal((JSON.parse(second.stdout.trim()) as { changed: boolean }).changed, false, "second run changes nothing");
        assert.deepEqual(
            FAMILIES.map(({ family }) => saved(ns, family, backend)),
            base,
        );

        const verified = ns.try(`bash ${VERIFY}`);
        assert.equal(verified.status, 0, verified.stderr);
    });
}

test("an explicit backend cleans that backend and still fails while the other one holds kube-proxy chains", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    load(ns, "nft", "base");
    load(ns, "nft", "kube-proxy");
    load(ns, "legacy", "base");
    load(ns, "legacy", "kube-proxy");
    const run = ns.try(`bash ${CLEANUP} nft`);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /kube-proxy rules remain in: iptables-legacy ip6tables-legacy/);
    assert.doesNotMatch(saved(ns, "iptables", "nft"), /KUBE-SVC-/);
    const both = ns.try(`bash ${CLEANUP} auto`);
    assert.equal(both.status, 0, both.stderr);
    assert.doesNotMatch(saved(ns, "iptables", "legacy"), /KUBE-SVC-/);
});

test("a namespace without kube-proxy rules is left alone", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    load(ns, "nft", "base");
    const base = saved(ns, "iptables", "nft");
    const run = ns.try(`bash ${CLEANUP} auto`);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /"cleanedBackends":\[\],"changedTables":\[\],"changed":false/);
    assert.equal(saved(ns, "iptables", "nft"), base);
});

test("a bad backend argument is refused before anything is read", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    const run = ns.try(`bash ${CLEANUP} ipvs`);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /BACKEND must be auto, nft or legacy/);
});
