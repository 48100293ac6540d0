/*
 * A stand-in for `kubectl` for the node-by-node (wave) scripts in components/waves/scripts/, run
 * through test/support/fake-wave-kubectl.sh. Kept apart from fakeKubeCluster.ts (the single-shot
 * scripts' stand-in) so each models only what its scripts touch. State is one JSON file
 * ($FAKE_WAVE_STATE); every call is appended to $FAKE_WAVE_STATE.calls (one JSON array a line).
 *
 * Modelled, with where it comes from:
 * - Node labels; `kubectl label` refuses to change an existing value without --overwrite
 *   ("error: 'K' already has a value (V), and --overwrite is false", kubectl/pkg/cmd/label).
 * - kube-proxy's DaemonSet controller: a pod on each node its required node affinity admits
 *   (terms ORed, requirements ANDed, NotIn also matching an absent label: k8s.io/component-helpers
 *   nodeaffinity); a node labelled out loses its pod, a node admitted again gets a Ready one.
 * - Cilium agents resolve their config only when their pod starts (docs "Per-node configuration"):
 *   cilium-config, then the CiliumNodeConfigs whose nodeSelector matches the node's labels, in name
 *   order, each overriding (cilium-dbg build-config default sources; pkg/option/resolver). With
 *   `resolverOrder: "configMapLast"` the ConfigMap is merged last, as in the stored resolver version
 *   that moves v2 CiliumNodeConfig sources first (so cilium-config wins), to test that the gates
 *   catch an override that does not take effect. The agent writes `config-sources` and every key
 *   to /tmp/cilium/config-map (resolver.WriteConfigurations).
 * - `cilium-dbg status -o json`: key kube-proxy-replacement, mode "True"/"False", false booleans
 *   omitted.
 * - TCP connections opened in an agent container (`timeout N bash -c 'exec 3<>"/dev/tcp/$1/$2"' ...`,
 *   the agent pod is hostNetwork, so this is the node's network namespace): see connectFromNode.
 * - Services and EndpointSlices: `create -f` allocates a NodePort (the API server does when none is
 *   given) and refuses an existing name ("Error from server (AlreadyExists)"); deleting a Service
 *   deletes the EndpointSlices it owns (ownerReferences, the garbage collector: Kubernetes docs
 *   "Garbage Collection", cascading deletion); `delete` without --ignore-not-found fails on an absent
 *   object (kubectl/pkg/cmd/delete).
 * - `kubectl drain` evicts through the Eviction API; a PodDisruptionBudget refusal is retried until
 *   --timeout (kubectl/pkg/drain): `pdbBlocks` lists nodes whose drain never finishes.
 * - `kubectl wait --for=condition=Ready` times out with "error: timed out waiting for the condition
 *   on pods/NAME" (kubectl/pkg/cmd/wait): `agentNeverReady` lists nodes whose new agent never is.
 * - ConfigMaps (the cluster script store, components/commands/clusterScriptStore.ts): `get` by name
 *   ("Error from server (NotFound): configmaps \"X\" not found"; with --ignore-not-found nothing and exit 0,
 *   kubectl/pkg/cmd/get/get.go) or by one key=value -l selector (a List); `create -f` refuses an existing
 *   name (AlreadyExists); `delete` by name, or by -l, printing `configmap "X" deleted from NS namespace`
 *   per object and "No resources found" when none matches (kubectl/pkg/cmd/delete/delete.go PrintObj,
 *   RunDelete); `label -l SELECTOR K=V` prints `configmap/X labeled` (or "not labeled" when unchanged)
 *   and refuses a different value without --overwrite (kubectl/pkg/cmd/label/label.go). An `immutable`
 *   ConfigMap's data cannot change, only its metadata (Kubernetes docs "Immutable ConfigMaps"): the
 *   stand-in has no verb that changes data, so only a test editing the state can alter one.
 * - Unknown flags fail with kubectl's "error: unknown flag: --X".
 */
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";

