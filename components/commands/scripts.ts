import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { ClusterScriptName, PreludeName, ScriptCatalog, ScriptEnv, ScriptName } from "./scriptParams";

/*
 * The one registry of the repository's scripts and the one loader of their text.
 *
 * A script is a real file, components/<folder>/scripts/<name>.sh, registered under "<folder>/<name>"
 * with what it takes (scriptParams.ts): cluster scripts read environment variables, node scripts
 * positional arguments. Resources embed exactly scriptText(name).
 *
 * How scripts share code (the one rule): only through a registered prelude, pulled in with exactly
 *
 *     # shellcheck source=SCRIPTDIR/<path of the prelude relative to this file>.sh
 *     source "$(dirname "${BASH_SOURCE[0]}")/<path of the prelude relative to this file>.sh"
 *
 * Run as a file (tests, shellcheck), bash sources the prelude from its place in the repository.
 * Embedded, the loader replaces the two lines with the prelude's text, so every text a resource
 * carries, and every file it stages or installs on a node, is self-contained. A prelude may pull in
 * another prelude the same way (cluster-lib.sh and wave-lib.sh share commands/scripts/env-checks.sh);
 * a prelude reached twice by one script is refused, so the file and the embedded text run the same
 * code once. Any other `source` or `.` line is refused here.
 */

const COMPONENTS = path.resolve(__dirname, "..");

/** What kind of script each name is (the catalog's types, checked complete by the mapped type). */
const KINDS: { readonly [N in ScriptName]: keyof ScriptCatalog[N] } = {
    "kubeproxy/cluster-identity": "env",
    "kubeproxy/cilium-values-snapshot": "env",
    "kubeproxy/cilium-values-restore": "env",
    "kubeproxy/kpr-gate": "env",
    "kubeproxy/kube-proxy-remove": "env",
    "kubeproxy/kube-proxy-restore": "env",
    "kubeproxy/kube-proxy-exclude": "env",
    "kubeproxy/kube-proxy-include": "env",
    "kubeproxy/post-migration-verify": "env",
    "kubeproxy/kubeadm-proxy-disable": "env",
    "kubeproxy/kubeadm-proxy-restore": "env",
    "kubeproxy/kubeadm-proxy-status": "env",
    "kubeproxy/cilium-upgrade-preflight": "env",
    "cilium/release-identity": "env",
    "preflight/operator-preflight": "env",
    "drift/cluster-observe": "env",
    "waves/node-config-crd-check": "env",
    "waves/canary-adopt": "env",
    "waves/kube-proxy-label-affinity": "env",
    "waves/kube-proxy-label-affinity-restore": "env",
    "waves/pending-gate": "env",
    "waves/node-drain": "env",
    "waves/node-uncordon": "env",
    "waves/node-step-kept": "env",
    "waves/node-handover": "env",
    "waves/node-handback": "env",
    "waves/node-kpr-gate": "env",
    "waves/node-services": "env",
    "waves/cluster-script-store": "env",
    "waves/cluster-script-store-remove": "env",
    "kubeproxy/stale-rules-cleanup": "args",
    "kubeproxy/stale-rules-verify": "args",
    "preflight/node-preflight": "args",
    "tproxy/tproxy-apply": "args",
    "tproxy/tproxy-confirm": "args",
    "tproxy/tproxy-remove": "args",
    "tproxy/tproxy-drift-check": "args",
    "tproxy/policy-routes": "file",
    "tproxy/tproxy-revert": "file",
    "tproxy/tproxy-boot": "file",
    "tproxy/keepalived-notify": "file",
    "commands/node-runner": "file",
    "commands/env-checks": "prelude",
    "cilium/chart-source": "prelude",
    "kubeproxy/cluster-lib": "prelude",
    "kubeproxy/kubeadm-config-lib": "prelude",
    "kubeproxy/kube-proxy-state": "prelude",
    "preflight/preflight-lib": "prelude",
    "waves/wave-lib": "prelude",
    "waves/script-store-names": "prelude",
    "tproxy/tproxy-lib": "prelude",
};

