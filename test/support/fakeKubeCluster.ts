/*
 * A stand-in for `kubectl` and `helm`, run through test/support/fake-kubectl and fake-helm.
 * It answers from a scenario directory ($FAKE_CLUSTER_DIR) whose files are the cluster's
 * state, so create/replace/delete change what later `get`s return, and it appends every call
 * to calls.log (one JSON line each) for tests to assert on. It mimics the API server where
 * the scripts depend on it: server-set fields on create, refusal to create an object that
 * carries a resourceVersion, AlreadyExists / NotFound errors, --ignore-not-found, rollout
 * status honouring --timeout, DaemonSet pods appearing on create and going on delete, and
 * following the pod template's required node affinity on create and replace.
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
 *   calls.log                        one FakeCall per line
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface FakeSettings {
    /** Node names; a created DaemonSet schedules one pod on each. */
    readonly nodes: readonly string[];
    /** When true, deleting a DaemonSet leaves its pods behind (they never terminate). */
    readonly podsLinger?: boolean;
    /** When true, `kubectl version` cannot reach the server. */
    readonly unreachable?: boolean;
    readonly serverVersion?: string;
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

/** Options that take a value, and their long spellings. */
const VALUE_OPTIONS: Readonly<Record<string, string>> = {
    "-n": "namespace",
    "--namespace": "namespace",
    "--context": "context",
    "--kube-context": "context",
    "-o": "output",
    "--output": "output",
    "-l": "selector",
    "--selector": "selector",
    "-f": "filename",
    "--filename": "filename",
    "-c": "container",
    "--container": "container",
    "--timeout": "timeout",
    "--request-timeout": "request-timeout",
    "--raw": "raw",
    "--version": "version",
    "--repo": "repo",
    "--filter": "filter",
    "--max": "max",
    "--values": "filename",
};

interface ParsedArgs {
    readonly positional: string[];
    readonly options: Map<string, string>;
    readonly flags: Set<string>;
    /** Everything after a bare `--` (the command of kubectl exec). */
    readonly command: string[];
}

function parseArgs(argv: readonly string[]): ParsedArgs {
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
        const eq = arg.indexOf("=");
        const name = arg.startsWith("-") && eq > 0 ? arg.slice(0, eq) : arg;
        const option = VALUE_OPTIONS[name];
        if (option) {
            const value = eq > 0 && arg.startsWith("-") ? arg.slice(eq + 1) : argv[++i];
            if (value === undefined) throw new ExitError(1, `error: flag needs an argument: ${name}`);
            options.set(option, value);
        } else if (arg.startsWith("-")) {
            flags.add(name);
        } else {
            positional.push(arg);
        }
    }
    return { positional, options, flags, command };
}

class FakeCluster {
    constructor(readonly dir: string) {}

