/*
 * A stand-in for `kubectl` (1.35) and `helm` (4, or 3 per scenario), run through
 * test/support/fake-kubectl and fake-helm. It answers from a scenario directory
 * ($FAKE_CLUSTER_DIR) whose files are the cluster's state, so create/replace/delete change what
 * later `get`s return, and it appends every call to calls.log (one JSON line each).
 * It is at least as strict as the real tools where the scripts touch them, each behaviour citing
 * the upstream code it copies: only the flags each command really has (unknown ones refused in the
 * tool's own words; Helm 4 has no `list --all`); server-set fields on create, and `kubectl create`
 * clearing resourceVersion; 409 Conflict on a replace with a stale resourceVersion; AlreadyExists /
 * NotFound (objects and namespaces); --ignore-not-found; `rollout status` that watches until done
 * or --timeout, fails at once for OnDelete, and counts desired == 0 as rolled out; DaemonSet pods
 * that follow the template's required node affinity and terminate gracefully when deleted;
 * OnDelete DaemonSets that do not replace their pods.
 *
 * Layout of $FAKE_CLUSTER_DIR:
 *   settings.json                    FakeSettings
 *   objects/<ns>/<kind>/<name>.json  objects (kind singular, lower case)
 *                                    Nodes are not stored: they are settings.nodes, labelled
 *                                    kubernetes.io/hostname=<name> and kubernetes.io/os=linux.
 *   agents/<pod>.status.json         what `cilium-dbg status -o json` prints in that pod
 *   agents/<pod>.services.json       what `cilium-dbg service list -o json` prints
 *   agents/<pod>.exec-error          if present, exec in that pod fails with this text
 *   helm/<ns>/<release>.json         FakeRelease
 *   helm-installs.log                every release `helm install` created (one FakeRelease per line)
 *   rollouts/<ns>.<name>.json        DaemonSet rollouts still in progress (settings.rolloutSeconds)
 *   calls.log                        one FakeCall per line
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface FakeSettings {
    /** Node names; a created DaemonSet schedules one pod on each. */
    readonly nodes: readonly string[];
    /** When true, deleted pods stay terminating forever (a node that never confirms). */
    readonly podsLinger?: boolean;
    /** Seconds a deleted pod stays terminating before it is gone (default 1). */
    readonly podGraceSeconds?: number;
    /** Seconds a DaemonSet rollout (create or template change) takes before its status says done (default 0). */
    readonly rolloutSeconds?: number;
    /** When true, every call fails as if the API server were unreachable. */
    readonly unreachable?: boolean;
    readonly serverVersion?: string;
    /** UID of the kube-system namespace (the cluster's identity); default DEFAULT_CLUSTER_UID. */
    readonly clusterUid?: string;
    /** Namespaces that exist besides those holding objects (default, kube-system, kube-public, kube-node-lease). */
    readonly namespaces?: readonly string[];
    /** Namespaces that do not exist even if objects were placed there. */
    readonly missingNamespaces?: readonly string[];
    /**
     * Calls that fail with the given message (every word of `when` among the call's arguments), e.g. a
     * server error mid-script; the first `allow` matching calls still succeed.
     */
    readonly failures?: readonly { readonly when: readonly string[]; readonly message: string; readonly allow?: number }[];
    /** What `helm version --short` prints; its major picks Helm 3 or Helm 4 behaviour (default v4.2.4+g...). */
    readonly helmVersion?: string;
    /** Labels a node carries besides kubernetes.io/hostname and kubernetes.io/os (e.g. the wave path's migrated label). */
    readonly nodeLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
    /** Nodes where pulling an image `helm install` brings fails: those pods stay ErrImagePull, never Ready. */
    readonly imagePullFailsOn?: readonly string[];
}

export interface FakeRelease {
    readonly name: string;
    readonly namespace: string;
    readonly chart: string;
    readonly appVersion: string;
    readonly status: string;
    readonly revision: number;
    /** User-supplied values; null when none were given (helm prints null then). */
    readonly values: Record<string, unknown> | null;
    /** Objects the release created (fake `helm install`), deleted again by `helm uninstall`. */
    readonly resources?: readonly { readonly kind: string; readonly name: string }[];
}

