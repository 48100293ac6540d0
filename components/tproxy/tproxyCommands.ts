import type { TproxyConfig } from "../config/schema";
import { remoteCommand, type StagedFile } from "../commands/remoteCommand";
import { STAGE_DIR, type SystemdUse } from "../commands/scriptParams";
import type { NodeBundle } from "./nodeBundle";
import type { StoreRef } from "../commands/nodeStore";
import { scriptText } from "../commands/scripts";
import { policyRouteArgs } from "./policyRoutes";
import { unitNameOf } from "./nodeLayout";

/**
 * The command texts handed to @pulumi/command remote.Command (create / confirm / delete), and the
 * drift check's: each stages the tproxy scripts (components/tproxy/scripts, tproxy-lib.sh inlined)
 * and, for apply and the drift check, the bundle and its manifest, through the one remote-command
 * builder (components/commands/remoteCommand.ts). With the node's store, a step names every file by
 * digest; the texts are in the preview once per stack (the node-files Stash, nodeFilesStash.ts).
 * Nothing secret is ever part of a bundle.
 */

export interface RemoteSettings {
    /** Seconds after which an unconfirmed apply reverts itself. */
    readonly revertAfterSeconds: number;
    /** "auto": use systemd (systemd-run timer, unit enablement) when it runs the node. "off": never. */
    readonly systemd: SystemdUse;
}

export function remoteSettings(tproxy: TproxyConfig): RemoteSettings {
    return { revertAfterSeconds: tproxy.revertAfterSeconds, systemd: "auto" };
}

/** The manifest and the bundle's files, staged as tproxy-apply.sh and tproxy-drift-check.sh read them. */
function bundleFiles(bundle: NodeBundle): StagedFile[] {
    return [{ name: "manifest", content: bundleManifest(bundle) }, ...bundle.files.map((f, i) => ({ name: `files/${i}`, content: f.content }))];
}

function checkSettings(settings: RemoteSettings): void {
    if (!Number.isInteger(settings.revertAfterSeconds) || settings.revertAfterSeconds < 1) {
        throw new Error(`revertAfterSeconds ${settings.revertAfterSeconds} must be a positive whole number`);
    }
}

/**
 * What the node store holds for the tproxy steps: their scripts, every file of the bundle (the nft
 * ruleset included) and its manifest. The apply then names each of them by digest (`-f`); the preview
 * shows their texts once per stack in the node-files Stash (nodeFilesStash.ts) instead of in every
 * node's apply. A text built without a store (the drift check) still carries them all.
 */
export function tproxyStoreContents(bundle: NodeBundle): string[] {
    const scripts = [
        "tproxy/tproxy-apply",
        "tproxy/tproxy-confirm",
        "tproxy/tproxy-remove",
        "tproxy/tproxy-revert",
        "tproxy/tproxy-boot",
        "tproxy/policy-routes",
    ] as const;
    return [...scripts.map((name) => scriptText(name)), ...bundleFiles(bundle).map((f) => f.content)];
}

/** The manifest tproxy-apply.sh reads: "INDEX KIND MODE OWNER PATH" per file. */
export function bundleManifest(bundle: NodeBundle): string {
    return bundle.files.map((f, i) => `${i} ${f.kind} ${f.mode} ${f.owner} ${f.path}\n`).join("");
}

/** remote.Command `create`/`update`: stage, record, check, arm the revert, apply. */
export function applyCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    checkSettings(settings);
    return remoteCommand({
        title: "tproxy apply",
        script: "tproxy/tproxy-apply",
        companions: ["tproxy/tproxy-revert", "tproxy/tproxy-boot", "tproxy/policy-routes"],
        files: bundleFiles(bundle),
        store,
        args: [
            STAGE_DIR,
            bundle.layout.stateDir,
            settings.systemd,
            unitNameOf(bundle.layout),
            bundle.tableName,
            ...policyRouteArgs(bundle.routes),
            String(settings.revertAfterSeconds),
        ],
    });
}

/** A separate remote.Command over a fresh SSH connection: verifies the applied state, disarms the revert. */
export function confirmCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    return stateStepCommand("tproxy confirm", "tproxy/tproxy-confirm", bundle, settings, store);
}

/** remote.Command `delete`: restores the node as it was before the first apply. */
export function deleteCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    return stateStepCommand("tproxy delete", "tproxy/tproxy-remove", bundle, settings, store);
}

/** A step that works on what the apply recorded in the state directory (TproxyStateArgs), with the routes script beside it. */
function stateStepCommand(
    title: string,
    script: "tproxy/tproxy-confirm" | "tproxy/tproxy-remove",
    bundle: NodeBundle,
    settings: RemoteSettings,
    store: StoreRef | undefined,
): string {
    checkSettings(settings);
    return remoteCommand({ title, script, companions: ["tproxy/policy-routes"], store, args: [STAGE_DIR, bundle.layout.stateDir, settings.systemd] });
}

/**
 * Read-only, for the drift check (tools/check.ts), never a resource: stages the bundle exactly as
 * the program would push it now and reports, per artifact, how the node differs from it.
 */
export function driftCheckCommand(bundle: NodeBundle, vips: { readonly vip4?: string; readonly vip6?: string }, activationSet: string): string {
    return remoteCommand({
        title: "tproxy drift check (read-only)",
        script: "tproxy/tproxy-drift-check",
        companions: ["tproxy/policy-routes"],
        files: bundleFiles(bundle),
        args: [STAGE_DIR, bundle.tableName, ...policyRouteArgs(bundle.routes), vips.vip4 ?? "-", vips.vip6 ?? "-", activationSet],
    });
}
