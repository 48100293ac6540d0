import type * as pulumi from "@pulumi/pulumi";
import type { ClusterScriptName } from "./scriptParams";
import { scriptText } from "./scripts";
import { sha256Hex } from "./nodeStore";
import { shellWord } from "./remoteCommand";

/*
 * The cluster script store: the cluster scripts that per-node steps run, kept once in the cluster
 * instead of once per node in Pulumi state. One immutable ConfigMap per script in kube-system, named
 * by the script's sha256 (components/waves/scripts/cluster-script-store.sh writes them from the store
 * step's stdin, which carries each script once). A per-node step's create and delete are a few lines
 * (storeRunnerText) that fetch the script by digest with kubectl, check its sha256 and run it, so:
 * - the step's state holds a digest, not the script; a script change shows in the preview as a new
 *   digest (and `npm run plan` writes the script beside the step);
 * - the store only ever adds, so a delete recorded before a script changed still runs exactly the
 *   script it was created with;
 * - a missing or altered entry fails closed: nothing runs, and the error says what to do.
 * A ConfigMap holds at most 1 MiB of data (Kubernetes docs, "ConfigMaps": "The data stored in a
 * ConfigMap cannot exceed 1 MiB"): one per script keeps each far below that, however many versions
 * accumulate. `immutable: true` (docs, "Immutable ConfigMaps") means nobody edits an entry in place;
 * deleting and re-creating one by hand is caught by the digest check.
 */

export const STORE_NAMESPACE = "kube-system";
export const STORE_LABEL = "cilium-kpr.io/cluster-script-store";
export const STORE_WRITER_LABEL = "cilium-kpr.io/cluster-script-store-writer";
const MAX_CONFIGMAP_DATA = 1024 * 1024;

export interface ClusterStoreEntry {
    readonly name: ClusterScriptName;
    readonly sha256: string;
    /** The script as a resource would embed it (preludes inlined), with `settings` baked in after its first line. */
    readonly text: string;
    /** The stack's settings this copy carries as shell assignments (bakedSettings), instead of every step's environment. */
    readonly settings: Readonly<Record<string, string>>;
}

/**
 * A store step and what it holds: steps given it fetch their scripts from it (clusterCommand's `store`).
 * K: the environment variables its entries carry as baked settings, which the steps then do not pass.
 */
export interface ClusterScriptStore<K extends string = never> {
    readonly step: pulumi.Resource;
    readonly entries: ReadonlyMap<ClusterScriptName, ClusterStoreEntry>;
    /** Every variable an entry carries as a baked setting: clusterCommand's steps leave them out of their environment. */
    readonly settingKeys: readonly K[];
}

/** The store's ConfigMap of a digest; also given a shell expansion ("$s") by the step text. */
export function storeConfigMapName(sha256: string): string {
    return `cilium-kpr-script-${sha256}`;
}

/** The line that opens the settings block of a stored copy (bakedSettings); the plan and the tests find the block by it. */
export const SETTINGS_HEADER = "# cilium-kpr: this stack's settings, in the cluster script store's copy (README: the cluster script store)";

/**
 * `text` with `settings` as plain assignments after its first line (the shebang), before anything reads
 * them: the stored copy then runs with the stack's values whatever the step's environment holds, and the
 * step's state keeps only what differs per node. A script that sets a default (`X="${X:-d}"`) keeps the
 * baked value. Empty settings leave the text as the repository has it.
 */
export function bakedSettings(text: string, settings: Readonly<Record<string, string>>): string {
    const keys = Object.keys(settings).sort();
    if (keys.length === 0) return text;
    for (const key of keys) if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new Error(`"${key}" is not an environment variable name`);
    const newline = text.indexOf("\n");
    if (!text.startsWith("#!") || newline < 0) throw new Error("a stored script starts with its shebang line");
    const block = [SETTINGS_HEADER, ...keys.map((k) => `${k}=${shellWord(settings[k]!)}`)].join("\n");
    return `${text.slice(0, newline + 1)}${block}\n${text.slice(newline + 1)}`;
}

/** The store's copy of a script: the repository's text with `settings` baked in, named by its sha256. */
export function clusterStoreEntry(name: ClusterScriptName, settings: Readonly<Record<string, string>> = {}): ClusterStoreEntry {
    const text = bakedSettings(scriptText(name), settings);
    if (Buffer.byteLength(text, "utf8") >= MAX_CONFIGMAP_DATA) throw new Error(`${name}.sh is too large for a ConfigMap of the cluster script store (1 MiB)`);
    return { name, sha256: sha256Hex(text), text, settings };
}