export interface FakeCall {
    readonly tool: "kubectl" | "helm";
    readonly args: readonly string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

class ExitError extends Error {
    constructor(
        readonly code: number,
        message: string,
    ) {
        super(message);
    }
}

const KIND_ALIASES: Readonly<Record<string, string>> = {
    "ds": "daemonset",
    "daemonset": "daemonset",
    "daemonsets": "daemonset",
    "daemonsets.apps": "daemonset",
    "cm": "configmap",
    "configmap": "configmap",
    "configmaps": "configmap",
    "deploy": "deployment",
    "deployment": "deployment",
    "deployments": "deployment",
    "deployments.apps": "deployment",
    "po": "pod",
    "pod": "pod",
    "pods": "pod",
    "svc": "service",
    "service": "service",
    "services": "service",
    "ns": "namespace",
    "namespace": "namespace",
    "namespaces": "namespace",
    "no": "node",
    "node": "node",
    "nodes": "node",
};
const RESOURCE_NAMES: Readonly<Record<string, string>> = {
    daemonset: "daemonsets.apps",
    configmap: "configmaps",
    deployment: "deployments.apps",
    pod: "pods",
    service: "services",
    node: "nodes",
    namespace: "namespaces",
};

function kindOf(word: string): string {
    const kind = KIND_ALIASES[word.toLowerCase()];
    if (!kind) throw new ExitError(1, `error: the server doesn't have a resource type "${word}"`);
    return kind;
}

function isObject(value: Json | undefined): value is JsonObject {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field(value: Json | undefined, ...path: string[]): Json | undefined {
    let current: Json | undefined = value;
    for (const key of path) {
        if (!isObject(current)) return undefined;
        current = current[key];
    }
    return current;
}

function asObject(value: Json | undefined): JsonObject {
    return isObject(value) ? value : {};
}

/** A scalar field as text; an absent, null, object or array value reads as the fallback. */
function textOf(value: Json | undefined, fallback: string): string {
    return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : fallback;
}

/*
 * Flags, per command, exactly as the real tools spell them; anything else is refused the way the
 * real tool refuses it, so a script using a flag the real tool lacks fails here too.
 *   kubectl: cobra/pflag "unknown flag: --x" wrapped by kubectl's flag error func
 *     (kubernetes/kubectl pkg/util/templates/templater.go: "%s\nSee '%s --help' for usage.")
 *     and printed by cmdutil.CheckErr with an "error: " prefix, exit 1.
 *   helm: cobra prints "Error: unknown flag: --x" (helm/helm pkg/cmd/root.go, SilenceUsage only), exit 1.
 * Helm 4 dropped `helm list --all/-a` (helm/helm commit 8a73d9798 "make helm list show all by default",
 * pkg/cmd/list.go in v4.x has no "all" flag); Helm 3 has it (cmd/helm/list.go in v3.16).
 */
interface FlagSpec {
    /** Key the value is stored under. */
    readonly key: string;
    readonly takesValue: boolean;
}
type FlagTable = Readonly<Record<string, FlagSpec>>;

const opt = (key: string): FlagSpec => ({ key, takesValue: true });
const flag = (key: string): FlagSpec => ({ key, takesValue: false });

/** kubectl's global flags the scripts use (k8s.io/cli-runtime genericclioptions.ConfigFlags). */
export const KUBECTL_GLOBAL: FlagTable = {
    "-n": opt("namespace"),
    "--namespace": opt("namespace"),
    "--context": opt("context"),
    "--kubeconfig": opt("kubeconfig"),
    "--request-timeout": opt("request-timeout"),
};
/** Per verb (kubernetes/kubectl pkg/cmd/<verb>/<verb>.go, 1.35). */
export const KUBECTL_VERBS: Readonly<Record<string, FlagTable>> = {
    "version": { "-o": opt("output"), "--output": opt("output"), "--client": flag("client") },
    "config current-context": {},
    "get": {
        "-o": opt("output"),
        "--output": opt("output"),
        "-l": opt("selector"),
        "--selector": opt("selector"),
        "--ignore-not-found": flag("ignore-not-found"),
        "--raw": opt("raw"),
        "-A": flag("all-namespaces"),
        "--all-namespaces": flag("all-namespaces"),
    },
    "create": { "-f": opt("filename"), "--filename": opt("filename") },
    "replace": { "-f": opt("filename"), "--filename": opt("filename") },
    "delete": {
        "--ignore-not-found": flag("ignore-not-found"),
        "--timeout": opt("timeout"),
        "--wait": flag("wait"),
        "--grace-period": opt("grace-period"),
    },
    "rollout status": { "--timeout": opt("timeout"), "-w": flag("watch"), "--watch": flag("watch"), "--revision": opt("revision") },
    "exec": { "-c": opt("container"), "--container": opt("container"), "-i": flag("stdin"), "-q": flag("quiet") },
};

/** helm's global flags the scripts use (helm/helm pkg/cli/environment.go AddFlags). */
export const HELM_GLOBAL: FlagTable = {
    "-n": opt("namespace"),
    "--namespace": opt("namespace"),
    "--kube-context": opt("context"),
    "--kubeconfig": opt("kubeconfig"),
    "--debug": flag("debug"),
};
const HELM_LIST_STATES = ["deployed", "failed", "pending", "superseded", "uninstalled", "uninstalling"] as const;
/** Per command (helm/helm pkg/cmd/{version,list,get_values,upgrade,flags}.go). */
export function helmVerbs(major: number): Readonly<Record<string, FlagTable>> {
    const list: Record<string, FlagSpec> = {
        "-o": opt("output"),
        "--output": opt("output"),
        "-f": opt("filter"),
        "--filter": opt("filter"),
        "-m": opt("max"),
        "--max": opt("max"),
        "--offset": opt("offset"),
        "-q": flag("short"),
        "--short": flag("short"),
        "-A": flag("all-namespaces"),
        "--all-namespaces": flag("all-namespaces"),
    };
    for (const state of HELM_LIST_STATES) list[`--${state}`] = flag(state);
    if (major === 3) {
        list["-a"] = flag("all");
        list["--all"] = flag("all");
    }
    return {
        "version": { "--short": flag("short"), "--template": opt("template") },
        "list": list,
        "get values": { "-o": opt("output"), "--output": opt("output"), "-a": flag("all"), "--all": flag("all"), "--revision": opt("revision") },
        "upgrade": {
            "--version": opt("version"),
            "--repo": opt("repo"),
            "-f": opt("filename"),
            "--values": opt("filename"),
            "--reset-values": flag("reset-values"),
            "--reuse-values": flag("reuse-values"),
            "-i": flag("install"),
            "--install": flag("install"),
            "--timeout": opt("timeout"),
        },
        // pkg/cmd/install.go and uninstall.go: only the flags the upgrade pre-pull uses are modelled.
        "install": { "--version": opt("version"), "--repo": opt("repo"), "-f": opt("filename"), "--values": opt("filename"), "--timeout": opt("timeout") },
        "uninstall": { "--timeout": opt("timeout"), "--keep-history": flag("keep-history") },
    };
}

interface ParsedArgs {
    /** The command (one or two words: "get", "rollout status", "get values"). */
    readonly verb: string;
    readonly positional: string[];
    readonly options: Map<string, string>;
    readonly flags: Set<string>;
    /** Everything after a bare `--` (the command of kubectl exec). */
    readonly command: string[];
}

function unknownFlag(tool: "kubectl" | "helm", verb: string, arg: string): ExitError {
    const message = arg.startsWith("--") ? `unknown flag: ${arg.split("=")[0] ?? arg}` : `unknown shorthand flag: '${arg.charAt(1)}' in ${arg}`;
    return tool === "kubectl" ? new ExitError(1, `error: ${message}\nSee 'kubectl ${verb} --help' for usage.`) : new ExitError(1, `Error: ${message}`);
}

/**
 * Parses argv against the global flags plus the flags of the command it names. The command is the
 * first word not taken by a global flag (two words for `rollout status`, `get values`, `config ...`).
 */
function parseArgs(tool: "kubectl" | "helm", argv: readonly string[], global: FlagTable, verbs: Readonly<Record<string, FlagTable>>): ParsedArgs {
    const words: string[] = [];
    for (let i = 0; i < argv.length && words.length < 2; i++) {
        const arg = argv[i] ?? "";
        if (arg === "--") break;
        if (arg.startsWith("-")) {
            if (!arg.includes("=") && global[arg]?.takesValue) i++;
            continue;
        }
        words.push(arg);
    }
    const two = words.slice(0, 2).join(" ");
    const verb = verbs[two] ? two : (words[0] ?? "");
    const table: FlagTable = { ...global, ...(verbs[verb] ?? {}) };
    const positional: string[] = [];
    const options = new Map<string, string>();
    const flags = new Set<string>();
    let command: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i] ?? "";
        if (arg === "--") {
            command = argv.slice(i + 1);
            break;
        }
        if (!arg.startsWith("-") || arg === "-") {
            positional.push(arg);
            continue;
        }
        const eq = arg.indexOf("=");
        const name = eq > 0 ? arg.slice(0, eq) : arg;
        const spec = table[name];
        if (!spec) throw unknownFlag(tool, verb, arg);
        if (spec.takesValue) {
            const given = eq > 0 ? arg.slice(eq + 1) : argv[++i];
            if (given === undefined)
                throw new ExitError(1, tool === "kubectl" ? `error: flag needs an argument: ${name}` : `Error: flag needs an argument: ${name}`);
            options.set(spec.key, given);
        } else {
            flags.add(spec.key);
        }
    }
    const verbWords = verb.split(" ").filter(Boolean).length;
    return { verb, positional: positional.slice(verbWords), options, flags, command };
}

