import type { MigrationConfig } from "../config/validate";
import type { ScriptEnv } from "../commands/scriptParams";
import { clusterStoreEntry, type ClusterStoreEntry } from "../commands/clusterScriptStore";
import { MIGRATED_LABEL, waveStoreScripts, type WaveStoreScript } from "./wavePlan";
import { PENDING_NODE_CONFIG_NAME } from "./pendingNodeConfig";

/*
 * What the cluster script store holds for the per-node wave steps: each script with the stack's settings
 * (the same for every node) baked into its stored copy (clusterScriptStore.ts bakedSettings), so a step's
 * environment carries only what differs per node (NODE; CLUSTER_UID and the kubectl target come from
 * clusterCommand). A settings change is a new copy with a new digest, so every step that runs the script
 * shows it in the preview and runs again, as an environment change did; a delete recorded before it still
 * runs the copy (and so the settings) it was created with.
 */

/** The stack's settings a per-node wave script reads, by the name of its environment variable. */
export interface WaveStackSettings {
    readonly CILIUM_NAMESPACE: string;
    readonly KUBE_PROXY_NAMESPACE: string;
    readonly KUBE_PROXY_DAEMONSET: string;
    readonly MIGRATED_LABEL: string;
    readonly WAIT_TIMEOUT: string;
    readonly DRAIN_TIMEOUT: string;
    readonly PENDING_NODE_CONFIG: string;
}
export type WaveSettingKey = keyof WaveStackSettings;

/** The settings of each script's typed environment (scriptParams.ts), its prelude wave-lib.sh's included. */
type SettingsOf<N extends WaveStoreScript> = Extract<keyof ScriptEnv<N>, WaveSettingKey>;

const WAVE_ENV = ["CILIUM_NAMESPACE", "KUBE_PROXY_NAMESPACE", "KUBE_PROXY_DAEMONSET", "MIGRATED_LABEL", "WAIT_TIMEOUT"] as const;

/** Every setting some stored copy carries: the per-node steps leave these out of their environment. */
export const WAVE_SETTING_KEYS = [...WAVE_ENV, "DRAIN_TIMEOUT", "PENDING_NODE_CONFIG"] as const satisfies readonly WaveSettingKey[];

/** Which settings each stored copy carries: exactly the settings its environment type names (checked below). */
const SCRIPT_SETTINGS = {
    "waves/node-handover": WAVE_ENV,
    "waves/node-handback": WAVE_ENV,
    "waves/node-kpr-gate": [...WAVE_ENV, "PENDING_NODE_CONFIG"],
    "waves/node-services": WAVE_ENV,
    "waves/node-drain": [...WAVE_ENV, "DRAIN_TIMEOUT"],
    "waves/node-uncordon": WAVE_ENV,
} as const satisfies { readonly [N in WaveStoreScript]: readonly SettingsOf<N>[] };

/** Fails to compile when a script's environment type names a setting its copy would not carry. */
type Uncarried = { [N in WaveStoreScript]: Exclude<SettingsOf<N>, (typeof SCRIPT_SETTINGS)[N][number]> }[WaveStoreScript];
const everySettingCarried: [Uncarried] extends [never] ? true : Uncarried = true;
void everySettingCarried;

export function waveStackSettings(config: MigrationConfig): WaveStackSettings {
    const kp = config.cluster.kubeProxy;
    return {
        CILIUM_NAMESPACE: config.cilium.namespace,
        KUBE_PROXY_NAMESPACE: kp.namespace,
        KUBE_PROXY_DAEMONSET: kp.daemonSet,
        MIGRATED_LABEL,
        WAIT_TIMEOUT: String(kp.rolloutTimeoutSeconds),
        DRAIN_TIMEOUT: String(config.migration.drainTimeoutSeconds),
        PENDING_NODE_CONFIG: PENDING_NODE_CONFIG_NAME,
    };
}

/** The settings `name`'s stored copy carries. */
export function waveScriptSettings(config: MigrationConfig, name: WaveStoreScript): Record<string, string> {
    const all = waveStackSettings(config);
    return Object.fromEntries(SCRIPT_SETTINGS[name].map((key: WaveSettingKey) => [key, all[key]]));
}

/** What the store step writes and the drift check expects: every per-node wave script, settings baked in. */
export function waveStoreEntries(config: MigrationConfig): ClusterStoreEntry[] {
    return waveStoreScripts(config.migration.drain).map((name) => clusterStoreEntry(name, waveScriptSettings(config, name)));
}