/** What the store step's stdin holds: each stored script once. */
export interface StoredScript {
    readonly name: string;
    readonly sha256: string;
    readonly text: string;
}

/** The store step's stdin: every entry once, in digest order (cluster-script-store.sh reads it). */
export function clusterStoreStdin(entries: readonly ClusterStoreEntry[]): string {
    const byDigest = new Map(entries.map((e) => [e.sha256, e]));
    const scripts: StoredScript[] = [...byDigest.values()]
        .sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1))
        .map((e) => ({ name: e.name, sha256: e.sha256, text: e.text }));
    return JSON.stringify({ scripts });
}

/** The scripts a store step's stdin (clusterStoreStdin) holds; undefined for any other stdin. */
export function storedScriptsOf(stdin: string): StoredScript[] | undefined {
    if (!stdin.startsWith('{"scripts":')) return undefined;
    return (JSON.parse(stdin) as { scripts: StoredScript[] }).scripts;
}

/**
 * The command text of a step that runs `entry` from the store: fetch configmap/cilium-kpr-script-<sha256>,
 * check the script's sha256, run it with bash. Self-contained (it is what a delete runs, from state, long
 * after the repository changed); the script it runs checks CLUSTER_UID itself before changing anything.
 * A fetch that fails or a digest that differs prints the cluster steps' JSON summary and runs nothing.
 * Kept short, since every per-node step of a wave stack stores it once or twice: its first line names the
 * script (what a preview reader sees), one message says what is missing where and how to repair it, and
 * `${KUBECTL_CONTEXT:+--context "$KUBECTL_CONTEXT"}` adds the context only when one is pinned (bash manual,
 * "Shell Parameter Expansion": `${parameter:+word}` expands to nothing when parameter is unset or null; the
 * quoted part of word stays one word). Without pipefail a failed kubectl leaves jq an empty input, and the
 * empty file fails the digest check.
 */
export function storeRunnerText(entry: Pick<ClusterStoreEntry, "name" | "sha256">): string {
    if (!/^[0-9a-f]{64}$/.test(entry.sha256)) throw new Error(`"${entry.sha256}" is not a sha256 digest`);
    const script = `${entry.name}.sh`;
    const configMap = storeConfigMapName("$s");
    return [
        runnerHeader(script),
        `s=${entry.sha256} f=$(mktemp)`,
        `trap 'rm -f "$f"' EXIT`,
        `kubectl \${KUBECTL_CONTEXT:+--context "$KUBECTL_CONTEXT"} -n ${STORE_NAMESPACE} get configmap ${configMap} -o json|jq -j '.data.script//""' >"$f";[[ $(sha256sum <"$f") == "$s  -" ]]||{`,
        `m="${script} (sha256 $s) is missing from the cluster script store (configmap/${configMap} in ${STORE_NAMESPACE}) of \${KUBECTL_CONTEXT:-the current context}, or differs; nothing was run (README: the cluster script store)"`,
        `echo "cilium-kpr: $m" >&2;jq -cn --arg e "$m" '{ok:false,error:$e}';exit 1;}`,
        `bash "$f"`,
        "",
    ].join("\n");
}

/** The first line of a runner text: it names the script (what a preview reader sees). */
function runnerHeader(script: string): string {
    return `# cilium-kpr: runs ${script} from the cluster script store`;
}

/** The digest a runner text (storeRunnerText) fetches; undefined for any other text. */
export function storeRunnerDigest(text: string): string | undefined {
    const [header, digestLine] = text.split("\n", 2);
    const script = /^# cilium-kpr: runs (\S+) /.exec(header ?? "")?.[1];
    if (script === undefined || header !== runnerHeader(script)) return undefined;
    return /^s=([0-9a-f]{64}) /.exec(digestLine ?? "")?.[1];
}

/** The runner text of a script the store holds; a script it does not hold is a program error (caught at preview). */
export function storeRunnerFor(store: ClusterScriptStore<string>, name: ClusterScriptName): string {
    const entry = store.entries.get(name);
    if (entry === undefined) throw new Error(`${name} is not in the cluster script store; add it to the store step's scripts`);
    return storeRunnerText(entry);
}