class FakeCluster {
    private cachedSettings?: FakeSettings;

    constructor(readonly dir: string) {}

    settings(): FakeSettings {
        this.cachedSettings ??= JSON.parse(readFileSync(join(this.dir, "settings.json"), "utf8")) as FakeSettings;
        return this.cachedSettings;
    }

    objectPath(namespace: string, kind: string, name: string): string {
        return join(this.dir, "objects", namespace, kind, `${name}.json`);
    }

    read(namespace: string, kind: string, name: string): JsonObject | undefined {
        const path = this.objectPath(namespace, kind, name);
        return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as JsonObject) : undefined;
    }

    write(namespace: string, kind: string, name: string, object: JsonObject): void {
        mkdirSync(join(this.dir, "objects", namespace, kind), { recursive: true });
        writeFileSync(this.objectPath(namespace, kind, name), `${JSON.stringify(object, null, 2)}\n`);
    }

    remove(namespace: string, kind: string, name: string): void {
        rmSync(this.objectPath(namespace, kind, name), { force: true });
    }

    list(namespace: string, kind: string): JsonObject[] {
        const folder = join(this.dir, "objects", namespace, kind);
        if (!existsSync(folder)) return [];
        return readdirSync(folder)
            .filter((f) => f.endsWith(".json"))
            .sort()
            .map((f) => JSON.parse(readFileSync(join(folder, f), "utf8")) as JsonObject);
    }

    namespaces(): string[] {
        const folder = join(this.dir, "objects");
        const present = existsSync(folder) ? readdirSync(folder) : [];
        return [...new Set([...(this.settings().namespaces ?? DEFAULT_NAMESPACES), ...present])].filter(
            (ns) => !this.settings().missingNamespaces?.includes(ns),
        );
    }

    nextResourceVersion(): string {
        const path = join(this.dir, "resource-version");
        const next = (existsSync(path) ? Number(readFileSync(path, "utf8")) : 1000) + 1;
        writeFileSync(path, String(next));
        return String(next);
    }

    /**
     * What the controllers did since the last call: pods whose graceful termination ended are
     * gone (the kubelet confirms the deletion after terminationGracePeriodSeconds; docs
     * "Pod Lifecycle / Termination of Pods"), and DaemonSet rollouts whose time has come are done.
     */
    reconcile(): void {
        const now = Date.now();
        if (!this.settings().podsLinger) {
            for (const namespace of this.namespaces()) {
                for (const pod of this.list(namespace, "pod")) {
                    const deadline = textOf(field(pod, "metadata", "deletionTimestamp"), "");
                    if (deadline !== "" && Date.parse(deadline) <= now) this.remove(namespace, "pod", textOf(field(pod, "metadata", "name"), ""));
                }
            }
        }
        const pending = join(this.dir, "rollouts");
        if (!existsSync(pending)) return;
        for (const file of readdirSync(pending)) {
            const rollout = JSON.parse(readFileSync(join(pending, file), "utf8")) as PendingRollout;
            if (rollout.doneAt > now) continue;
            const ds = this.read(rollout.namespace, "daemonset", rollout.name);
            if (ds && Number(field(ds, "metadata", "generation") ?? 0) === rollout.generation) {
                ds["status"] = rollout.status;
                this.write(rollout.namespace, "daemonset", rollout.name, ds);
            }
            rmSync(join(pending, file));
        }
    }

    /** Starts the graceful termination of a pod (or leaves it terminating forever with podsLinger). */
    terminate(namespace: string, pod: JsonObject): void {
        const grace = this.settings().podGraceSeconds ?? DEFAULT_POD_GRACE_SECONDS;
        const metadata = asObject(pod["metadata"]);
        if (metadata["deletionTimestamp"] !== undefined) return;
        pod["metadata"] = { ...metadata, deletionTimestamp: rfc3339(Date.now() + grace * 1000), deletionGracePeriodSeconds: grace };
        this.write(namespace, "pod", textOf(metadata["name"], ""), pod);
    }
}

interface PendingRollout {
    readonly namespace: string;
    readonly name: string;
    readonly generation: number;
    readonly doneAt: number;
    readonly status: JsonObject;
}

const DEFAULT_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];
const DEFAULT_POD_GRACE_SECONDS = 1;
/** The kube-system namespace's UID unless the scenario sets clusterUid. */
export const DEFAULT_CLUSTER_UID = "6f1c2a9e-3b7d-4e0a-9c51-0d8e4b2f7a10";

/** Kubernetes timestamps are RFC 3339 with whole seconds (metav1.Time); rounded up so a grace period is never shortened. */
function rfc3339(ms: number): string {
    return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

function notFound(kind: string, name: string): ExitError {
    return new ExitError(1, `Error from server (NotFound): ${RESOURCE_NAMES[kind] ?? kind} "${name}" not found`);
}

function labelsMatch(object: JsonObject, selector: string | undefined): boolean {
    if (!selector) return true;
    const labels = asObject(field(object, "metadata", "labels"));
    return selector.split(",").every((term) => {
        const [key, wanted] = term.split("=");
        return key !== undefined && labels[key] === wanted;
    });
}

/** A Go time.Duration as kubectl's --timeout takes it (a bare number is refused, as by time.ParseDuration). */
function seconds(text: string | undefined, fallback: number): number {
    if (!text) return fallback;
    const match = /^(\d+)(s|m|h)$/.exec(text);
    if (!match) throw new ExitError(1, `error: invalid argument "${text}" for "--timeout" flag: time: missing unit in duration "${text}"`);
    return Number(match[1]) * (match[2] === "h" ? 3600 : match[2] === "m" ? 60 : 1);
}

function sleep(secondsToWait: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, secondsToWait * 1000);
}

function readInput(filename: string): JsonObject {
    const text = filename === "-" ? readFileSync(0, "utf8") : readFileSync(filename, "utf8");
    const parsed = JSON.parse(text) as Json;
    if (!isObject(parsed)) throw new ExitError(1, "error: input is not an object");
    return parsed;
}

interface RolloutView {
    readonly message: string;
    readonly done: boolean;
}

