import { strict as assert } from "node:assert";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { plannedSteps, runDriftCheck, type PlannedCommand } from "../tools/driftCheck";
import { readStackFile, rawStackConfig, type StackFile } from "../tools/stackFile";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { scriptText } from "../components/commands/scripts";
import { STEP } from "../components/resourceNames";
import { CLUSTER_STEP_SCRIPTS, kubeProxyRepair, tproxyRepair, type RepairContext } from "../components/drift/repairs";
import { clusterFindings, type ClusterObservation } from "../components/drift/clusterFindings";
import { expectedActivation, staleStateFindings } from "../components/drift/nodeFindings";
import { exitCode, formatReport, drift, unchecked } from "../components/drift/findings";
import { ROOT } from "./support/stacks";
import { hostToolsMissing } from "./support/hostTools";
import { Scenario } from "./support/kubeproxyScenario";

/* The drift check's decisions and repairs, without a cluster or a node. */

function stackWith(overrides: Readonly<Record<string, unknown>>): StackFile {
    const file = readStackFile(ROOT, "prod");
    const config = { ...file.config };
    for (const [key, value] of Object.entries(overrides)) config[key] = JSON.stringify(value);
    return { ...file, config };
}

async function contextOf(stack: StackFile): Promise<{ config: MigrationConfig; ctx: RepairContext; steps: ReadonlyMap<string, PlannedCommand> }> {
    const result = validateStackConfig(stack.project, rawStackConfig(stack.config));
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const steps = await plannedSteps(stack, "prod");
    return { config: result.config, ctx: { stack: "prod", steps }, steps };
}

const CLEAN: ClusterObservation = {
    kubeProxy: { daemonSet: null, configMap: false, pods: [] },
    agents: [{ pod: "cilium-a", node: "m600", ok: true, checked: true, mode: "True", socketLB: true, nodePort: true }],
    agentsWanted: 1,
    errors: [],
};

test("the repair URNs are the offline plan's (tools/plan.ts resources.json), and the scripts named are the ones the steps embed", async () => {
    const { ctx, steps } = await contextOf(readStackFile(ROOT, "prod"));
    const out = mkdtempSync(path.join(tmpdir(), "kpr-drift-plan-"));
    try {
        const plan = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools", "plan.ts"), "--stack", "prod", "--out", out], {
            encoding: "utf8",
        });
        assert.equal(plan.status, 0, plan.stderr);
        const resources = JSON.parse(readFileSync(path.join(out, "resources.json"), "utf8")) as { urn: string; name: string; type: string }[];
        for (const r of resources.filter((x) => x.type.startsWith("command:"))) assert.equal(ctx.steps.get(r.name)?.urn, r.urn, r.name);
        assert.ok(resources.filter((x) => x.type.startsWith("command:")).length >= 10);
    } finally {
        rmSync(out, { recursive: true, force: true });
    }
    for (const [name, script] of Object.entries(CLUSTER_STEP_SCRIPTS)) {
        if (name === STEP.kubeProxyCanaryExclusion) continue;
        assert.equal(steps.get(name)?.create, scriptText(script), name);
    }
    assert.match(tproxyRepair(ctx, "m601"), /--replace '[^']+::tproxy-apply-m601' --replace '[^']+::tproxy-confirm-m601'$/);
});

test("kube-proxy back is repaired by the gate then the removal script with the step's own environment, never by replacing the removal", async () => {
    const { ctx } = await contextOf(readStackFile(ROOT, "prod"));
    const repair = kubeProxyRepair(ctx, false);
    const command = repair.split("   ")[0]!;
    assert.doesNotMatch(command, /pulumi/);
    assert.match(command, /^CILIUM_NAMESPACE=default bash components\/kubeproxy\/scripts\/kpr-gate\.sh && /);
    assert.match(command, /KUBE_PROXY_BACKUP_CONFIGMAP=kube-proxy-pre-cilium-kpr-backup .*bash components\/kubeproxy\/scripts\/kube-proxy-remove\.sh$/);
});