    settings(): FakeSettings {
        return JSON.parse(readFileSync(join(this.dir, "settings.json"), "utf8")) as FakeSettings;
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

    nextResourceVersion(): string {
        const path = join(this.dir, "resource-version");
        const next = (existsSync(path) ? Number(readFileSync(path, "utf8")) : 1000) + 1;
        writeFileSync(path, String(next));
        return String(next);
    }
}

function notFound(kind: string, name: string): ExitError {
    return new ExitError(1, `Error from server (NotFound): ${RESOURCE_NAMES[kind] ?? kind} "${name}" not found`);
}

function labelsMatch(object: JsonObject, selector: string | undefined): boolean {
    if (!selector) return true;
    const labels = asObject(field(object, "metadata", "labels"));
    return selector.split(",").every((term) => {
        const [key, value] = term.split("=");
        return key !== undefined && labels[key] === value;
    });
}

function seconds(text: string | undefined, fallback: number): number {
    if (!text) return fallback;
    const match = /^(\d+)(s|m)?$/.exec(text);
    if (!match) throw new ExitError(1, `error: invalid duration "${text}"`);
    return Number(match[1]) * (match[2] === "m" ? 60 : 1);
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

function daemonSetRolledOut(ds: JsonObject): boolean {
    const status = asObject(ds["status"]);
    const desired = Number(status["desiredNumberScheduled"] ?? 0);
    return (
        desired > 0 &&
        Number(status["numberReady"] ?? 0) === desired &&
        Number(status["updatedNumberScheduled"] ?? 0) === desired &&
        Number(status["observedGeneration"] ?? 0) >= Number(field(ds, "metadata", "generation") ?? 0)
    );
}

function deploymentRolledOut(deployment: JsonObject): boolean {
    const status = asObject(deployment["status"]);
    const replicas = Number(field(deployment, "spec", "replicas") ?? 1);
    return (
        Number(status["updatedReplicas"] ?? 0) === replicas &&
        Number(status["availableReplicas"] ?? 0) === replicas &&
        Number(status["observedGeneration"] ?? 0) >= Number(field(deployment, "metadata", "generation") ?? 0)
    );
}

function kubectl(cluster: FakeCluster, argv: readonly string[], out: (text: string) => void): void {
    const args = parseArgs(argv);
    const namespace = args.options.get("namespace") ?? "default";
    const [verb, ...rest] = args.positional;
    switch (verb) {
        case "version": {
            const settings = cluster.settings();
            if (settings.unreachable)
                throw new ExitError(1, "The connection to the server 192.0.2.1:6443 was refused - did you specify the right host or port?");
            out(JSON.stringify({ clientVersion: { gitVersion: "v1.31.4" }, serverVersion: { gitVersion: settings.serverVersion ?? "v1.31.4" } }));
            return;
        }
        case "config":
            if (rest[0] === "current-context") {
                out("fake-context");
                return;
            }
            break;
        case "get": {
            const raw = args.options.get("raw");
            if (raw !== undefined) {
                if (raw === "/readyz") {
                    out("ok");
                    return;
                }
                throw new ExitError(1, `Error from server (NotFound): the server could not find the requested resource`);
            }
            const kind = kindOf(rest[0] ?? "");
            const name = rest[1];
            const output = args.options.get("output");
            if (kind === "node") {
                const nodes = cluster.settings().nodes.filter((n) => name === undefined || n === name);
                if (name !== undefined && nodes.length === 0) {
                    if (args.flags.has("--ignore-not-found")) return;
                    throw notFound(kind, name);
                }
                const objects = nodes.map(nodeObject);
                out(
                    output === "name"
                        ? nodes.map((n) => `node/${n}`).join("\n")
                        : JSON.stringify(name === undefined ? { apiVersion: "v1", kind: "List", items: objects } : objects[0], null, 4),
                );
                return;
            }
            if (name !== undefined) {
                const object = cluster.read(namespace, kind, name);
                if (!object) {
                    if (args.flags.has("--ignore-not-found")) return;
                    throw notFound(kind, name);
                }
                out(output === "name" ? `${kind}/${name}` : JSON.stringify(object, null, 4));
                return;
            }
            const items = cluster.list(namespace, kind).filter((o) => labelsMatch(o, args.options.get("selector")));
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
            if (!filename) break;
            const object = readInput(filename);
            const kind = kindOf(textOf(object["kind"], ""));
            const name = textOf(field(object, "metadata", "name"), "");
            const ns = textOf(field(object, "metadata", "namespace"), namespace);
            const existing = cluster.read(ns, kind, name);
            const metadata = asObject(object["metadata"]);
            if (kind === "daemonset") rejectInvalidNodeAffinity(object, filename);
            if (verb === "create") {
                if (metadata["resourceVersion"] !== undefined) {
                    throw new ExitError(
                        1,
                        `Error from server (BadRequest): error when creating "${filename}": resourceVersion should not be set on objects to be created`,
                    );
                }
                if (existing)
                    throw new ExitError(
                        1,
                        `Error from server (AlreadyExists): error when creating "${filename}": ${RESOURCE_NAMES[kind]} "${name}" already exists`,
                    );
                createObject(cluster, ns, kind, name, object);
                out(`${kind}/${name} created`);
            } else {
                if (!existing) throw notFound(kind, name);
                const kept = asObject(existing["metadata"]);
                object["metadata"] = {
                    ...metadata,
                    namespace: ns,
                    uid: kept["uid"] ?? null,
                    creationTimestamp: kept["creationTimestamp"] ?? null,
                    resourceVersion: cluster.nextResourceVersion(),
                };
                if (kind === "daemonset") {
                    const generation = Number(kept["generation"] ?? 1) + 1;
                    object["metadata"] = { ...asObject(object["metadata"]), generation };
                    scheduleDaemonSet(cluster, ns, name, object, generation);
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
                if (args.flags.has("--ignore-not-found")) return;
                throw notFound(kind, name);
            }
            cluster.remove(namespace, kind, name);
            if (kind === "daemonset" && !cluster.settings().podsLinger) {
                for (const pod of cluster.list(namespace, "pod")) {
                    const owners = field(pod, "metadata", "ownerReferences");
                    if (Array.isArray(owners) && owners.some((o) => isObject(o) && o["kind"] === "DaemonSet" && o["name"] === name)) {
                        cluster.remove(namespace, "pod", textOf(field(pod, "metadata", "name"), ""));
                    }
                }
            }
            out(`${kind} "${name}" deleted`);
            return;
        }
        case "rollout": {
            if (rest[0] !== "status") break;
            const [kindWord, name] = (rest[1] ?? "").split("/");
            const kind = kindOf(kindWord ?? "");
            const object = cluster.read(namespace, kind, name ?? "");
            if (!object) throw notFound(kind, name ?? "");
            if (kind === "daemonset" && textOf(field(object, "spec", "updateStrategy", "type"), "RollingUpdate") !== "RollingUpdate") {
                throw new ExitError(1, "error: rollout status is only available for RollingUpdate strategy type");
            }
            const done = kind === "daemonset" ? daemonSetRolledOut(object) : deploymentRolledOut(object);
            if (done) {
                out(kind === "daemonset" ? `daemon set "${name}" successfully rolled out` : `deployment "${name}" successfully rolled out`);
                return;
            }
            out(`Waiting for ${kind} "${name}" rollout to finish: 0 of 1 updated pods are available...`);
            // Real kubectl waits forever without --timeout; the fake caps it so a broken test cannot hang.
            sleep(Math.min(seconds(args.options.get("timeout"), 3600), 3600));
            throw new ExitError(1, "error: timed out waiting for the condition");
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

function nodeLabels(node: string): Record<string, string> {
    return { "kubernetes.io/hostname": node, "kubernetes.io/os": "linux" };
}

function nodeObject(node: string): JsonObject {
    return { apiVersion: "v1", kind: "Node", metadata: { name: node, labels: nodeLabels(node) } };
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
function affinityAdmits(daemonSet: JsonObject, node: string): boolean {
    const terms = requiredNodeSelectorTerms(daemonSet);
    if (!Array.isArray(terms) || terms.length === 0) return true;
    const labels = nodeLabels(node);
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

/** The DaemonSet controller, instantly: a pod on each admitted node, none elsewhere, status to match. */
function scheduleDaemonSet(cluster: FakeCluster, namespace: string, name: string, daemonSet: JsonObject, generation: number): void {
    const settings = cluster.settings();
    const admitted = settings.nodes.filter((node) => affinityAdmits(daemonSet, node));
    const count = admitted.length;
    daemonSet["status"] = {
        currentNumberScheduled: count,
        desiredNumberScheduled: count,
        numberAvailable: count,
        numberMisscheduled: 0,
        numberReady: count,
        observedGeneration: generation,
        updatedNumberScheduled: count,
    };
    const owned = cluster.list(namespace, "pod").filter((pod) => {
        const owners = field(pod, "metadata", "ownerReferences");
        return Array.isArray(owners) && owners.some((o) => isObject(o) && o["kind"] === "DaemonSet" && o["name"] === name);
    });
    if (!settings.podsLinger) {
        for (const pod of owned) {
            if (!admitted.includes(textOf(field(pod, "spec", "nodeName"), ""))) cluster.remove(namespace, "pod", textOf(field(pod, "metadata", "name"), ""));
        }
    }
    const labels = asObject(field(daemonSet, "spec", "template", "metadata", "labels"));
    settings.nodes.forEach((node, i) => {
        if (!admitted.includes(node) || owned.some((pod) => field(pod, "spec", "nodeName") === node)) return;
        const podName = `${name}-${(i + 10).toString(36)}${node.replace(/[^a-z0-9]/g, "").slice(0, 3)}`;
        cluster.write(namespace, "pod", podName, {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: podName, namespace, labels, ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name, controller: true }] },
            spec: { nodeName: node },
            status: { phase: "Running" },
        });
    });
}

function helm(cluster: FakeCluster, argv: readonly string[], out: (text: string) => void): void {
    const args = parseArgs(argv);
    const namespace = args.options.get("namespace") ?? "default";
    const [verb, ...rest] = args.positional;
    const releasePath = (name: string) => join(cluster.dir, "helm", namespace, `${name}.json`);
    const readRelease = (name: string): FakeRelease | undefined =>
        existsSync(releasePath(name)) ? (JSON.parse(readFileSync(releasePath(name), "utf8")) as FakeRelease) : undefined;
    switch (verb) {
        case "version":
            out("v3.16.3+gcfd0749");
            return;
        case "list": {
            const folder = join(cluster.dir, "helm", namespace);
            const filter = new RegExp(args.options.get("filter") ?? "");
            const releases = existsSync(folder) ? readdirSync(folder).map((f) => JSON.parse(readFileSync(join(folder, f), "utf8")) as FakeRelease) : [];
            out(
                JSON.stringify(
                    releases
                        .filter((r) => filter.test(r.name))
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
        case "get": {
            if (rest[0] !== "values") break;
            const release = readRelease(rest[1] ?? "");
            if (!release) throw new ExitError(1, "Error: release: not found");
            out(JSON.stringify(release.values));
            return;
        }
        case "upgrade": {
            const [name, chartRef] = rest;
            const release = readRelease(name ?? "");
            if (!release || !name || !chartRef) throw new ExitError(1, `Error: UPGRADE FAILED: "${name ?? ""}" has no deployed releases`);
            const version = args.options.get("version");
            const valuesFile = args.options.get("filename");
            if (!version || !valuesFile) throw new ExitError(1, "fake helm: upgrade needs --version and -f");
            const values = JSON.parse(readFileSync(valuesFile, "utf8")) as Record<string, unknown>;
            const chartName = chartRef.split("/").pop() ?? chartRef;
            const next: FakeRelease = {
                ...release,
                chart: `${chartName}-${version}`,
                appVersion: version,
                revision: release.revision + 1,
                values,
                status: "deployed",
            };
            writeFileSync(releasePath(name), `${JSON.stringify(next, null, 2)}\n`);
            out(`Release "${name}" has been upgraded. Happy Helming!`);
            return;
        }
        default:
            break;
    }
    throw new ExitError(2, `fake helm: unsupported call: helm ${argv.join(" ")}`);
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