/**
 * kubectl's DaemonSetStatusViewer.Status (kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go):
 * OnDelete fails at once; done when observedGeneration caught up, updated == desired and
 * numberAvailable == desired, so desired == 0 counts as rolled out. An absent updateStrategy is
 * RollingUpdate (the API server's default, apps/v1 SetDefaults_DaemonSet).
 */
function daemonSetStatus(ds: JsonObject, name: string): RolloutView {
    if (textOf(field(ds, "spec", "updateStrategy", "type"), "RollingUpdate") !== "RollingUpdate") {
        throw new ExitError(1, "error: rollout status is only available for RollingUpdate strategy type");
    }
    const status = asObject(ds["status"]);
    const n = (key: string) => Number(status[key] ?? 0);
    if (Number(field(ds, "metadata", "generation") ?? 0) > n("observedGeneration")) {
        return { message: "Waiting for daemon set spec update to be observed...", done: false };
    }
    if (n("updatedNumberScheduled") < n("desiredNumberScheduled")) {
        return {
            message: `Waiting for daemon set "${name}" rollout to finish: ${n("updatedNumberScheduled")} out of ${n("desiredNumberScheduled")} new pods have been updated...`,
            done: false,
        };
    }
    if (n("numberAvailable") < n("desiredNumberScheduled")) {
        return {
            message: `Waiting for daemon set "${name}" rollout to finish: ${n("numberAvailable")} of ${n("desiredNumberScheduled")} updated pods are available...`,
            done: false,
        };
    }
    return { message: `daemon set "${name}" successfully rolled out`, done: true };
}

/** kubectl's DeploymentStatusViewer.Status (same file). */
function deploymentStatus(deployment: JsonObject, name: string): RolloutView {
    const status = asObject(deployment["status"]);
    const n = (key: string) => Number(status[key] ?? 0);
    if (Number(field(deployment, "metadata", "generation") ?? 0) > n("observedGeneration")) {
        return { message: "Waiting for deployment spec update to be observed...", done: false };
    }
    const conditions = field(deployment, "status", "conditions");
    if (Array.isArray(conditions) && conditions.some((c) => field(c, "type") === "Progressing" && field(c, "reason") === "ProgressDeadlineExceeded")) {
        throw new ExitError(1, `error: deployment "${name}" exceeded its progress deadline`);
    }
    const replicas = field(deployment, "spec", "replicas");
    if (replicas !== undefined && n("updatedReplicas") < Number(replicas)) {
        return {
            message: `Waiting for deployment "${name}" rollout to finish: ${n("updatedReplicas")} out of ${Number(replicas)} new replicas have been updated...`,
            done: false,
        };
    }
    if (n("replicas") > n("updatedReplicas")) {
        return {
            message: `Waiting for deployment "${name}" rollout to finish: ${n("replicas") - n("updatedReplicas")} old replicas are pending termination...`,
            done: false,
        };
    }
    if (n("availableReplicas") < n("updatedReplicas")) {
        return {
            message: `Waiting for deployment "${name}" rollout to finish: ${n("availableReplicas")} of ${n("updatedReplicas")} updated replicas are available...`,
            done: false,
        };
    }
    return { message: `deployment "${name}" successfully rolled out`, done: true };
}

function ownedBy(pod: JsonObject, daemonSet: string): boolean {
    const owners = field(pod, "metadata", "ownerReferences");
    return Array.isArray(owners) && owners.some((o) => isObject(o) && o["kind"] === "DaemonSet" && o["name"] === daemonSet);
}