export interface LabelSelector {
    readonly matchLabels?: Readonly<Record<string, string>>;
    readonly matchExpressions?: readonly { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[];
}

export interface FakeNodeConfig {
    readonly name: string;
    readonly namespace: string;
    readonly nodeSelector: LabelSelector | null;
    readonly defaults: Readonly<Record<string, string>>;
}

export interface FakePod {
    name: string;
    namespace: string;
    app: "cilium" | "kube-proxy";
    nodeName: string;
    /** The agent's resolved config (agents only). */
    config?: Record<string, string>;
    /** Being deleted: still running, listed with a deletionTimestamp for this many more `get pods` calls. */
    terminating?: number;
}

export interface FakeService {
    metadata: { name: string; namespace: string; uid?: string; labels?: Record<string, string> };
    spec: { type?: string; clusterIP?: string; ipFamilies?: string[]; ports?: { name?: string; port: number; nodePort?: number; protocol?: string }[] };
}

export interface FakeEndpointSlice {
    metadata: { name: string; namespace: string; labels?: Record<string, string>; ownerReferences?: { kind: string; name: string; uid: string }[] };
    addressType: string;
    endpoints: { addresses: string[]; conditions?: { ready?: boolean } }[];
    ports?: { name?: string; port: number; protocol?: string }[];
}

export interface FakeConfigMap {
    metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string> };
    immutable?: boolean;
    data?: Record<string, string>;
}

export interface WaveClusterState {
    nodes: Record<string, { labels: Record<string, string>; unschedulable: boolean; addresses?: { type: string; address: string }[] }>;
    ciliumNamespace: string;
    ciliumConfig: Record<string, string>;
    nodeConfigs: FakeNodeConfig[];
    /** Served versions of ciliumnodeconfigs.cilium.io; null when the CRD is absent. */
    crdVersions: string[] | null;
    /** kube-proxy's DaemonSet in kube-system, null when deleted. */
    kubeProxy: Record<string, unknown> | null;
    pods: FakePod[];
    generation: number;
    services: FakeService[];
    endpointSlices: FakeEndpointSlice[];
    resolverOrder: "documented" | "configMapLast";
    pdbBlocks: string[];
    agentNeverReady: string[];
    /**
     * Nodes whose agent serves ClusterIPs but no NodePort on the node's InternalIP, as when that address
     * is not on one of the agent's `devices` (NodePort is served on those devices' addresses: Cilium's
     * kube-proxy-free guide, "NodePort Devices").
     */
    nodePortUnserved?: string[];
    /**
     * A validating admission webhook that denies NodePort Services (as policy engines' "restrict
     * NodePort" rules do), with the API server's wording: "admission webhook %q denied the request: %s"
     * (k8s.io/apiserver pkg/admission/plugin/webhook/errors).
     */
    denyNodePortServices?: string;
    /** UID of namespace kube-system (the cluster's identity); a default when unset. */
    kubeSystemUid?: string;
    /** ConfigMaps (the cluster script store's). */
    configMaps?: FakeConfigMap[];
    /** Nodes whose agent was restarted while a kube-proxy pod still ran there (terminating or not). */
    agentRestartedBesideKubeProxy?: string[];
}

class Exit extends Error {
    constructor(
        readonly code: number,
        message: string,
    ) {
        super(message);
    }
}

export function selectorMatches(selector: LabelSelector | null, labels: Readonly<Record<string, string>>): boolean {
    if (selector === null) return false;
    for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
    for (const r of selector.matchExpressions ?? []) {
        const value = labels[r.key];
        const values = r.values ?? [];
        const ok =
            r.operator === "In"
                ? value !== undefined && values.includes(value)
                : r.operator === "NotIn"
                  ? value === undefined || !values.includes(value)
                  : r.operator === "Exists"
                    ? value !== undefined
                    : value === undefined;
        if (!ok) return false;
    }
    return true;
}

function nodeTerms(ds: Record<string, unknown>): LabelSelector[] | undefined {
    const spec = (
        ds.spec as {
            template?: {
                spec?: { affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: LabelSelector[] } } } };
            };
        }
    ).template?.spec;
    return spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
}

/**
 * The DaemonSet controller for kube-proxy: one pod on every node the affinity admits. A pod on a node
 * it no longer admits is deleted gracefully: it keeps running, listed with a deletionTimestamp, for
 * two more listings (its terminationGracePeriodSeconds, shortened).
 */
