import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { creationOrder, recordProgramOutcome } from "./mockRuntime";
import { urnOf } from "./planModel";
import { rawStackConfig, readStackFile, type StackFile } from "./stackFile";
import { validateStackConfig, ConfigValidationError, type MigrationConfig } from "../components/config/validate";
import type { NodeConfig } from "../components/config/schema";
import { migratedNodes } from "../components/config/migratedNodes";
import { clusterEnvironment } from "../components/commands/clusterCommand";
import { scriptEnvironment, scriptPath } from "../components/commands/scripts";
import { STEP } from "../components/resourceNames";
import { nodeTproxyBundle, type NodeBundle } from "../components/tproxy/nodeBundle";
import { ACTIVATION_SET } from "../components/tproxy/nftRuleset";
import { staleRuleVerifyCommand } from "../components/kubeproxy/staleRuleCleanup";
import { driftCheckCommand } from "../components/tproxy/tproxyCommands";
import { CLUSTER_SCOPE, unchecked, type Finding } from "../components/drift/findings";
import { clusterFindings, clusterObservationSchema, kubeadmFindings } from "../components/drift/clusterFindings";
import { lastLine, sshFailure, staleStateFindings, tproxyFindings, type RemoteRun } from "../components/drift/nodeFindings";
import type { PlannedStep, RepairContext } from "../components/drift/repairs";
import { knownHostsLine, sshArgs } from "../components/drift/sshTarget";
import { MIGRATED_LABEL, usesWaves } from "../components/waves/wavePlan";

const ROOT = path.resolve(__dirname, "..");
export const CLUSTER_OBSERVE_SCRIPT = scriptPath("drift/cluster-observe");
/** The read-only twin of the kubeadm-proxy-disabled step's script. */
const KUBEADM_STATUS_SCRIPT = scriptPath("kubeproxy/kubeadm-proxy-status");
/** Names a file holding the nodes' SSH private key (instead of the stack's secret config). */
export const SSH_KEY_FILE_ENV = "CILIUM_KPR_SSH_KEY_FILE";
/**
 * Step environment the offline plan cannot know: CLUSTER_UID is the kube-system UID the first `up`
 * recorded (an output in the stack's state, a placeholder under the mocks). The check reads no state,
 * so it and the repairs it prints act on the configured kubeconfig/context, as the check itself does.
 */
const STATE_ONLY_ENV: readonly string[] = ["CLUSTER_UID"];
/** A remote check that takes longer than this is reported as not checked. */
const REMOTE_TIMEOUT_MS = 300_000;

export interface DriftCheckOptions {
    readonly stack: string;
    /** Directory with Pulumi.yaml and Pulumi.<stack>.yaml (default: the repository). */
    readonly stackDir?: string;
    /** File with the nodes' SSH private key; default $CILIUM_KPR_SSH_KEY_FILE, else `pulumi config get sshPrivateKey`. */
    readonly sshKeyFile?: string;
    /** Environment for kubectl, ssh and pulumi (default: this process's). */
    readonly env?: NodeJS.ProcessEnv;
    /** Runs ssh with these arguments. The default spawns it here; tests run it inside a network namespace. */
    readonly runSsh?: (args: readonly string[]) => RemoteRun;
    /** The bundle the program pushes to a node (default nodeTproxyBundle); tests install it under a scratch root. */
    readonly bundleFor?: (config: MigrationConfig, node: NodeConfig) => NodeBundle;
}

export interface DriftCheckResult {
    readonly config: MigrationConfig;
    /** "cluster", then every node checked. */
    readonly scopes: readonly string[];
    readonly findings: readonly Finding[];
}

export interface PlannedCommand extends PlannedStep {
    readonly create?: string;
}