function kubectl(cluster: FakeCluster, argv: readonly string[], out: (text: string) => void): void {
    const args = parseArgs("kubectl", argv, KUBECTL_GLOBAL, KUBECTL_VERBS);
    const namespace = args.options.get("namespace") ?? "default";
    const rest = args.positional;
    const settings = cluster.settings();
    if (settings.unreachable && args.verb !== "config current-context") {
        throw new ExitError(1, "The connection to the server 192.0.2.1:6443 was refused - did you specify the right host or port?");
    }
    cluster.reconcile();
    switch (args.verb) {
        case "version": {
            out(JSON.stringify({ clientVersion: { gitVersion: "v1.35.0" }, serverVersion: { gitVersion: settings.serverVersion ?? "v1.31.4" } }));
            return;
        }
        case "config current-context":
            out("fake-context");
            return;
        case "get": {
            const raw = args.options.get("raw");
            if (raw !== undefined) {
                if (raw === "/readyz") {
                    out("ok");
                    return;
                }
                throw new ExitError(1, `Error from server (NotFound): the server could not find the requested resource`);
            }
            // TYPE NAME or TYPE/NAME (kubectl get's two spellings of one object).
            const [typeWord = "", slashName] = (rest[0] ?? "").split("/");
            const kind = kindOf(typeWord);
            const name = slashName ?? rest[1];
            const output = args.options.get("output");
            if (output !== undefined && output !== "json" && output !== "name") {
                throw new ExitError(1, `error: unable to match a printer suitable for the output format "${output}", the fake models json and name`);
            }
            if (kind === "node" || kind === "namespace") {
                const names = kind === "node" ? [...settings.nodes] : cluster.namespaces();
                const selected = names.filter((n) => name === undefined || n === name);
                if (name !== undefined && selected.length === 0) {
                    if (args.flags.has("ignore-not-found")) return;
                    throw notFound(kind, name);
                }
                const objects = selected.map((n) => (kind === "node" ? nodeObject(n, settings) : namespaceObject(settings, n)));
                out(
                    output === "name"
                        ? selected.map((n) => `${kind}/${n}`).join("\n")
                        : JSON.stringify(name === undefined ? { apiVersion: "v1", kind: "List", items: objects } : objects[0], null, 4),
                );
                return;
            }
            if (name !== undefined) {
                const object = cluster.read(namespace, kind, name);
                if (!object) {
                    if (args.flags.has("ignore-not-found")) return;
                    throw notFound(kind, name);
                }
                out(output === "name" ? `${kind}/${name}` : JSON.stringify(object, null, 4));
                return;
            }
            const spaces = args.flags.has("all-namespaces") ? cluster.namespaces() : [namespace];
            const items = spaces.flatMap((ns) => cluster.list(ns, kind)).filter((o) => labelsMatch(o, args.options.get("selector")));
            if (output === "name") {
                if (items.length > 0) out(items.map((o) => `${kind}/${textOf(field(o, "metadata", "name"), "")}`).join("\n"));
            } else {
                out(JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 4));
            }
            return;
        }
        case "create":
        case "replace": {
            const filename = args.options.get("filename");
            if (!filename) throw new ExitError(1, `error: must specify one of -f and -k`);
            const object = readInput(filename);
            const kind = kindOf(textOf(object["kind"], ""));
            const name = textOf(field(object, "metadata", "name"), "");
            const ns = textOf(field(object, "metadata", "namespace"), namespace);
            if (field(object, "metadata", "namespace") !== undefined && args.options.has("namespace") && ns !== namespace) {
                // kubectl's resource builder (cli-runtime pkg/resource/visitor.go) refuses a file whose namespace differs from -n.
                throw new ExitError(
                    1,
                    `error: the namespace from the provided object "${ns}" does not match the namespace "${namespace}". You must pass '--namespace=${ns}' to perform this operation.`,
                );
            }
            const verbing = args.verb === "create" ? "creating" : "replacing";
            // The NamespaceLifecycle admission plugin refuses objects in a namespace that does not exist
            // (kubernetes/kubernetes plugin/pkg/admission/namespace/lifecycle); kubectl adds "error when creating".
            if (!cluster.namespaces().includes(ns))
                throw new ExitError(1, `Error from server (NotFound): error when ${verbing} "${filename}": namespaces "${ns}" not found`);
            const existing = cluster.read(ns, kind, name);
            const metadata = asObject(object["metadata"]);
            if (kind === "daemonset") rejectInvalidNodeAffinity(object, filename);
            if (args.verb === "create") {
                // kubectl create clears resourceVersion before POSTing (cli-runtime pkg/resource/helper.go
                // Helper.CreateWithOptions, modify=true), so a stale copy of a deleted object can be re-created.
                delete metadata["resourceVersion"];
                object["metadata"] = metadata;
                if (existing)
                    throw new ExitError(
                        1,
                        `Error from server (AlreadyExists): error when creating "${filename}": ${RESOURCE_NAMES[kind]} "${name}" already exists`,
                    );
                createObject(cluster, ns, kind, name, object);
                out(`${kind}/${name} created`);
            } else {
                if (!existing)
                    throw new ExitError(1, `Error from server (NotFound): error when replacing "${filename}": ${RESOURCE_NAMES[kind]} "${name}" not found`);
                const kept = asObject(existing["metadata"]);
                // Optimistic concurrency: a PUT carrying a resourceVersion other than the stored one is
                // refused with 409 (apiserver storage GuaranteedUpdate -> errors.NewConflict with
                // OptimisticLockErrorMsg); without one, kubectl replace overwrites (cli-runtime
                // Helper.Replace, overwrite=true, fetches the current version).
                const sent = metadata["resourceVersion"];
                if (sent !== undefined && sent !== null && textOf(sent, "") !== textOf(kept["resourceVersion"], "")) {
                    throw new ExitError(
                        1,
                        `Error from server (Conflict): error when replacing "${filename}": Operation cannot be fulfilled on ${RESOURCE_NAMES[kind]} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
                    );
                }
                object["metadata"] = {
                    ...metadata,
                    namespace: ns,
                    uid: kept["uid"] ?? null,
                    creationTimestamp: kept["creationTimestamp"] ?? null,
                    resourceVersion: cluster.nextResourceVersion(),
                };
                if (kind === "daemonset") {
                    // metadata.generation moves only when the spec changes (apps/v1 daemonset strategy PrepareForUpdate).
                    const specChanged = JSON.stringify(object["spec"]) !== JSON.stringify(existing["spec"]);
                    const generation = Number(kept["generation"] ?? 1) + (specChanged ? 1 : 0);
                    object["metadata"] = { ...asObject(object["metadata"]), generation };
                    if (specChanged) scheduleDaemonSet(cluster, ns, name, object, generation);
                    else object["status"] = existing["status"] ?? null;
                }
                cluster.write(ns, kind, name, object);
                out(`${kind}/${name} replaced`);
            }
            return;
        }
        case "delete": {
            const kind = kindOf(rest[0] ?? "");
            const name = rest[1] ?? "";
            const object = cluster.read(namespace, kind, name);
            if (!object) {
                if (args.flags.has("ignore-not-found")) return;
                throw notFound(kind, name);
            }
            if (kind === "pod") cluster.terminate(namespace, object);
            else cluster.remove(namespace, kind, name);
            // Background propagation (kubectl's default): the owner goes now, the garbage collector then
            // deletes its pods, which terminate gracefully.
            if (kind === "daemonset") for (const pod of cluster.list(namespace, "pod")) if (ownedBy(pod, name)) cluster.terminate(namespace, pod);
            out(`${kind} "${name}" deleted`);
            return;
        }
        case "rollout status": {
            const [kindWord, name = ""] = (rest[0] ?? "").split("/");
            const kind = kindOf(kindWord ?? "");
            const limit = seconds(args.options.get("timeout"), 0);
            // Real kubectl waits forever with --timeout 0; the fake caps it so a broken test cannot hang.
            const deadline = Date.now() + (limit === 0 ? 3600 : limit) * 1000;
            let first = true;
            let last = "";
            for (;;) {
                const object = cluster.read(namespace, kind, name);
                if (!object) {
                    if (first) throw notFound(kind, name);
                    // rollout_status.go: a Deleted event ends the watch with this error.
                    throw new ExitError(1, "error: object has been deleted");
                }
                first = false;
                const view = kind === "daemonset" ? daemonSetStatus(object, name) : deploymentStatus(object, name);
                if (view.message !== last) out(view.message);
                last = view.message;
                if (view.done) return;
                if (Date.now() >= deadline) throw new ExitError(1, "error: timed out waiting for the condition");
                sleep(0.2);
                cluster.reconcile();
            }
        }
        case "exec": {
            const pod = rest[0] ?? "";
            if (!cluster.read(namespace, "pod", pod)) throw notFound("pod", pod);
            const errorFile = join(cluster.dir, "agents", `${pod}.exec-error`);
            if (existsSync(errorFile)) throw new ExitError(1, readFileSync(errorFile, "utf8").trim());
            const command = args.command.join(" ");
            const answer = command === "cilium-dbg status -o json" ? "status" : command === "cilium-dbg service list -o json" ? "services" : undefined;
            if (!answer) throw new ExitError(127, `fake kubectl: unexpected command in pod: ${command}`);
            const file = join(cluster.dir, "agents", `${pod}.${answer}.json`);
            if (!existsSync(file)) throw new ExitError(1, `fake kubectl: scenario has no ${answer} for ${pod}`);
            out(readFileSync(file, "utf8").trimEnd());
            return;
        }
        default:
            break;
    }
    throw new ExitError(2, `fake kubectl: unsupported call: kubectl ${argv.join(" ")}`);
}

function namespaceObject(settings: FakeSettings, name: string): JsonObject {
    const uid =
        name === "kube-system"
            ? (settings.clusterUid ?? DEFAULT_CLUSTER_UID)
            : `00000000-0000-4000-8000-${Buffer.from(name).toString("hex").slice(0, 12).padEnd(12, "0")}`;
    return { apiVersion: "v1", kind: "Namespace", metadata: { name, uid }, spec: { finalizers: ["kubernetes"] }, status: { phase: "Active" } };
}

function createObject(cluster: FakeCluster, namespace: string, kind: string, name: string, object: JsonObject): void {
    const metadata = asObject(object["metadata"]);
    const now = "2026-01-01T00:00:00Z";
    const created: JsonObject = {
        ...object,
        metadata: {
            ...metadata,
            namespace,
            uid: `00000000-0000-4000-8000-${cluster.nextResourceVersion().padStart(12, "0")}`,
            resourceVersion: cluster.nextResourceVersion(),
            creationTimestamp: now,
            managedFields: [{ manager: "kubectl-create", operation: "Update", apiVersion: textOf(object["apiVersion"], "v1"), time: now }],
        },
    };
    if (kind === "daemonset") {
        const annotations = asObject(metadata["annotations"]);
        created["metadata"] = {
            ...asObject(created["metadata"]),
            generation: 1,
            annotations: { ...annotations, "deprecated.daemonset.template.generation": "1" },
        };
        scheduleDaemonSet(cluster, namespace, name, created, 1);
    }
    cluster.write(namespace, kind, name, created);
}

function nodeLabels(node: string, settings: FakeSettings): Record<string, string> {
    return { ...settings.nodeLabels?.[node], "kubernetes.io/hostname": node, "kubernetes.io/os": "linux" };
}

function nodeObject(node: string, settings: FakeSettings): JsonObject {
    return { apiVersion: "v1", kind: "Node", metadata: { name: node, labels: nodeLabels(node, settings) } };
}

/** One node selector requirement (matchExpressions against labels, matchFields against metadata.name). */
function requirementHolds(requirement: Json, value: string | undefined): boolean {
    const operator = textOf(field(requirement, "operator"), "");
    const values = field(requirement, "values");
    const list = Array.isArray(values) ? values.map(String) : [];
    switch (operator) {
        case "In":
            return value !== undefined && list.includes(value);
        case "NotIn":
            return value === undefined || !list.includes(value);
        case "Exists":
            return value !== undefined;
        case "DoesNotExist":
            return value === undefined;
        default:
            throw new ExitError(1, `fake kubectl: unsupported node selector operator "${operator}"`);
    }
}

function requiredNodeSelectorTerms(daemonSet: JsonObject): Json | undefined {
    return field(daemonSet, "spec", "template", "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms");
}

/** The API server's validation of node field selectors: metadata.name only, and one value for In/NotIn. */
function rejectInvalidNodeAffinity(daemonSet: JsonObject, filename: string): void {
    const terms = requiredNodeSelectorTerms(daemonSet);
    for (const term of Array.isArray(terms) ? terms : []) {
        const fields = field(term, "matchFields");
        for (const requirement of Array.isArray(fields) ? fields : []) {
            const values = field(requirement, "values");
            const operator = textOf(field(requirement, "operator"), "");
            if (
                field(requirement, "key") !== "metadata.name" ||
                ((operator === "In" || operator === "NotIn") && (!Array.isArray(values) || values.length !== 1))
            ) {
                throw new ExitError(
                    1,
                    `The DaemonSet is invalid (from "${filename}"): spec.template.spec.affinity.nodeAffinity...matchFields: Invalid value: must be only one value when \`operator\` is 'In' or 'NotIn' for node field selector`,
                );
            }
        }
    }
}