export const SCRIPT_NAMES = Object.keys(KINDS) as ScriptName[];

export function scriptKind(name: ScriptName): "env" | "args" | "file" | "prelude" {
    return KINDS[name];
}

export function isScriptName(name: string): name is ScriptName {
    return Object.hasOwn(KINDS, name);
}

/** The script's file in the repository (run it as a file: tests, shellcheck, operators' repairs). */
export function scriptPath(name: ScriptName): string {
    const [folder, base] = name.split("/");
    return path.join(COMPONENTS, folder!, "scripts", `${base!}.sh`);
}

/** The file name a script is staged and installed under on a node (tproxy-apply.sh finds its companions by it). */
export function scriptFileName(name: ScriptName): string {
    return path.basename(scriptPath(name));
}

/** The registry name of a file under components/<folder>/scripts/, or undefined. */
export function scriptNameOf(file: string): ScriptName | undefined {
    const relative = path.relative(COMPONENTS, path.resolve(file)).split(path.sep);
    if (relative.length !== 3 || relative[1] !== "scripts" || !relative[2]!.endsWith(".sh")) return undefined;
    const name = `${relative[0]!}/${relative[2]!.slice(0, -3)}`;
    return isScriptName(name) ? name : undefined;
}

/** The one way a script pulls in a prelude (see the rule above). */
const SOURCED_PRELUDE = /^# shellcheck source=SCRIPTDIR\/([A-Za-z0-9_./-]+\.sh)\nsource "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/\1"\n/gm;
/** Any other way of reading shell code from a file. */
const SOURCES_A_FILE = /^\s*(source|\.)\s+\S/m;

const cache = new Map<ScriptName, string>();

function sourcedPrelude(from: ScriptName, relative: string): PreludeName {
    const prelude = scriptNameOf(path.join(path.dirname(scriptPath(from)), relative));
    if (prelude === undefined || KINDS[prelude] !== "prelude") throw new Error(`${from}.sh sources ${relative}, which is not a registered prelude`);
    return prelude as PreludeName;
}

/** NAME's text with every prelude it sources inlined in place, recursively; `reached` collects them. */
function inlined(name: ScriptName, reached: PreludeName[]): string {
    return readFileSync(scriptPath(name), "utf8").replace(SOURCED_PRELUDE, (_lines, relative: string) => {
        const prelude = sourcedPrelude(name, relative);
        if (reached.includes(prelude)) throw new Error(`${prelude}.sh is sourced twice by one script (last from ${name}.sh); source it once`);
        reached.push(prelude);
        // Its shebang and shellcheck directive only matter when the prelude is checked on its own.
        return inlined(prelude, reached)
            .replace(/^#!.*\n/, "")
            .replace(/^# shellcheck shell=.*\n/m, "");
    });
}

/** The script's text as resources embed it: every prelude it sources inlined, nothing left to source. */
export function scriptText(name: ScriptName): string {
    let text = cache.get(name);
    if (text === undefined) {
        text = inlined(name, []);
        if (SOURCES_A_FILE.test(text)) throw new Error(`${name}.sh sources a file other than through a registered prelude (components/commands/scripts.ts)`);
        cache.set(name, text);
    }
    return text;
}

/** The preludes a script's embedded text carries, by registry name: those it sources and those they source. */
export function preludesOf(name: ScriptName): PreludeName[] {
    const reached: PreludeName[] = [];
    inlined(name, reached);
    return reached;
}

/** Turns a cluster script's typed environment into the string map a process environment needs. */
export function scriptEnvironment<N extends ClusterScriptName>(_name: N, env: ScriptEnv<N>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(env as object) as [string, string | number | undefined][]) {
        if (value !== undefined) out[key] = String(value);
    }
    return out;
}