export function scheduleKubeProxy(state: WaveClusterState): void {
    const keep: FakePod[] = state.pods.filter((p) => p.app !== "kube-proxy" || p.terminating !== undefined);
    const terms = state.kubeProxy === null ? undefined : nodeTerms(state.kubeProxy);
    for (const [name, node] of Object.entries(state.nodes)) {
        const existing = state.pods.find((p) => p.app === "kube-proxy" && p.nodeName === name && p.terminating === undefined);
        const admitted = state.kubeProxy !== null && (terms === undefined || terms.length === 0 || terms.some((t) => selectorMatches(t, node.labels)));
        if (admitted) keep.push(existing ?? { name: `kube-proxy-${name}-${++state.generation}`, namespace: "kube-system", app: "kube-proxy", nodeName: name });
        else if (existing) keep.push({ ...existing, terminating: 2 });
    }
    state.pods = keep;
}

/** What an agent starting on `node` resolves (the init container `config`). */
export function resolveAgentConfig(state: WaveClusterState, node: string): Record<string, string> {
    const labels = state.nodes[node]!.labels;
    const ns = state.ciliumNamespace;
    const matching = state.nodeConfigs
        .filter((c) => c.namespace === ns && Object.keys(c.defaults).length > 0 && selectorMatches(c.nodeSelector, labels))
        .sort((a, b) => a.name.localeCompare(b.name));
    const fromNodeConfigs = Object.assign({}, ...matching.map((c) => c.defaults)) as Record<string, string>;
    const merged = state.resolverOrder === "documented" ? { ...state.ciliumConfig, ...fromNodeConfigs } : { ...fromNodeConfigs, ...state.ciliumConfig };
    const sources = [`config-map:${ns}/cilium-config`, ...matching.map((c) => `cilium-node-config:${ns}/${c.name}`)];
    return { ...merged, "config-sources": sources.join(",") };
}

export function startAgent(state: WaveClusterState, node: string): FakePod {
    const pod: FakePod = { name: `cilium-${node}-${++state.generation}`, namespace: state.ciliumNamespace, app: "cilium", nodeName: node };
    pod.config = resolveAgentConfig(state, node);
    state.pods.push(pod);
    return pod;
}

function agentStatus(pod: FakePod): unknown {
    const kpr = pod.config?.["kube-proxy-replacement"] === "true";
    return {
        "kube-proxy-replacement": kpr
            ? { mode: "True", features: { socketLB: { enabled: true }, nodePort: { enabled: true, mode: "SNAT" } } }
            : { mode: "False", features: {} },
    };
}

/** The Service's ready endpoints, from the EndpointSlices labelled with its name (kubernetes.io/service-name). */
function readyEndpoints(state: WaveClusterState, svc: FakeService): number {
    return state.endpointSlices
        .filter((e) => e.metadata.namespace === svc.metadata.namespace && e.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name)
        .flatMap((e) => e.endpoints)
        .filter((e) => e.conditions?.ready !== false).length;
}

/**
 * A TCP connection opened on `node` (in its network namespace) to ip:port, as bash's /dev/tcp reports
 * it. Services are served on the node by kube-proxy while a kube-proxy pod runs there (a terminating one
 * still runs), or by a KPR agent: one that resolved kube-proxy-replacement "true" and, because the
 * connection comes from the host's own namespace, socket LB (`bpf-lb-sock`, Cilium's connect() hooks,
 * bpf/bpf_sock.c). kube-proxy's rules left behind after its pod is gone are not modelled: the fake
 * serves less than a real node, never more. A Service with no ready endpoint is rejected (kube-proxy
 * installs a REJECT rule for it). A ClusterIP nobody serves is routed off the node and never answers
 * (the `timeout` ends it: exit 124); a NodePort nobody serves reaches the host's own stack, where
 * nothing listens: "Connection refused".
 */