test("during a canary: kube-proxy is expected off the canary nodes only; a pod there, or a lost exclusion, is drift repaired by the exclusion", async () => {
    const { config, ctx } = await contextOf(stackWith({ migration: { canaryNodes: ["m601"] } }));
    const ds = { canaryExclusion: true, desired: 2 };
    const running = [
        { name: "kube-proxy-a", node: "m600" },
        { name: "kube-proxy-c", node: "storage" },
    ];
    assert.deepEqual(clusterFindings(config, { ...CLEAN, kubeProxy: { daemonSet: ds, configMap: true, pods: running } }, ctx), []);

    const back = clusterFindings(
        config,
        {
            ...CLEAN,
            kubeProxy: { daemonSet: { canaryExclusion: false, desired: 3 }, configMap: true, pods: [...running, { name: "kube-proxy-b", node: "m601" }] },
        },
        ctx,
    );
    assert.deepEqual(
        back.map((f) => `${f.scope} ${f.status} ${f.kind}`),
        ["cluster drift kube-proxy-back", "m601 drift kube-proxy-back"],
    );
    assert.match(back[1]!.detail, /kube-proxy pod kube-proxy-b runs on canary node m601/);
    assert.match(back[0]!.repair!, /CANARY_NODES=m601 .*bash components\/kubeproxy\/scripts\/kube-proxy-exclude\.sh/);
});

test("without KPR kube-proxy is supposed to stay: nothing in the cluster counts as drift", async () => {
    const { config, ctx } = await contextOf(
        stackWith({ cilium: { ...JSON.parse(readStackFile(ROOT, "prod").config.cilium!), kubeProxyReplacement: false, bpfMasquerade: false } }),
    );
    const observed: ClusterObservation = {
        ...CLEAN,
        kubeProxy: { daemonSet: { canaryExclusion: false, desired: 3 }, configMap: true, pods: [{ name: "kp", node: "m600" }] },
    };
    assert.deepEqual(clusterFindings(config, observed, ctx), []);
});

test("kubectl failures are 'could not check' with kubectl's words; fewer agents than wanted is not a clean bill", async () => {
    const { config, ctx } = await contextOf(readStackFile(ROOT, "prod"));
    const words = "The connection to the server 172.25.4.1:6444 was refused - did you specify the right host or port?";
    const findings = clusterFindings(
        config,
        {
            ...CLEAN,
            kubeProxy: { daemonSet: "unreadable", configMap: "unreadable", pods: "unreadable" },
            agentsWanted: 3,
            errors: [{ check: "kube-proxy DaemonSet", message: words }],
        },
        ctx,
    );
    assert.deepEqual(
        findings.map((f) => `${f.status} ${f.kind}`),
        ["unchecked kube-proxy-back", "unchecked agent-kpr"],
    );
    assert.equal(findings[0]!.detail, `kube-proxy DaemonSet: kubectl: ${words}`);
    assert.equal(exitCode(findings), 3);
});

test("stale-rules-verify's summary: stale kinds are drift, unverifiable checks and errors are not", async () => {
    const { config, ctx } = await contextOf(readStackFile(ROOT, "prod"));
    const node = config.nodes[0]!;
    const run = (summary: unknown, status: number) => ({ status, stdout: `${JSON.stringify(summary)}\n`, stderr: "" });
    assert.deepEqual(staleStateFindings(node, run({ ok: true, stale: [], unverifiable: [] }, 0), ctx), []);
    const stale = staleStateFindings(node, run({ ok: false, stale: ["ipvs", "ipsets"], unverifiable: [], found: { ipsets: ["KUBE-CLUSTER-IP"] } }, 1), ctx);
    assert.deepEqual(
        stale.map((f) => `${f.status} ${f.kind}`),
        ["drift kube-proxy-state"],
    );
    assert.match(stale[0]!.detail, /ipvs, ipsets .*KUBE-CLUSTER-IP/);
    const partial = staleStateFindings(node, run({ ok: false, stale: [], unverifiable: ["ipvs: ipvsadm missing while ip_vs is loaded"] }, 1), ctx);
    assert.deepEqual(
        partial.map((f) => `${f.status} ${f.detail}`),
        ["unchecked ipvs: ipvsadm missing while ip_vs is loaded"],
    );
    assert.equal(staleStateFindings(node, run({ ok: false, error: "must run as root" }, 1), ctx)[0]!.status, "unchecked");
});