/** Whether the pod template's required node affinity lets a pod onto the node (terms ORed, requirements ANDed). */
function affinityAdmits(daemonSet: JsonObject, node: string, settings: FakeSettings): boolean {
    const terms = requiredNodeSelectorTerms(daemonSet);
    if (!Array.isArray(terms) || terms.length === 0) return true;
    const labels = nodeLabels(node, settings);
    return terms.some((term) => {
        const expressions = field(term, "matchExpressions");
        const fields = field(term, "matchFields");
        // An empty term matches no node.
        if (!(Array.isArray(expressions) && expressions.length > 0) && !(Array.isArray(fields) && fields.length > 0)) return false;
        return (
            (Array.isArray(expressions) ? expressions : []).every((r) => requirementHolds(r, labels[textOf(field(r, "key"), "")])) &&
            (Array.isArray(fields) ? fields : []).every((r) => {
                if (field(r, "key") !== "metadata.name") throw new ExitError(1, "fake kubectl: only metadata.name is supported in matchFields");
                return requirementHolds(r, node);
            })
        );
    });
}

/**
 * The DaemonSet controller (pkg/controller/daemon in kubernetes/kubernetes): a pod on each admitted
 * node, pods on other nodes deleted (they terminate gracefully), status to match. With RollingUpdate
 * every pod ends up on the new template; with OnDelete existing pods keep the old one, so only pods
 * created now count as updated (docs "Perform a Rolling Update on a DaemonSet": OnDelete replaces a
 * pod only when it is deleted by hand). With settings.rolloutSeconds the status first shows the rollout
 * in progress and reads done that many seconds later.
 */
function scheduleDaemonSet(cluster: FakeCluster, namespace: string, name: string, daemonSet: JsonObject, generation: number): void {
    const settings = cluster.settings();
    const admitted = settings.nodes.filter((node) => affinityAdmits(daemonSet, node, settings));
    const owned = cluster.list(namespace, "pod").filter((pod) => ownedBy(pod, name) && field(pod, "metadata", "deletionTimestamp") === undefined);
    for (const pod of owned) if (!admitted.includes(textOf(field(pod, "spec", "nodeName"), ""))) cluster.terminate(namespace, pod);
    const labels = asObject(field(daemonSet, "spec", "template", "metadata", "labels"));
    let created = 0;
    settings.nodes.forEach((node, i) => {
        if (!admitted.includes(node) || owned.some((pod) => field(pod, "spec", "nodeName") === node)) return;
        const podName = `${name}-${(i + 10).toString(36)}${node.replace(/[^a-z0-9]/g, "").slice(0, 3)}${generation}`;
        created++;
        cluster.write(namespace, "pod", podName, {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: podName, namespace, labels, ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name, controller: true }] },
            spec: { nodeName: node },
            status: { phase: "Running" },
        });
    });
    const count = admitted.length;
    const onDelete = textOf(field(daemonSet, "spec", "updateStrategy", "type"), "RollingUpdate") === "OnDelete";
    const updated = onDelete && generation > 1 ? created : count;
    const final: JsonObject = {
        currentNumberScheduled: count,
        desiredNumberScheduled: count,
        numberAvailable: count,
        numberMisscheduled: 0,
        numberReady: count,
        observedGeneration: generation,
        updatedNumberScheduled: updated,
    };
    const rolloutSeconds = settings.rolloutSeconds ?? 0;
    if (rolloutSeconds <= 0) {
        daemonSet["status"] = final;
        return;
    }
    daemonSet["status"] = { ...final, updatedNumberScheduled: onDelete ? updated : 0, numberAvailable: count - created, numberReady: count - created };
    mkdirSync(join(cluster.dir, "rollouts"), { recursive: true });
    const pending: PendingRollout = { namespace, name, generation, doneAt: Date.now() + rolloutSeconds * 1000, status: final };
    writeFileSync(join(cluster.dir, "rollouts", `${namespace}.${name}.json`), JSON.stringify(pending));
}

