import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { SCRIPT_NAMES, scriptEnvironment, scriptKind, scriptPath as registeredPath, scriptText } from "../../components/commands/scripts";
import type { ClusterScriptName as RegisteredClusterScript, ScriptEnv, ScriptName } from "../../components/commands/scriptParams";
import type { FakeCall, FakeRelease, FakeSettings } from "./fakeKubeCluster";

/*
 * Builds a fake cluster (see fakeKubeCluster.ts) shaped like the reference cluster: nodes
 * m600, m601, storage; Cilium 1.19 in namespace "default"; kube-proxy from kubeadm in
 * kube-system. Tests run the real scripts against it with the fake kubectl/helm first on PATH.
 */

const FIXTURES = join(__dirname, "..", "fixtures", "kubeproxy", "cluster");
export const REFERENCE_NODES = ["m600", "m601", "storage"] as const;
export const CILIUM_NAMESPACE = "default";

export type JsonObject = { [key: string]: unknown };

export function fixture(name: string): JsonObject {
    return JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as JsonObject;
}

export interface ScenarioOptions {
    readonly nodes?: readonly string[];
    /** kube-proxy DaemonSet + ConfigMap + one pod per node (default true). */
    readonly kubeProxy?: boolean;
    /** Per node, what `cilium-dbg status -o json` prints (default: the KPR-True fixture). */
    readonly agentStatus?: (node: string) => JsonObject;
    /** Per node, what `cilium-dbg service list -o json` prints (default: the services fixture). */
    readonly agentServices?: (node: string) => unknown;
    /** The Cilium release helm knows about; null for none. */
    readonly release?: FakeRelease | null;
    readonly settings?: Partial<FakeSettings>;
}

export interface ScriptRun {
    readonly status: number;
    readonly stdout: string;
    readonly stderr: string;
    /** The last stdout line parsed as JSON (every script ends with one). */
    readonly summary: JsonObject;
    readonly seconds: number;
}

/*
 * kube-proxy's scripts (components/kubeproxy/scripts) by their file name, as the script registry
 * (components/commands/scripts.ts) lists them under "kubeproxy/<name>".
 */
type InKubeproxy<N> = N extends `kubeproxy/${infer S}` ? S : never;
export type ClusterScriptName = InKubeproxy<RegisteredClusterScript>;
export type ClusterScriptEnv = { readonly [S in ClusterScriptName]: ScriptEnv<Extract<`kubeproxy/${S}`, RegisteredClusterScript>> };
export const SCRIPTS_DIR = dirname(registeredPath("kubeproxy/kpr-gate"));
function inFolder(kind: ReturnType<typeof scriptKind>): string[] {
    return SCRIPT_NAMES.filter((n) => n.startsWith("kubeproxy/") && scriptKind(n) === kind).map((n) => n.slice("kubeproxy/".length));
}
export const CLUSTER_SCRIPTS = inFolder("env") as ClusterScriptName[];
export const NODE_SCRIPTS = inFolder("args");
export const KUBEPROXY_PRELUDES = inFolder("prelude");
function registered(name: string): ScriptName {
    const full = `kubeproxy/${name}`;
    if (!(SCRIPT_NAMES as string[]).includes(full)) throw new Error(`no script ${full} in the registry`);
    return full as ScriptName;
}
/** The file of a kube-proxy script. */
export function scriptPath(name: string): string {
    return registeredPath(registered(name));
}
/** The text a resource embeds (preludes inlined). */
export function readScript(name: string): string {
    return scriptText(registered(name));
}