export function connectFromNode(state: WaveClusterState, node: string, ip: string, port: number): void {
    const agent = state.pods.find((p) => p.app === "cilium" && p.nodeName === node && p.terminating === undefined);
    const kprAgent = agent?.config?.["kube-proxy-replacement"] === "true" && agent.config["bpf-lb-sock"] === "true";
    const kubeProxy = state.pods.some((p) => p.app === "kube-proxy" && p.nodeName === node);
    const served = kprAgent || kubeProxy;
    const refused = new Exit(
        1,
        `node-check: connect: Connection refused\nnode-check: line 1: /dev/tcp/${ip}/${port}: Connection refused\ncommand terminated with exit code 1`,
    );
    const byClusterIP = state.services.find((s) => s.spec.clusterIP === ip && (s.spec.ports ?? []).some((p) => p.port === port));
    if (byClusterIP !== undefined) {
        if (!served) throw new Exit(124, "command terminated with exit code 124");
        if (readyEndpoints(state, byClusterIP) === 0) throw refused;
        return;
    }
    const own = (state.nodes[node]?.addresses ?? []).some((a) => a.address === ip);
    if (!own) throw new Exit(1, `error: the fake does not model a connection from ${node} to ${ip}`);
    const byNodePort = state.services.find((s) => s.spec.type === "NodePort" && (s.spec.ports ?? []).some((p) => p.nodePort === port));
    const nodePortServed = kubeProxy || (kprAgent && !(state.nodePortUnserved ?? []).includes(node));
    if (byNodePort === undefined || !nodePortServed || readyEndpoints(state, byNodePort) === 0) throw refused;
}

interface Parsed {
    positional: string[];
    flags: Map<string, string>;
    afterDash: string[];
}

/**
 * Flags each verb accepts: a subset of kubectl 1.35's, each one a flag that verb really has
 * (kubernetes/kubectl pkg/cmd/get/get.go -o/-l/--field-selector/-A/--ignore-not-found,
 * label/label.go --overwrite/-l, delete/delete_flags.go --wait/--ignore-not-found/-l, create/create.go -f/-o,
 * wait/wait.go --for/--timeout,
 * exec/exec.go -c, replace/replace.go -f, rollout/rollout_status.go --timeout,
 * drain/drain.go --ignore-daemonsets/--delete-emptydir-data/--timeout). Anything else is refused as
 * kubectl refuses an unknown flag, so a script cannot rely on a flag the stand-in merely ignores.
 */
const VERB_FLAGS: Readonly<Record<string, readonly string[]>> = {
    get: ["-o", "-l", "--field-selector", "-A", "--ignore-not-found"],
    label: ["--overwrite", "-l"],
    delete: ["--wait", "--ignore-not-found", "-l"],
    create: ["-f", "-o"],
    wait: ["--for", "--timeout"],
    exec: ["-c"],
    replace: ["-f"],
    rollout: ["--timeout"],
    drain: ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout"],
    cordon: [],
    uncordon: [],
};
const BOOLEAN_FLAGS = new Set(["--overwrite", "-A", "--ignore-not-found", "--ignore-daemonsets", "--delete-emptydir-data"]);
const CONNECT = `exec 3<>"/dev/tcp/$1/$2"`;

function parse(argv: readonly string[]): { namespace: string | undefined; parsed: Parsed } {
    const positional: string[] = [];
    const flags = new Map<string, string>();
    let namespace: string | undefined;
    let afterDash: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        if (arg === "--") {
            afterDash = argv.slice(i + 1);
            break;
        }
        if (arg === "-n" || arg === "--namespace") namespace = argv[++i];
        else if (arg === "--context") i++;
        else if (arg.startsWith("-")) {
            const eq = arg.indexOf("=");
            const name = eq > 0 ? arg.slice(0, eq) : arg;
            if (eq > 0) flags.set(name, arg.slice(eq + 1));
            else if (BOOLEAN_FLAGS.has(name)) flags.set(name, "true");
            else flags.set(name, argv[++i] ?? "");
        } else positional.push(arg);
    }
    const verb = positional[0] ?? "";
    const allowed = VERB_FLAGS[verb];
    if (allowed === undefined) throw new Exit(1, `error: unknown command "${verb}" for "kubectl"`);
    for (const name of flags.keys()) if (!allowed.includes(name)) throw new Exit(1, `error: unknown flag: ${name}`);
    return { namespace, parsed: { positional, flags, afterDash } };
}

function nodeObject(state: WaveClusterState, name: string): unknown {
    const node = state.nodes[name];
    if (node === undefined) throw new Exit(1, `Error from server (NotFound): nodes "${name}" not found`);
    return {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name, labels: { ...node.labels } },
        spec: node.unschedulable ? { unschedulable: true } : {},
        status: { addresses: node.addresses ?? [] },
    };
}