/** Release states `helm list` can filter on (helm/helm pkg/action/list.go ListStates). */
function releaseState(status: string): string {
    return status.startsWith("pending-") ? "pending" : status;
}

function helm(cluster: FakeCluster, argv: readonly string[], out: (text: string) => void): void {
    const version = cluster.settings().helmVersion ?? "v4.2.4+g6b9b3e4";
    const major = Number(/^v(\d+)\./.exec(version)?.[1] ?? "0");
    const args = parseArgs("helm", argv, HELM_GLOBAL, helmVerbs(major));
    const namespace = args.options.get("namespace") ?? "default";
    const rest = args.positional;
    const releasePath = (name: string) => join(cluster.dir, "helm", namespace, `${name}.json`);
    const readRelease = (name: string): FakeRelease | undefined =>
        existsSync(releasePath(name)) ? (JSON.parse(readFileSync(releasePath(name), "utf8")) as FakeRelease) : undefined;
    if (args.verb !== "version" && cluster.settings().unreachable) {
        throw new ExitError(
            1,
            'Error: Kubernetes cluster unreachable: Get "https://192.0.2.1:6443/version": dial tcp 192.0.2.1:6443: connect: connection refused',
        );
    }
    switch (args.verb) {
        case "version":
            out(args.flags.has("short") ? version : `version.BuildInfo{Version:"${version.split("+")[0] ?? version}"}`);
            return;
        case "list": {
            const folder = join(cluster.dir, "helm", namespace);
            const filter = new RegExp(args.options.get("filter") ?? "");
            const releases = existsSync(folder) ? readdirSync(folder).map((f) => JSON.parse(readFileSync(join(folder, f), "utf8")) as FakeRelease) : [];
            // SetStateMask: --all (Helm 3 only) lists every state; explicit state flags list those;
            // none at all lists deployed+failed in Helm 3 and every state in Helm 4 (commit 8a73d9798).
            const asked = HELM_LIST_STATES.filter((state) => args.flags.has(state));
            const shown = (status: string): boolean =>
                args.flags.has("all") ||
                (asked.length > 0 ? (asked as readonly string[]).includes(releaseState(status)) : major >= 4 || ["deployed", "failed"].includes(status));
            if (args.options.get("output") !== "json") throw new ExitError(2, "fake helm: list is modelled with -o json only");
            out(
                JSON.stringify(
                    releases
                        .filter((r) => filter.test(r.name) && shown(r.status))
                        .map((r) => ({
                            name: r.name,
                            namespace: r.namespace,
                            revision: String(r.revision),
                            updated: "2026-01-01 00:00:00 +0000 UTC",
                            status: r.status,
                            chart: r.chart,
                            app_version: r.appVersion,
                        })),
                ),
            );
            return;
        }
        case "get values": {
            const release = readRelease(rest[0] ?? "");
            // helm/helm pkg/storage/driver/driver.go ErrReleaseNotFound.
            if (!release) throw new ExitError(1, "Error: release: not found");
            if (args.options.get("output") !== "json") throw new ExitError(2, "fake helm: get values is modelled with -o json only");
            out(JSON.stringify(release.values));
            return;
        }
        case "upgrade": {
            const [name, chartRef] = rest;
            const release = readRelease(name ?? "");
            // helm/helm pkg/cmd/testdata/output/upgrade-with-bad-or-missing-existing-release.txt (v4.2.4).
            if (!release || !name || !chartRef) throw new ExitError(1, `Error: UPGRADE FAILED: "${name ?? ""}" has no deployed releases`);
            const chartVersion = args.options.get("version");
            const valuesFile = args.options.get("filename");
            if (!chartVersion || !valuesFile) throw new ExitError(2, "fake helm: upgrade is modelled with --version and -f only");
            const values = JSON.parse(readFileSync(valuesFile, "utf8")) as Record<string, unknown>;
            const chartName = chartRef.split("/").pop() ?? chartRef;
            const next: FakeRelease = {
                ...release,
                chart: `${chartName}-${chartVersion}`,
                appVersion: chartVersion,
                revision: release.revision + 1,
                values,
                status: "deployed",
            };
            writeFileSync(releasePath(name), `${JSON.stringify(next, null, 2)}\n`);
            out(`Release "${name}" has been upgraded. Happy Helming!`);
            return;
        }
        case "install": {
            const [name, chartRef] = rest;
            if (!name || !chartRef) throw new ExitError(1, `Error: "helm install" requires at least 1 argument`);
            // pkg/action/install.go availableName: a name in use (any state but uninstalled) is refused.
            const existing = readRelease(name);
            if (existing && existing.status !== "uninstalled") throw new ExitError(1, "Error: INSTALLATION FAILED: cannot re-use a name that is still in use");
            const chartVersion = args.options.get("version");
            const valuesFile = args.options.get("filename");
            if (!chartVersion || !valuesFile) throw new ExitError(2, "fake helm: install is modelled with --version and -f only");
            const values = JSON.parse(readFileSync(valuesFile, "utf8")) as JsonObject;
            const resources = renderCiliumPreflight(cluster, namespace, chartVersion, values);
            const chartName = chartRef.split("/").pop() ?? chartRef;
            const release: FakeRelease = {
                name,
                namespace,
                chart: `${chartName}-${chartVersion}`,
                appVersion: chartVersion,
                status: "deployed",
                revision: 1,
                values,
                resources,
            };
            mkdirSync(join(cluster.dir, "helm", namespace), { recursive: true });
            writeFileSync(releasePath(name), `${JSON.stringify(release, null, 2)}\n`);
            // Test-side record of what was installed (an uninstall purges the release, as real Helm does).
            appendFileSync(join(cluster.dir, "helm-installs.log"), `${JSON.stringify(release)}\n`);
            out(`NAME: ${name}\nNAMESPACE: ${namespace}\nSTATUS: deployed\nREVISION: 1`);
            return;
        }
        case "uninstall": {
            const name = rest[0] ?? "";
            const release = readRelease(name);
            // pkg/action/uninstall.go: "uninstall: Release not loaded: %s: %w" around driver.ErrReleaseNotFound.
            if (!release || release.status === "uninstalled") throw new ExitError(1, `Error: uninstall: Release not loaded: ${name}: release: not found`);
            for (const { kind, name: objectName } of release.resources ?? []) {
                cluster.remove(namespace, kind, objectName);
                // Helm deletes with background propagation; the garbage collector then removes the pods.
                if (kind === "daemonset") for (const pod of cluster.list(namespace, "pod")) if (ownedBy(pod, objectName)) cluster.terminate(namespace, pod);
            }
            rmSync(releasePath(name));
            out(`release "${name}" uninstalled`);
            return;
        }
        default:
            break;
    }
    throw new ExitError(2, `fake helm: unsupported call: helm ${argv.join(" ")}`);
}