test("exit codes and the summary line keep drift, could-not-check and clean apart", () => {
    const d = drift("m600", "tproxy-table", "table inet x is missing", "pulumi up --replace u");
    const u = unchecked("m601", "node-access", "could not reach root@172.25.4.12:22");
    assert.equal(exitCode([]), 0);
    assert.equal(exitCode([u]), 3);
    assert.equal(exitCode([u, d]), 1);
    const report = formatReport("prod", ["cluster", "m600", "m601"], [d, u]);
    assert.match(report, /^m600: DRIFT tproxy-table: table inet x is missing\n {6}repair: pulumi up --replace u$/m);
    assert.match(report, /^m601: COULD NOT CHECK node-access: /m);
    assert.match(report, /^cluster: no drift$/m);
    assert.match(report, /^stack prod: DRIFT: 1 finding\(s\) in 1 place\(s\); 1 check\(s\) could not run$/m);
});

test("the command: usage and invalid config exit 2 with the reason", () => {
    const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools", "check.ts"), ...args], { encoding: "utf8" });
    const usage = run([]);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /usage: npm run check -- --stack <name>/);
    const dir = mkdtempSync(path.join(tmpdir(), "kpr-drift-bad-"));
    try {
        spawnSync("cp", [path.join(ROOT, "Pulumi.yaml"), path.join(ROOT, "Pulumi.prod.yaml"), dir]);
        spawnSync("sed", ["-i", "s/port: 7892/port: 78920/", path.join(dir, "Pulumi.prod.yaml")]);
        const bad = run(["--stack", "prod", "--stack-dir", dir]);
        assert.equal(bad.status, 2, bad.stdout + bad.stderr);
        assert.match(bad.stderr, /cilium-kpr:tproxy\.port: must be a port from 1 to 65535/);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test(
    "without --ssh-key-file or CILIUM_KPR_SSH_KEY_FILE the key comes from `pulumi config get`; when pulumi cannot run, every node is 'could not check' with the reason",
    { skip: hostToolsMissing(["jq", "timeout"]) || (["/usr/bin/pulumi", "/bin/pulumi"].some((p) => existsSync(p)) && "a pulumi CLI is installed in /usr/bin") },
    async (t) => {
        const scenario = new Scenario({ kubeProxy: false });
        t.after(() => scenario.dispose());
        const result = await runDriftCheck({
            stack: "prod",
            env: { PATH: `${path.join(scenario.dir, "bin")}:/usr/bin:/bin`, FAKE_CLUSTER_DIR: scenario.dir, HOME: scenario.dir },
        });
        assert.deepEqual(
            result.findings.map((f) => `${f.scope} ${f.status} ${f.kind}`),
            ["m600 unchecked node-access", "m601 unchecked node-access", "storage unchecked node-access"],
        );
        assert.match(result.findings[0]!.detail, /^no --ssh-key-file or CILIUM_KPR_SSH_KEY_FILE, and pulumi could not run: .*ENOENT/);
        assert.equal(exitCode(result.findings), 3);
    },
);

test("activation wanted: every diverted family in `all` mode, only the held VIPs' families in `vip` mode", async () => {
    const stack = readStackFile(ROOT, "prod");
    const tproxy = JSON.parse(stack.config.tproxy!) as Record<string, unknown>;
    const dual = { ...tproxy, vip6: "2001:db8:4::1" };
    const cluster = { ...(JSON.parse(stack.config.cluster!) as Record<string, unknown>), nodeCidrs: ["172.25.4.0/24", "2001:db8:4::/64"] };
    const vip = (await contextOf(stackWith({ tproxy: dual, cluster }))).config;
    const all = (await contextOf(stackWith({ tproxy: { ...dual, bindMode: "all" }, cluster }))).config;
    assert.deepEqual(expectedActivation(vip, new Set()), []);
    assert.deepEqual(expectedActivation(vip, new Set(["ipv6"] as const)), ["ipv6"]);
    assert.deepEqual(expectedActivation(vip, new Set(["ipv4", "ipv6"] as const)), ["ipv4", "ipv6"]);
    assert.deepEqual(expectedActivation(all, new Set()), ["ipv4", "ipv6"]);
});