/** The program's command steps with their URNs, environments and create texts, exactly as the offline plan computes them. */
export async function plannedSteps(stack: StackFile, stackName: string): Promise<Map<string, PlannedCommand>> {
    const entry = path.join(ROOT, "index.ts");
    const outcome = await recordProgramOutcome({ project: stack.project, stack: stackName, config: stack.config, secretKeys: stack.secretKeys }, () => {
        // Declare the program afresh, so one process can check more than once (the tests do).
        for (const key of Object.keys(require.cache)) {
            if (key.startsWith(path.join(ROOT, "components")) || key === entry) delete require.cache[key];
        }
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- re-evaluating the program needs CommonJS require after clearing require.cache
        return require(entry) as unknown;
    });
    if (outcome.error !== undefined) throw outcome.error instanceof Error ? outcome.error : new Error(`the program failed: ${JSON.stringify(outcome.error)}`);
    const ordered = creationOrder(outcome.resources);
    const byKey = new Map(ordered.map((r) => [r.key, r]));
    const steps = new Map<string, PlannedCommand>();
    for (const r of ordered) {
        if (!r.custom) continue;
        const environment = Object.fromEntries(
            Object.entries((r.inputs.environment ?? {}) as Record<string, string>).filter(([key]) => !STATE_ONLY_ENV.includes(key)),
        );
        const create = typeof r.inputs.create === "string" ? r.inputs.create : undefined;
        steps.set(r.name, { urn: urnOf(r, byKey, stack.project, stackName), environment, ...(create === undefined ? {} : { create }) });
    }
    return steps;
}

/** Writes the private key to `dir` (mode 0600) and returns its path, or the reason it could not. Never prints the key. */
function privateKeyFile(options: DriftCheckOptions, root: string, dir: string): { path: string } | { error: string } {
    const env = options.env ?? process.env;
    const named = options.sshKeyFile ?? env[SSH_KEY_FILE_ENV];
    if (named !== undefined && named !== "") {
        return existsSync(named) ? { path: path.resolve(named) } : { error: `the SSH key file ${named} does not exist` };
    }
    // `pulumi config get` decrypts a secure value and prints it plus a newline (pulumi/pulumi
    // pkg/cmd/pulumi/config/config_get.go, run: v.Value(decrypter), Fprintf "%v\n"). It also selects the
    // stack as the workspace's current one (RequireStack ... SetCurrent); --non-interactive and an empty
    // stdin keep a missing passphrase from waiting at a prompt.
    const r = spawnSync("pulumi", ["config", "get", "sshPrivateKey", "--stack", options.stack, "--non-interactive"], {
        cwd: root,
        env,
        encoding: "utf8",
        input: "",
        timeout: 60_000,
    });
    if (r.error !== undefined) return { error: `no --ssh-key-file or ${SSH_KEY_FILE_ENV}, and pulumi could not run: ${r.error.message}` };
    if (r.status !== 0 || r.stdout.trim() === "")
        return { error: `pulumi config get sshPrivateKey failed: ${lastLine(r.stderr) || `exit ${String(r.status)}`}` };
    const file = path.join(dir, "ssh_key");
    writeFileSync(file, r.stdout.endsWith("\n") ? r.stdout : `${r.stdout}\n`, { mode: 0o600 });
    return { path: file };
}