/**
 * What the Cilium chart renders with the upgrade guide's pre-flight values (preflight.enabled=true,
 * agent=false, operator.enabled=false; Documentation/operations/upgrade.rst "Running pre-flight
 * check"): DaemonSet cilium-pre-flight-check (templates/cilium-preflight/daemonset.yaml: labels
 * k8s-app=cilium-pre-flight-check, the preflight image, tolerations from preflight.tolerations,
 * default operator: Exists) and, with preflight.validateCNPs (1.19 default true), a Deployment of the
 * same name (deployment.yaml). A pod becomes Ready once its image is pulled; on
 * settings.imagePullFailsOn nodes it stays waiting with ErrImagePull. Other values are refused: the
 * fake renders nothing else of the chart.
 */
function renderCiliumPreflight(cluster: FakeCluster, namespace: string, chartVersion: string, values: JsonObject): { kind: string; name: string }[] {
    if (field(values, "preflight", "enabled") !== true || values["agent"] !== false || field(values, "operator", "enabled") !== false) {
        throw new ExitError(
            2,
            "fake helm: install is modelled for the Cilium pre-flight rendering only (preflight.enabled=true, agent=false, operator.enabled=false)",
        );
    }
    const name = "cilium-pre-flight-check";
    // pkg/action/validate.go existingResourceConflict: objects another owner has are never adopted.
    for (const kind of ["daemonset", "deployment"]) {
        if (cluster.read(namespace, kind, name)) {
            throw new ExitError(
                1,
                `Error: INSTALLATION FAILED: Unable to continue with install: ${kind === "daemonset" ? "DaemonSet" : "Deployment"} "${name}" in namespace "${namespace}" exists and cannot be imported into the current release: invalid ownership metadata`,
            );
        }
    }
    const image = `quay.io/cilium/cilium:v${chartVersion}`;
    const labels = { "k8s-app": name, "app.kubernetes.io/name": name, "kubernetes.io/cluster-service": "true" };
    createObject(cluster, namespace, "daemonset", name, {
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        metadata: { name, namespace },
        spec: {
            selector: { matchLabels: { "k8s-app": name, "kubernetes.io/cluster-service": "true" } },
            template: {
                metadata: { labels },
                spec: { containers: [{ name, image }], hostNetwork: true, tolerations: [{ operator: "Exists" }] },
            },
        },
    });
    const failing = cluster.settings().imagePullFailsOn ?? [];
    const ds = cluster.read(namespace, "daemonset", name)!;
    let ready = 0;
    for (const pod of cluster.list(namespace, "pod").filter((p) => ownedBy(p, name))) {
        const node = textOf(field(pod, "spec", "nodeName"), "");
        const pulled = !failing.includes(node);
        if (pulled) ready++;
        // The kubelet's pod status: condition Ready follows the containers' readiness.
        pod["status"] = pulled
            ? {
                  phase: "Running",
                  conditions: [{ type: "Ready", status: "True" }],
                  containerStatuses: [{ name, image, ready: true, state: { running: { startedAt: "2026-01-01T00:00:00Z" } } }],
              }
            : {
                  phase: "Pending",
                  conditions: [{ type: "Ready", status: "False", reason: "ContainersNotReady" }],
                  containerStatuses: [{ name, image, ready: false, state: { waiting: { reason: "ErrImagePull" } } }],
              };
        cluster.write(namespace, "pod", textOf(field(pod, "metadata", "name"), ""), pod);
    }
    ds["status"] = { ...asObject(ds["status"]), numberReady: ready, numberAvailable: ready };
    cluster.write(namespace, "daemonset", name, ds);
    const resources = [{ kind: "daemonset", name }];
    if (field(values, "preflight", "validateCNPs") !== false) {
        createObject(cluster, namespace, "deployment", name, {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name, namespace, labels: { "app.kubernetes.io/name": name } },
            spec: { replicas: 1, selector: { matchLabels: { "k8s-app": `${name}-deployment` } } },
        });
        const deployment = cluster.read(namespace, "deployment", name)!;
        deployment["status"] = { replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1, observedGeneration: 1 };
        cluster.write(namespace, "deployment", name, deployment);
        resources.push({ kind: "deployment", name });
    }
    return resources;
}

/** settings.failures: counts matching calls in failures-<index>.count and fails past `allow`. */
function injectedFailure(cluster: FakeCluster, argv: readonly string[]): void {
    (cluster.settings().failures ?? []).forEach((failure, index) => {
        if (!failure.when.every((word) => argv.includes(word))) return;
        const counter = join(cluster.dir, `failures-${index}.count`);
        const seen = existsSync(counter) ? Number(readFileSync(counter, "utf8")) : 0;
        writeFileSync(counter, String(seen + 1));
        if (seen >= (failure.allow ?? 0)) throw new ExitError(1, failure.message);
    });
}

function main(): void {
    const [tool, ...argv] = process.argv.slice(2);
    const dir = process.env["FAKE_CLUSTER_DIR"];
    if (!dir || (tool !== "kubectl" && tool !== "helm")) {
        process.stderr.write("usage: FAKE_CLUSTER_DIR=dir fakeKubeCluster.ts kubectl|helm args...\n");
        process.exit(2);
    }
    const call: FakeCall = { tool, args: argv };
    appendFileSync(join(dir, "calls.log"), `${JSON.stringify(call)}\n`);
    const cluster = new FakeCluster(dir);
    const chunks: string[] = [];
    try {
        injectedFailure(cluster, argv);
        (tool === "kubectl" ? kubectl : helm)(cluster, argv, (text) => chunks.push(text));
        if (chunks.length > 0) process.stdout.write(`${chunks.join("\n")}\n`);
    } catch (error) {
        if (chunks.length > 0) process.stdout.write(`${chunks.join("\n")}\n`);
        const exit = error instanceof ExitError ? error : new ExitError(70, String(error));
        process.stderr.write(`${exit.message}\n`);
        process.exitCode = exit.code;
    }
}

if (require.main === module) main();