/** The least environment each cluster script accepts, with the scenario's names. */
export const MINIMAL_CLUSTER_ENV: { readonly [N in ClusterScriptName]: ClusterScriptEnv[N] } = {
    "cluster-identity": {},
    "cilium-values-snapshot": { CILIUM_NAMESPACE: "default", SNAPSHOT_CONFIGMAP: "cilium-pre-kpr-values" },
    "cilium-values-restore": { CILIUM_NAMESPACE: "default", SNAPSHOT_CONFIGMAP: "cilium-pre-kpr-values", CILIUM_CHART_VERSION: "1.19.0" },
    "kpr-gate": { CILIUM_NAMESPACE: "default" },
    "kube-proxy-remove": { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy-pre-cilium-kpr-backup" },
    "kube-proxy-restore": { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy-pre-cilium-kpr-backup" },
    "kube-proxy-exclude": { CANARY_NODES: "m600" },
    "kube-proxy-include": {},
    "post-migration-verify": { CILIUM_NAMESPACE: "default" },
    "kubeadm-proxy-disable": { KUBEADM_BACKUP_CONFIGMAP: "kubeadm-config-pre-cilium-kpr-backup" },
    "kubeadm-proxy-restore": { KUBEADM_BACKUP_CONFIGMAP: "kubeadm-config-pre-cilium-kpr-backup" },
    "kubeadm-proxy-status": { KUBEADM_BACKUP_CONFIGMAP: "kubeadm-config-pre-cilium-kpr-backup" },
    "cilium-upgrade-preflight": { CILIUM_NAMESPACE: "default", CILIUM_CHART_VERSION: "1.19.0" },
};

export const DEFAULT_RELEASE: FakeRelease = {
    name: "cilium",
    namespace: CILIUM_NAMESPACE,
    chart: "cilium-1.19.0",
    appVersion: "1.19.0",
    status: "deployed",
    revision: 7,
    values: { kubeProxyReplacement: "false", ipam: { mode: "kubernetes" }, routingMode: "tunnel", tunnelProtocol: "vxlan", operator: { replicas: 2 } },
};

export class Scenario {
    readonly dir: string;
    private readonly bin: string;
    readonly nodes: readonly string[];

    constructor(options: ScenarioOptions = {}) {
        this.dir = mkdtempSync(join(tmpdir(), "kpr-fake-cluster-"));
        this.bin = join(this.dir, "bin");
        mkdirSync(this.bin);
        symlinkSync(join(__dirname, "fake-kubectl"), join(this.bin, "kubectl"));
        symlinkSync(join(__dirname, "fake-helm"), join(this.bin, "helm"));
        this.nodes = options.nodes ?? REFERENCE_NODES;
        const settings: FakeSettings = { nodes: this.nodes, ...options.settings };
        writeFileSync(join(this.dir, "settings.json"), JSON.stringify(settings));
        writeFileSync(join(this.dir, "calls.log"), "");

        this.put("default", "service", "kubernetes", fixture("kubernetes-service.json"));
        const ciliumDs = fixture("cilium-daemonset.json");
        this.put(CILIUM_NAMESPACE, "daemonset", "cilium", withDesired(ciliumDs, this.nodes.length));
        this.put(CILIUM_NAMESPACE, "deployment", "cilium-operator", fixture("cilium-operator-deployment.json"));
        mkdirSync(join(this.dir, "agents"));
        this.nodes.forEach((node, i) => {
            const pod = agentPodName(i);
            this.put(
                CILIUM_NAMESPACE,
                "pod",
                pod,
                podOn(pod, CILIUM_NAMESPACE, node, { "k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent" }, "cilium"),
            );
            this.setAgent(pod, "status", (options.agentStatus ?? (() => fixture("cilium-status-kpr-true.json")))(node));
            this.setAgent(pod, "services", (options.agentServices ?? (() => fixture("cilium-services.json")))(node));
        });

        if (options.kubeProxy ?? true) {
            this.put("kube-system", "daemonset", "kube-proxy", withDesired(fixture("kube-proxy-daemonset.json"), this.nodes.length));
            this.put("kube-system", "configmap", "kube-proxy", fixture("kube-proxy-configmap.json"));
            this.nodes.forEach((node, i) => {
                const pod = `kube-proxy-${String.fromCharCode(97 + i)}x7q${i}`;
                this.put(
                    "kube-system",
                    "pod",
                    pod,
                    podOn(pod, "kube-system", node, { "k8s-app": "kube-proxy", "controller-revision-hash": "6d8f7b9c5" }, "kube-proxy"),
                );
            });
        }
        const release = options.release === undefined ? DEFAULT_RELEASE : options.release;
        if (release) this.setRelease(release);
    }

    /** Changes the fake cluster's settings from now on (e.g. pods that stop terminating). */
    updateSettings(changes: Partial<FakeSettings>): void {
        const path = join(this.dir, "settings.json");
        writeFileSync(path, JSON.stringify({ ...(JSON.parse(readFileSync(path, "utf8")) as FakeSettings), ...changes }));
    }

    put(namespace: string, kind: string, name: string, object: JsonObject): void {
        mkdirSync(join(this.dir, "objects", namespace, kind), { recursive: true });
        writeFileSync(join(this.dir, "objects", namespace, kind, `${name}.json`), JSON.stringify(object, null, 2));
    }

    get(namespace: string, kind: string, name: string): JsonObject | undefined {
        const path = join(this.dir, "objects", namespace, kind, `${name}.json`);
        return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as JsonObject) : undefined;
    }

    /** Every pod in the namespace, as the fake cluster holds it now. */
    podsIn(namespace: string): JsonObject[] {
        const folder = join(this.dir, "objects", namespace, "pod");
        if (!existsSync(folder)) return [];
        return readdirSync(folder)
            .filter((f) => f.endsWith(".json"))
            .map((f) => JSON.parse(readFileSync(join(folder, f), "utf8")) as JsonObject);
    }

    /** A string is written as is (to fake broken output); anything else as JSON. */
    setAgent(pod: string, what: "status" | "services", value: unknown): void {
        writeFileSync(join(this.dir, "agents", `${pod}.${what}.json`), typeof value === "string" ? value : JSON.stringify(value, null, 2));
    }

    failExec(pod: string, message: string): void {
        writeFileSync(join(this.dir, "agents", `${pod}.exec-error`), message);
    }

    setRelease(release: FakeRelease): void {
        mkdirSync(join(this.dir, "helm", release.namespace), { recursive: true });
        writeFileSync(join(this.dir, "helm", release.namespace, `${release.name}.json`), JSON.stringify(release, null, 2));
    }

    release(namespace: string, name: string): FakeRelease | undefined {
        const path = join(this.dir, "helm", namespace, `${name}.json`);
        return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as FakeRelease) : undefined;
    }

    calls(): FakeCall[] {
        return readFileSync(join(this.dir, "calls.log"), "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as FakeCall);
    }

    clearCalls(): void {
        writeFileSync(join(this.dir, "calls.log"), "");
    }

    /** Runs a script with the fake tools first on PATH and only the given environment. */
    run<N extends ClusterScriptName>(
        name: N,
        env: ClusterScriptEnv[N],
        options: { path?: string; timeoutSeconds?: number; embedded?: boolean } = {},
    ): ScriptRun {
        const started = Date.now();
        // embedded: the command text a resource carries, run with `bash -c` from outside the script folder.
        const result = spawnSync("/bin/bash", options.embedded ? ["-c", readScript(name)] : [scriptPath(name)], {
            cwd: this.dir,
            encoding: "utf8",
            timeout: (options.timeoutSeconds ?? 120) * 1000,
            env: {
                PATH: options.path ?? `${this.bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
                HOME: this.dir,
                TMPDIR: this.dir,
                FAKE_CLUSTER_DIR: this.dir,
                ...scriptEnvironment(registered(name) as RegisteredClusterScript, env),
            },
        });
        const lines = result.stdout.trim().split("\n");
        let summary: JsonObject = {};
        try {
            summary = JSON.parse(lines[lines.length - 1] ?? "") as JsonObject;
        } catch {
            summary = { unparsable: result.stdout };
        }
        return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr, summary, seconds: (Date.now() - started) / 1000 };
    }

    /** Runs the fake kubectl or helm directly, as a script would. */
    tool(tool: "kubectl" | "helm", args: readonly string[], input?: string): { status: number; stdout: string; stderr: string } {
        const result = spawnSync(join(this.bin, tool), args, {
            encoding: "utf8",
            input,
            env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", FAKE_CLUSTER_DIR: this.dir },
        });
        return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
    }

    /**
     * A PATH directory holding only the given tools (fake kubectl/helm or real ones) plus the
     * coreutils and node the fakes and scripts need, for tests about missing tools.
     */
    pathWith(tools: readonly string[]): string {
        const dir = mkdtempSync(join(this.dir, "path-"));
        for (const tool of [...BASE_TOOLS, ...tools]) {
            const source = tool === "kubectl" || tool === "helm" ? join(this.bin, tool) : which(tool);
            symlinkSync(source, join(dir, tool));
        }
        return dir;
    }

    dispose(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

const BASE_TOOLS = ["bash", "node", "dirname", "readlink", "tail", "rm", "cat", "mktemp", "timeout"] as const;

export function agentPodName(index: number): string {
    return `cilium-${["x2k9p", "q7m4z", "b8n3v", "h5t6r", "w1c0d"][index] ?? `n${index}`}`;
}

function which(tool: string): string {
    const result = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${tool} not installed`);
    return result.stdout.trim();
}

function withDesired(object: JsonObject, count: number): JsonObject {
    const status = { ...(object["status"] as JsonObject) };
    for (const key of ["currentNumberScheduled", "desiredNumberScheduled", "numberAvailable", "numberReady", "updatedNumberScheduled"]) status[key] = count;
    return { ...object, status };
}

function podOn(name: string, namespace: string, node: string, labels: Record<string, string>, owner: string): JsonObject {
    return {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace, labels, ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: owner, controller: true }] },
        spec: { nodeName: node },
        status: { phase: "Running" },
    };
}

/** Same deletion the scripts apply to a live object, written independently for comparison. */
export function withoutServerFields(object: JsonObject): JsonObject {
    const copy = JSON.parse(JSON.stringify(object)) as JsonObject;
    delete copy["status"];
    const metadata = copy["metadata"] as JsonObject;
    for (const key of ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"]) delete metadata[key];
    const annotations = metadata["annotations"] as Record<string, string> | undefined;
    if (annotations) {
        delete annotations["deprecated.daemonset.template.generation"];
        if (Object.keys(annotations).length === 0) delete metadata["annotations"];
    }
    const template = (copy["spec"] as JsonObject | undefined)?.["template"] as JsonObject | undefined;
    if (template?.["metadata"]) delete (template["metadata"] as JsonObject)["creationTimestamp"];
    return copy;
}
