import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { SshLab } from "./support/sshLab";
import { Scenario, fixture, type JsonObject } from "./support/kubeproxyScenario";
import {
    DRIFT_NODE,
    DRIFT_STACK,
    DRIFT_TABLE,
    DRIFT_VIP4,
    labClientKey,
    publicKeyLine,
    relocatedBundle,
    removeDir,
    sshInClient,
    writeDriftStack,
} from "./support/driftLab";
import { runDriftCheck, type DriftCheckResult } from "../tools/driftCheck";
import { exitCode, formatReport, type Finding } from "../components/drift/findings";
import { applyCommand, confirmCommand, type RemoteSettings } from "../components/tproxy/tproxyCommands";
import { KEEPALIVED_NOTIFY_PATH } from "../components/tproxy/keepalivedNotify";
import { ROOT } from "./support/stacks";

/*
 * The drift check end to end: the cluster stand-in (fake kubectl) for the cluster, a real sshd node in
 * a network namespace for the node, the real program's apply for the node's starting state, and the
 * real check (tools/driftCheck.ts) with the node's pinned host key. Each drift kind is induced by hand
 * and must be named with its repair; a clean cluster must report no drift.
 */

const skip = hostToolsMissing(["nft", "ip", "iptables", "sshd", "ssh", "ssh-keygen", "flock", "unshare", "jq", "timeout", "sha256sum"]);
const settings: RemoteSettings = { revertAfterSeconds: 30, systemd: "off" };
const KUBEADM_V1BETA4 = (proxy: string) =>
    `apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.4\n${proxy}networking:\n  podSubnet: 203.0.113.128/25\n`;

function kubeadmConfig(clusterConfiguration: string): JsonObject {
    return {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "kubeadm-config", namespace: "kube-system" },
        data: { ClusterConfiguration: clusterConfiguration },
    };
}