function podObject(pod: FakePod): unknown {
    return {
        metadata: {
            name: pod.name,
            namespace: pod.namespace,
            labels: { "k8s-app": pod.app },
            ...(pod.terminating !== undefined ? { deletionTimestamp: "2026-11-29T16:00:00Z" } : {}),
        },
        spec: { nodeName: pod.nodeName },
        status: { phase: "Running" },
    };
}

/** One key=value label selector (all the store's scripts use). */
function selectedConfigMaps(state: WaveClusterState, namespace: string, selector: string): FakeConfigMap[] {
    const m = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(selector);
    if (!m) throw new Exit(1, `error: the fake selects ConfigMaps by one key=value label only (got '${selector}')`);
    return (state.configMaps ?? []).filter((c) => c.metadata.namespace === namespace && c.metadata.labels?.[m[1]!] === m[2]);
}

function configMapNamed(state: WaveClusterState, namespace: string, name: string): FakeConfigMap | undefined {
    return (state.configMaps ?? []).find((c) => c.metadata.namespace === namespace && c.metadata.name === name);
}

function configMapObject(c: FakeConfigMap): unknown {
    return { apiVersion: "v1", kind: "ConfigMap", ...c };
}

function findPod(state: WaveClusterState, namespace: string, name: string): FakePod {
    const pod = state.pods.find((p) => p.name === name && p.namespace === namespace);
    if (pod === undefined) throw new Exit(1, `Error from server (NotFound): pods "${name}" not found`);
    return pod;
}