function defaultRunSsh(env: NodeJS.ProcessEnv): (args: readonly string[]) => RemoteRun {
    return (args) => {
        const r = spawnSync("ssh", args, { env, encoding: "utf8", input: "", timeout: REMOTE_TIMEOUT_MS, killSignal: "SIGKILL" });
        if (r.error !== undefined && r.status === null) return { status: 255, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}\n${r.error.message}` };
        return { status: r.status ?? 255, stdout: r.stdout, stderr: r.stderr };
    };
}

function observeCluster(config: MigrationConfig, env: NodeJS.ProcessEnv, ctx: RepairContext): Finding[] {
    const kp = config.cluster.kubeProxy;
    const r = spawnSync("bash", [CLUSTER_OBSERVE_SCRIPT], {
        env: {
            ...env,
            ...clusterEnvironment(config.cluster),
            ...scriptEnvironment("drift/cluster-observe", {
                CILIUM_NAMESPACE: config.cilium.namespace,
                KUBE_PROXY_NAMESPACE: kp.namespace,
                KUBE_PROXY_DAEMONSET: kp.daemonSet,
                KUBE_PROXY_CONFIGMAP: kp.configMap,
                // Wave stacks: read each node's migrated label and kube-proxy's label affinity too.
                ...(usesWaves(config.migration) ? { MIGRATED_LABEL } : {}),
            }),
        },
        encoding: "utf8",
        timeout: REMOTE_TIMEOUT_MS,
    });
    const parsed = (() => {
        try {
            return clusterObservationSchema.safeParse(JSON.parse(lastLine(r.stdout)));
        } catch {
            return undefined;
        }
    })();
    if (r.status !== 0 || parsed === undefined || !parsed.success) {
        return [
            unchecked(
                CLUSTER_SCOPE,
                "kube-proxy-back",
                `the cluster could not be observed (exit ${String(r.status)}): ${lastLine(r.stderr) || lastLine(r.stdout)}`,
            ),
        ];
    }
    return clusterFindings(config, parsed.data, ctx);
}

/** Runs every check; changes nothing anywhere. Throws ConfigValidationError for an invalid stack. */
export async function runDriftCheck(options: DriftCheckOptions): Promise<DriftCheckResult> {
    const root = options.stackDir === undefined ? ROOT : path.resolve(options.stackDir);
    const env = options.env ?? process.env;
    const stack = readStackFile(root, options.stack);
    const validated = validateStackConfig(stack.project, rawStackConfig(stack.config));
    if (!validated.ok) throw new ConfigValidationError(validated.issues);
    const config = validated.config;
    const steps = await plannedSteps(stack, options.stack);
    const ctx: RepairContext = { stack: options.stack, steps };
    const nodes = migratedNodes(config);
    const findings: Finding[] = observeCluster(config, env, ctx);
    const kubeadmStep = steps.get(STEP.kubeadmProxyDisabled);
    if (kubeadmStep !== undefined) {
        // With exactly the environment the program gives the step (kube context, backup ConfigMap name).
        const r = spawnSync("bash", [KUBEADM_STATUS_SCRIPT], { env: { ...env, ...kubeadmStep.environment }, encoding: "utf8", timeout: REMOTE_TIMEOUT_MS });
        findings.push(...kubeadmFindings({ status: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" }, ctx));
    }

    const dir = mkdtempSync(path.join(tmpdir(), "cilium-kpr-check-"));
    try {
        const key = privateKeyFile(options, root, dir);
        const runSsh = options.runSsh ?? defaultRunSsh(env);
        const bundleFor = options.bundleFor ?? nodeTproxyBundle;
        for (const node of nodes) {
            if ("error" in key) {
                findings.push(unchecked(node.name, "node-access", key.error));
                continue;
            }
            const knownHosts = path.join(dir, `known_hosts.${node.name}`);
            writeFileSync(knownHosts, knownHostsLine(node), { mode: 0o600 });
            const run = (command: string): RemoteRun => runSsh(sshArgs(node, { knownHosts, privateKey: key.path }, command));

            // The program's own verify, carrying its script (the step itself fetches it from the node store).
            const staleCheck = steps.get(STEP.staleRuleVerify(node.name))?.create === undefined ? undefined : staleRuleVerifyCommand(node.name);
            if (staleCheck !== undefined) {
                const result = run(staleCheck);
                const refused = sshFailure(node, result);
                if (refused !== undefined) {
                    findings.push(refused);
                    continue;
                }
                findings.push(...staleStateFindings(node, result, ctx));
            }
            if (config.tproxy.enabled) {
                const result = run(driftCheckCommand(bundleFor(config, node), { vip4: config.tproxy.vip4, vip6: config.tproxy.vip6 }, ACTIVATION_SET));
                const refused = sshFailure(node, result);
                findings.push(...(refused !== undefined ? [refused] : tproxyFindings(config, node, result, ctx)));
            }
        }
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
    const extraScopes = [...new Set(findings.map((f) => f.scope))].filter((s) => s !== CLUSTER_SCOPE && !nodes.some((n) => n.name === s));
    return { config, scopes: [CLUSTER_SCOPE, ...nodes.map((n) => n.name), ...extraScopes], findings };
}