describe("npm run check against the cluster stand-in and a namespace node", { skip }, () => {
    let lab: SshLab;
    let scenario: Scenario;
    let stackDir: string;
    const bundleFor = () => relocatedBundle(lab.root);

    async function check(dir = stackDir): Promise<DriftCheckResult> {
        return runDriftCheck({
            stack: DRIFT_STACK,
            stackDir: dir,
            sshKeyFile: labClientKey(lab),
            env: { ...process.env, PATH: `${path.join(scenario.dir, "bin")}:${process.env.PATH ?? ""}`, FAKE_CLUSTER_DIR: scenario.dir },
            runSsh: sshInClient(lab),
            bundleFor: bundleFor(),
        });
    }

    const kinds = (findings: readonly Finding[], status: Finding["status"] = "drift") =>
        findings
            .filter((f) => f.status === status)
            .map((f) => `${f.scope} ${f.kind}`)
            .sort();

    /** Exactly these drifts, and every check could run. */
    function expectDrift(result: DriftCheckResult, expected: readonly string[]): void {
        const message = JSON.stringify(result.findings, null, 1);
        assert.deepEqual(kinds(result.findings, "unchecked"), [], message);
        assert.deepEqual(kinds(result.findings), [...expected].sort(), message);
    }

    /** Puts node-a back the way the program leaves it: its own apply (idempotent, repairs routes) and confirm. */
    async function applyLikeTheProgram(): Promise<void> {
        const result = await check();
        const bundle = bundleFor()(result.config, result.config.nodes[0]!);
        const applied = lab.ssh(applyCommand(bundle, settings));
        assert.equal(applied.status, 0, applied.stderr);
        const confirmed = lab.ssh(confirmCommand(bundle, settings));
        assert.equal(confirmed.status, 0, confirmed.stderr);
    }

    before(async () => {
        // sshd's privilege-separation directory, left in place: a lab that created it removes it when it
        // is disposed, which breaks any other lab's sshd that is still running.
        mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        lab = new SshLab();
        await lab.start();
        // The cluster after the migration: kube-proxy gone, every agent with KPR, kubeadm told to keep it off.
        scenario = new Scenario({ nodes: [DRIFT_NODE, "node-b"], kubeProxy: false });
        scenario.put("kube-system", "configmap", "kubeadm-config", kubeadmConfig(KUBEADM_V1BETA4("proxy:\n  disabled: true\n")));
        stackDir = writeDriftStack(lab);
        await applyLikeTheProgram();
    });
    after(() => {
        lab?.dispose();
        scenario?.dispose();
        if (stackDir) removeDir(stackDir);
    });

    test("a clean cluster and node: no drift, exit 0, and the report says so", async () => {
        const result = await check();
        assert.deepEqual(result.findings, []);
        assert.equal(exitCode(result.findings), 0);
        const report = formatReport(DRIFT_STACK, result.scopes, result.findings);
        assert.match(report, /^cluster: no drift$/m);
        assert.match(report, /^node-a: no drift$/m);
        assert.match(report, /^stack lab: no drift \(cluster and 1 node\(s\) checked\)$/m);
        // Read-only on the cluster: only get and the gate's exec were sent.
        for (const call of scenario.calls()) {
            assert.ok(
                !call.args.some((a) => ["create", "replace", "delete", "patch", "apply", "edit", "annotate", "label", "scale"].includes(a)),
                call.args.join(" "),
            );
        }
    });

    test("the tproxy table missing, then differing from the rendered ruleset, is drift with the apply+confirm replace", async (t) => {
        t.after(applyLikeTheProgram);
        lab.node.sh(`nft delete table inet ${DRIFT_TABLE}`);
        let result = await check();
        expectDrift(result, ["node-a tproxy-table"]);
        const missing = result.findings[0]!;
        assert.match(missing.detail, new RegExp(`table inet ${DRIFT_TABLE} is missing`));
        assert.match(
            missing.repair!,
            /^pulumi up --stack lab --replace 'urn:pulumi:lab::cilium-kpr::.*\$command:remote:Command::tproxy-apply-node-a' --replace '.*::tproxy-confirm-node-a'$/,
        );
        assert.equal(exitCode(result.findings), 1);

        await applyLikeTheProgram();
        lab.node.sh(`nft insert rule inet ${DRIFT_TABLE} prerouting ip daddr 198.51.100.7 accept`);
        result = await check();
        expectDrift(result, ["node-a tproxy-table"]);
        assert.match(result.findings[0]!.detail, /differs from the rendered ruleset: .*\+\s*ip daddr 198\.51\.100\.7 accept/);
    });

    test("a policy rule removed (networkd) is tproxy-routes drift", async (t) => {
        t.after(applyLikeTheProgram);
        lab.node.sh("ip -4 rule del pref 1000");
        const result = await check();
        expectDrift(result, ["node-a tproxy-routes"]);
        assert.match(result.findings[0]!.detail, /ipv4 has 0 rule\(s\) 'fwmark 0x1 lookup 100' at priority 1000, want 1/);
    });

    test("an installed file changed by hand is tproxy-files drift", async (t) => {
        t.after(applyLikeTheProgram);
        const notify = path.join(lab.root, KEEPALIVED_NOTIFY_PATH);
        lab.node.sh(`echo '# edited' >> ${notify}`);
        const result = await check();
        expectDrift(result, ["node-a tproxy-files"]);
        assert.equal(result.findings[0]!.detail, `${notify} content differs`);
    });

    test("activation not matching VIP ownership, both ways; the named RECONCILE repairs it", async (t) => {
        const notify = path.join(lab.root, KEEPALIVED_NOTIFY_PATH);
        t.after(() => lab.node.try(`ip addr del ${DRIFT_VIP4}/24 dev eth0; ${notify} RECONCILE`));
        // Diverting switched on although this node does not hold the VIP.
        lab.node.sh(`nft add element inet ${DRIFT_TABLE} tproxy_active '{ ipv4 }'`);
        let result = await check();
        expectDrift(result, ["node-a activation"]);
        assert.match(result.findings[0]!.detail, /diverting ipv4 but should divert nothing \(bind mode vip; 192\.0\.2\.10 not held\)/);
        assert.match(result.findings[0]!.repair!, new RegExp(`${KEEPALIVED_NOTIFY_PATH} RECONCILE`));

        // The VIP arrives but keepalived's notify never ran: diverting is off on the VIP holder.
        lab.node.sh(`nft flush set inet ${DRIFT_TABLE} tproxy_active && ip addr add ${DRIFT_VIP4}/24 dev eth0`);
        result = await check();
        expectDrift(result, ["node-a activation"]);
        assert.match(result.findings[0]!.detail, /diverting nothing but should divert ipv4 \(bind mode vip; 192\.0\.2\.10 held\)/);

        // The repair the check names (the installed notify script with RECONCILE) clears it.
        const reconciled = lab.ssh(`${notify} RECONCILE`);
        assert.equal(reconciled.status, 0, reconciled.stderr);
        result = await check();
        assert.deepEqual(result.findings, []);
    });

    test("kube-proxy's iptables chains back on the node is kube-proxy-state drift naming the cleanup step", async (t) => {
        t.after(() => lab.node.try("iptables -t nat -F KUBE-SERVICES; iptables -t nat -X KUBE-SERVICES"));
        lab.node.sh("iptables -t nat -N KUBE-SERVICES && iptables -t nat -A KUBE-SERVICES -d 198.51.100.130/32 -p tcp --dport 443 -j RETURN");
        const result = await check();
        expectDrift(result, ["node-a kube-proxy-state"]);
        assert.match(result.findings[0]!.detail, /kube-proxy state is back: iptables-(nft|legacy)/);
        assert.match(result.findings[0]!.repair!, /^pulumi up --stack lab --replace '.*::stale-rules-cleanup-node-a'$/);
    });

    test("kube-proxy back in the cluster is drift; the named repair (gate, then removal) clears it", async () => {
        const kubeProxy = new Scenario({ nodes: [DRIFT_NODE, "node-b"] });
        try {
            for (const [kind, name] of [
                ["daemonset", "kube-proxy"],
                ["configmap", "kube-proxy"],
            ] as const) {
                scenario.put("kube-system", kind, name, kubeProxy.get("kube-system", kind, name)!);
            }
            for (const pod of kubeProxy.podsIn("kube-system")) {
                scenario.put("kube-system", "pod", String((pod.metadata as JsonObject).name), pod);
            }
        } finally {
            kubeProxy.dispose();
        }
        let result = await check();
        expectDrift(result, ["cluster kube-proxy-back", "cluster kube-proxy-back", "cluster kube-proxy-back"]);
        const details = result.findings.map((f) => f.detail).join("\n");
        assert.match(details, /DaemonSet kube-system\/kube-proxy is back/);
        assert.match(details, /ConfigMap kube-system\/kube-proxy is back/);
        assert.match(details, /2 kube-proxy pod\(s\) run: .* on node-a, .* on node-b/);
        const repair = result.findings[0]!.repair!;
        assert.doesNotMatch(repair.split("   ")[0]!, /pulumi up/);

        // Run the repair exactly as printed (from the repository root, against the stand-in).
        const command = repair.split("   ")[0]!;
        const r = spawnSync("bash", ["-c", command], {
            cwd: ROOT,
            encoding: "utf8",
            env: { ...process.env, PATH: `${path.join(scenario.dir, "bin")}:${process.env.PATH ?? ""}`, FAKE_CLUSTER_DIR: scenario.dir, POD_GONE_TIMEOUT: "5" },
        });
        assert.equal(r.status, 0, r.stderr);
        result = await check();
        assert.deepEqual(result.findings, []);
    });

    test("a Cilium agent not reporting KPR is drift on its node; kubectl's own error is 'could not check', not drift", async (t) => {
        const pod = scenario.podsIn("default").find((p) => (p.spec as JsonObject).nodeName === "node-b")!;
        const name = String((pod.metadata as JsonObject).name);
        t.after(() => {
            scenario.setAgent(name, "status", fixture("cilium-status-kpr-true.json"));
            removeDir(path.join(scenario.dir, "agents", `${name}.exec-error`));
        });
        scenario.setAgent(name, "status", fixture("cilium-status-kpr-false.json"));
        let result = await check();
        expectDrift(result, ["node-b agent-kpr"]);
        assert.match(
            result.findings[0]!.detail,
            new RegExp(`agent pod ${name} reports kube-proxy-replacement mode=False, socketLB.enabled=false, nodePort.enabled=false`),
        );
        assert.match(result.findings[0]!.repair!, /--replace '.*::kpr-gate' --refresh/);

        const words = 'error: unable to upgrade connection: container not found ("cilium-agent")';
        scenario.failExec(name, words);
        result = await check();
        assert.deepEqual(kinds(result.findings), []);
        assert.deepEqual(kinds(result.findings, "unchecked"), ["node-b agent-kpr"]);
        assert.ok(result.findings[0]!.detail.includes(words), result.findings[0]!.detail);
        assert.equal(exitCode(result.findings), 3);
        assert.match(formatReport(DRIFT_STACK, result.scopes, result.findings), /no drift found, but 1 check\(s\) could not run .* not a clean bill/);
    });

    test("kubeadm's proxy.disabled reverted (kubeadm re-uploaded its config) is drift naming the kubeadm step", async (t) => {
        t.after(() => scenario.put("kube-system", "configmap", "kubeadm-config", kubeadmConfig(KUBEADM_V1BETA4("proxy:\n  disabled: true\n"))));
        scenario.put("kube-system", "configmap", "kubeadm-config", kubeadmConfig(KUBEADM_V1BETA4("proxy: {}\n")));
        const result = await check();
        expectDrift(result, ["cluster kubeadm-proxy"]);
        assert.match(result.findings[0]!.repair!, /^pulumi up --stack lab --replace '.*::kubeadm-proxy-disabled'/);
    });

    test("a node presenting another host key than the pinned one is refused: nothing runs, and it is not reported clean", async (t) => {
        const wrongDir = writeDriftStack(lab, { hostKey: publicKeyLine(path.join(lab.dir, "other_host_key.pub")) });
        t.after(() => {
            removeDir(wrongDir);
            return applyLikeTheProgram();
        });
        // Real drift on the node, which the refused connection must not be able to see.
        lab.node.sh(`nft delete table inet ${DRIFT_TABLE}`);
        const result = await check(wrongDir);
        assert.deepEqual(kinds(result.findings), []);
        assert.deepEqual(kinds(result.findings, "unchecked"), ["node-a node-access"]);
        assert.match(
            result.findings[0]!.detail,
            /^REFUSED: 192\.0\.2\.2 did not present the host key pinned in nodes\[\]\.hostKey \(ssh-ed25519\); nothing was run/,
        );
        assert.match(result.findings[0]!.detail, /Host key verification failed/);
        assert.equal(exitCode(result.findings), 3);
    });

    test("an unreachable node is 'could not check' with ssh's words, never a clean bill", async (t) => {
        const away = writeDriftStack(lab, { address: "192.0.2.99" });
        t.after(() => removeDir(away));
        const result = await check(away);
        assert.deepEqual(kinds(result.findings), []);
        assert.deepEqual(kinds(result.findings, "unchecked"), ["node-a node-access"]);
        assert.match(
            result.findings[0]!.detail,
            /^could not reach root@192\.0\.2\.99:22 \(ssh: ssh: connect to host 192\.0\.2\.99 port 22: (No route to host|Connection timed out)\)$/,
        );
        assert.equal(exitCode(result.findings), 3);
    });

    test("npm run check end to end: exit 0 and 'no drift' on a clean stack, exit 1 naming the drift once kube-proxy's chains are back", (t) => {
        const noTproxy = writeDriftStack(lab, { tproxyEnabled: false });
        t.after(() => {
            removeDir(noTproxy);
            lab.node.try("iptables -t nat -F KUBE-NODEPORTS; iptables -t nat -X KUBE-NODEPORTS");
        });
        // The command as an operator runs it, from the only place that reaches the node.
        const run = () =>
            spawnSync(
                "ip",
                [
                    "netns",
                    "exec",
                    lab.client.name,
                    "npm",
                    "run",
                    "--silent",
                    "check",
                    "--",
                    "--stack",
                    DRIFT_STACK,
                    "--stack-dir",
                    noTproxy,
                    "--ssh-key-file",
                    labClientKey(lab),
                ],
                {
                    cwd: ROOT,
                    encoding: "utf8",
                    env: { ...process.env, PATH: `${path.join(scenario.dir, "bin")}:${process.env.PATH ?? ""}`, FAKE_CLUSTER_DIR: scenario.dir },
                    timeout: 180_000,
                },
            );
        const clean = run();
        assert.equal(clean.status, 0, clean.stdout + clean.stderr);
        assert.match(clean.stdout, /^stack lab: no drift \(cluster and 1 node\(s\) checked\)$/m);
        assert.doesNotMatch(clean.stdout + clean.stderr, /PRIVATE KEY/, "the key is never printed");

        lab.node.sh("iptables -t nat -N KUBE-NODEPORTS");
        const drifted = run();
        assert.equal(drifted.status, 1, drifted.stdout + drifted.stderr);
        assert.match(drifted.stdout, /^node-a: DRIFT kube-proxy-state: kube-proxy state is back: iptables-/m);
        assert.match(drifted.stdout, /^ {8}repair: pulumi up --stack lab --replace '[^']+::stale-rules-cleanup-node-a'$/m);
    });
});