export function kubectl(state: WaveClusterState, argv: readonly string[]): string {
    const { namespace = "default", parsed } = parse(argv);
    const { positional, flags } = parsed;
    const [verb, kind, name] = positional;
    const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
    switch (verb) {
        case "get": {
            const output = flags.get("-o");
            if (kind === "node" && name !== undefined) return json(nodeObject(state, name));
            if (kind === "nodes") return json({ items: Object.keys(state.nodes).map((n) => nodeObject(state, n)) });
            if (kind === "pods") {
                const app = flags.get("-l")?.replace(/^k8s-app=/, "");
                const onNode = flags.get("--field-selector")?.replace(/^spec\.nodeName=/, "");
                const items = state.pods.filter((p) => p.namespace === namespace && p.app === app && (onNode === undefined || p.nodeName === onNode));
                const listed = json({ items: items.map(podObject) });
                // Each listing lets terminating pods run down their grace period.
                for (const p of items) if (p.terminating !== undefined) p.terminating--;
                state.pods = state.pods.filter((p) => p.terminating === undefined || p.terminating > 0);
                return listed;
            }
            if (kind === "daemonset") {
                if (namespace !== "kube-system" || name !== "kube-proxy" || state.kubeProxy === null)
                    throw new Exit(1, `Error from server (NotFound): daemonsets.apps "${name}" not found`);
                return output === "name" ? `daemonset.apps/${name}\n` : json(state.kubeProxy);
            }
            if (kind === "crd") {
                if (state.crdVersions === null)
                    throw new Exit(1, `Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "${name}" not found`);
                return json({ spec: { versions: ["v2alpha1", "v2"].map((v) => ({ name: v, served: state.crdVersions!.includes(v) })) } });
            }
            if (kind === "configmap") {
                if (name === undefined) {
                    const selector = flags.get("-l");
                    if (selector === undefined) throw new Exit(1, "error: the fake lists ConfigMaps by -l only");
                    return json({ apiVersion: "v1", kind: "List", items: selectedConfigMaps(state, namespace, selector).map(configMapObject) });
                }
                const cm = configMapNamed(state, namespace, name);
                if (cm === undefined) {
                    if (flags.has("--ignore-not-found")) return "";
                    throw new Exit(1, `Error from server (NotFound): configmaps "${name}" not found`);
                }
                return json(configMapObject(cm));
            }
            if (kind === "namespace" && name === "kube-system")
                return json({ metadata: { name, uid: state.kubeSystemUid ?? "3f6c1d2e-0000-4000-8000-000000000001" } });
            if (kind === "service" && name !== undefined) {
                const svc = state.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
                if (svc === undefined) throw new Exit(1, `Error from server (NotFound): services "${name}" not found`);
                return json(svc);
            }
            if (kind === "endpointslices" && name === undefined) {
                const wanted = /^kubernetes\.io\/service-name=([a-z0-9.-]+)$/.exec(flags.get("-l") ?? "");
                if (!wanted) throw new Exit(1, "error: the fake lists EndpointSlices by -l kubernetes.io/service-name=NAME only");
                const items = state.endpointSlices.filter(
                    (e) => e.metadata.namespace === namespace && e.metadata.labels?.["kubernetes.io/service-name"] === wanted[1],
                );
                return json({ items });
            }
            throw new Exit(1, `error: the fake does not model get ${kind}`);
        }
        case "label": {
            if (kind === "configmap" && flags.has("-l")) {
                const changes = positional.slice(2).map((c) => c.split("=") as [string, string]);
                let out = "";
                for (const cm of selectedConfigMaps(state, namespace, flags.get("-l")!)) {
                    const labels = (cm.metadata.labels ??= {});
                    for (const [k, v] of changes)
                        if (labels[k] !== undefined && labels[k] !== v && !flags.has("--overwrite"))
                            throw new Exit(1, `error: '${k}' already has a value (${labels[k]}), and --overwrite is false`);
                    const changed = changes.some(([k, v]) => labels[k] !== v);
                    for (const [k, v] of changes) labels[k] = v;
                    out += `configmap/${cm.metadata.name} ${changed ? "labeled" : "not labeled"}\n`;
                }
                return out;
            }
            if (kind !== "node" || name === undefined) throw new Exit(1, "error: the fake labels nodes only");
            const node = state.nodes[name];
            if (node === undefined) throw new Exit(1, `Error from server (NotFound): nodes "${name}" not found`);
            for (const change of positional.slice(3)) {
                if (change.endsWith("-")) {
                    delete node.labels[change.slice(0, -1)];
                    continue;
                }
                const [k, v] = change.split("=") as [string, string];
                if (node.labels[k] !== undefined && node.labels[k] !== v && !flags.has("--overwrite"))
                    throw new Exit(1, `error: '${k}' already has a value (${node.labels[k]}), and --overwrite is false`);
                node.labels[k] = v;
            }
            scheduleKubeProxy(state);
            return `node/${name} labeled\n`;
        }
        case "create": {
            const object = JSON.parse(readFileSync(flags.get("-f")!, "utf8")) as { kind?: string; metadata: { name: string; namespace?: string } };
            const ns = object.metadata.namespace ?? namespace;
            if (object.kind === "Service") {
                const svc = object as unknown as FakeService;
                if (svc.spec.type === "NodePort" && state.denyNodePortServices !== undefined)
                    throw new Exit(
                        1,
                        `Error from server: error when creating "${flags.get("-f")}": admission webhook "${state.denyNodePortServices}" denied the request: NodePort Services are not allowed`,
                    );
                if (state.services.some((s) => s.metadata.namespace === ns && s.metadata.name === svc.metadata.name))
                    throw new Exit(
                        1,
                        `Error from server (AlreadyExists): error when creating "${flags.get("-f")}": services "${svc.metadata.name}" already exists`,
                    );
                const used = new Set(state.services.flatMap((s) => (s.spec.ports ?? []).map((p) => p.nodePort)));
                let next = 30000;
                for (const p of svc.spec.ports ?? []) {
                    if (svc.spec.type !== "NodePort" || p.nodePort !== undefined) continue;
                    while (used.has(next)) next++;
                    p.nodePort = next;
                    used.add(next);
                }
                svc.metadata = { ...svc.metadata, namespace: ns, uid: `uid-${svc.metadata.name}-${++state.generation}` };
                svc.spec.clusterIP = `172.27.9.${state.generation % 250}`;
                state.services.push(svc);
                return flags.get("-o") === "json" ? json(svc) : `service/${svc.metadata.name} created\n`;
            }
            if (object.kind === "EndpointSlice") {
                const slice = object as unknown as FakeEndpointSlice;
                if (state.endpointSlices.some((e) => e.metadata.namespace === ns && e.metadata.name === slice.metadata.name))
                    throw new Exit(
                        1,
                        `Error from server (AlreadyExists): error when creating "${flags.get("-f")}": endpointslices.discovery.k8s.io "${slice.metadata.name}" already exists`,
                    );
                slice.metadata = { ...slice.metadata, namespace: ns };
                state.endpointSlices.push(slice);
                return flags.get("-o") === "json" ? json(slice) : `endpointslice.discovery.k8s.io/${slice.metadata.name} created\n`;
            }
            if (object.kind === "ConfigMap") {
                const cm = object as unknown as FakeConfigMap;
                if (configMapNamed(state, ns, cm.metadata.name) !== undefined)
                    throw new Exit(
                        1,
                        `Error from server (AlreadyExists): error when creating "${flags.get("-f")}": configmaps "${cm.metadata.name}" already exists`,
                    );
                const stored: FakeConfigMap = { metadata: { ...cm.metadata, namespace: ns }, immutable: cm.immutable, data: cm.data };
                state.configMaps = [...(state.configMaps ?? []), stored];
                return flags.get("-o") === "json" ? json(configMapObject(stored)) : `configmap/${cm.metadata.name} created\n`;
            }
            throw new Exit(1, `error: the fake does not model create ${String(object.kind)}`);
        }
        case "delete": {
            if (kind === "configmap") {
                const selector = flags.get("-l");
                const doomed =
                    selector !== undefined && name === undefined
                        ? selectedConfigMaps(state, namespace, selector)
                        : [configMapNamed(state, namespace, name ?? "")].filter((c) => c !== undefined);
                if (selector === undefined && doomed.length === 0) {
                    if (flags.has("--ignore-not-found")) return "";
                    throw new Exit(1, `Error from server (NotFound): configmaps "${name}" not found`);
                }
                if (doomed.length === 0) return "No resources found\n";
                state.configMaps = (state.configMaps ?? []).filter((c) => !doomed.includes(c));
                return doomed.map((c) => `configmap "${c.metadata.name}" deleted from ${namespace} namespace\n`).join("");
            }
            if ((kind === "service" || kind === "endpointslice") && name !== undefined) {
                if (kind === "service") {
                    const svc = state.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
                    if (svc === undefined) {
                        if (flags.has("--ignore-not-found")) return "";
                        throw new Exit(1, `Error from server (NotFound): services "${name}" not found`);
                    }
                    state.services = state.services.filter((s) => s !== svc);
                    state.endpointSlices = state.endpointSlices.filter((e) => !(e.metadata.ownerReferences ?? []).some((o) => o.uid === svc.metadata.uid));
                    return `service "${name}" deleted\n`;
                }
                const slice = state.endpointSlices.find((e) => e.metadata.namespace === namespace && e.metadata.name === name);
                if (slice === undefined) {
                    if (flags.has("--ignore-not-found")) return "";
                    throw new Exit(1, `Error from server (NotFound): endpointslices.discovery.k8s.io "${name}" not found`);
                }
                state.endpointSlices = state.endpointSlices.filter((e) => e !== slice);
                return `endpointslice.discovery.k8s.io "${name}" deleted\n`;
            }
            if (kind !== "pod" || name === undefined) throw new Exit(1, "error: the fake deletes pods, services and endpointslices only");
            const pod = findPod(state, namespace, name);
            state.pods = state.pods.filter((p) => p !== pod);
            if (pod.app === "cilium" && state.pods.some((p) => p.app === "kube-proxy" && p.nodeName === pod.nodeName))
                state.agentRestartedBesideKubeProxy = [...(state.agentRestartedBesideKubeProxy ?? []), pod.nodeName];
            if (pod.app === "cilium") startAgent(state, pod.nodeName);
            else scheduleKubeProxy(state);
            return `pod "${name}" deleted\n`;
        }
        case "wait": {
            const podName = (kind ?? "").replace(/^pod\//, "");
            const pod = findPod(state, namespace, podName);
            if (pod.app === "cilium" && state.agentNeverReady.includes(pod.nodeName))
                throw new Exit(1, `error: timed out waiting for the condition on pods/${podName}`);
            return `pod/${podName} condition met\n`;
        }
        case "exec": {
            const pod = findPod(state, namespace, kind ?? "");
            const command = parsed.afterDash.join(" ");
            if (pod.app !== "cilium" || flags.get("-c") !== "cilium-agent") throw new Exit(1, "error: the fake execs in cilium-agent containers only");
            if (command === "cilium-dbg status -o json") return json(agentStatus(pod));
            const args = parsed.afterDash;
            if (args.length === 8 && args[0] === "timeout" && /^[1-9][0-9]*$/.test(args[1]!) && args[2] === "bash" && args[3] === "-c" && args[4] === CONNECT) {
                if (!/^[0-9]+$/.test(args[7]!))
                    throw new Exit(1, `${args[5]}: line 1: /dev/tcp/${args[6]}/${args[7]}: Invalid argument\ncommand terminated with exit code 1`);
                connectFromNode(state, pod.nodeName, args[6]!, Number(args[7]));
                return "";
            }
            const file = /^cat \/tmp\/cilium\/config-map\/([A-Za-z0-9._-]+)$/.exec(command);
            if (file) {
                const value = pod.config?.[file[1]!];
                if (value === undefined)
                    throw new Exit(1, `cat: /tmp/cilium/config-map/${file[1]}: No such file or directory\ncommand terminated with exit code 1`);
                return value;
            }
            throw new Exit(1, `error: the fake does not model exec ${command}`);
        }
        case "replace": {
            const object = JSON.parse(readFileSync(flags.get("-f")!, "utf8")) as Record<string, unknown>;
            if (state.kubeProxy === null) throw new Exit(1, 'Error from server (NotFound): daemonsets.apps "kube-proxy" not found');
            const live = (state.kubeProxy.metadata as { resourceVersion: string }).resourceVersion;
            const sent = (object.metadata as { resourceVersion?: string }).resourceVersion;
            if (sent !== undefined && sent !== live)
                throw new Exit(
                    1,
                    'Error from server (Conflict): error when replacing "-": Operation cannot be fulfilled on daemonsets.apps "kube-proxy": the object has been modified; please apply your changes to the latest version and try again',
                );
            (object.metadata as { resourceVersion: string }).resourceVersion = String(Number(live) + 1);
            state.kubeProxy = object;
            return "daemonset.apps/kube-proxy replaced\n";
        }
        case "rollout": {
            if (state.kubeProxy === null) throw new Exit(1, 'Error from server (NotFound): daemonsets.apps "kube-proxy" not found');
            scheduleKubeProxy(state);
            return 'daemon set "kube-proxy" successfully rolled out\n';
        }
        case "cordon":
        case "uncordon": {
            const node = state.nodes[kind ?? ""];
            if (node === undefined) throw new Exit(1, `Error from server (NotFound): nodes "${kind}" not found`);
            node.unschedulable = verb === "cordon";
            return `node/${kind} ${verb === "cordon" ? "cordoned" : "uncordoned"}\n`;
        }
        case "drain": {
            const node = state.nodes[kind ?? ""];
            if (node === undefined) throw new Exit(1, `Error from server (NotFound): nodes "${kind}" not found`);
            node.unschedulable = true;
            if (state.pdbBlocks.includes(kind!))
                throw new Exit(
                    1,
                    `node/${kind} cordoned\nevicting pod default/web-0\nerror when evicting pods/"web-0" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n` +
                        `error: unable to drain node "${kind}" due to error: [error when evicting pods/"web-0" -n "default": global timeout reached: ${flags.get("--timeout")}], continuing command...`,
                );
            return `node/${kind} cordoned\nnode/${kind} drained\n`;
        }
    }
    throw new Exit(1, `error: unknown command "${verb}" for "kubectl"`);
}

function main(): void {
    const file = process.env.FAKE_WAVE_STATE;
    if (!file) throw new Error("FAKE_WAVE_STATE is not set");
    const argv = process.argv.slice(2);
    appendFileSync(`${file}.calls`, `${JSON.stringify(argv)}\n`);
    const state = JSON.parse(readFileSync(file, "utf8")) as WaveClusterState;
    try {
        const out = kubectl(state, argv);
        writeFileSync(file, JSON.stringify(state));
        process.stdout.write(out);
    } catch (error) {
        if (!(error instanceof Exit)) throw error;
        writeFileSync(file, JSON.stringify(state));
        process.stderr.write(`${error.message}\n`);
        process.exit(error.code);
    }
}

if (require.main === module) main();
