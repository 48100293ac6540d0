import { createHash } from "node:crypto";
import { heredocTerminator } from "../commands/remoteScript";

export { heredocTerminator };
import type { TproxyConfig } from "../config/schema";
import type { NodeBundle } from "./nodeBundle";
import { policyRouteArgs, unitNameOf } from "./policyRoutes";
import { nodeScript, type NodeScriptName } from "./nodeScripts";
import { storeFetchFunction, storeFetchLine, storeHolds, type StoreRef } from "../commands/nodeStore";

/**
 * The command texts handed to @pulumi/command remote.Command (create / confirm / delete).
 *
 * Each text is a POSIX sh program (sshd runs it with the user's login shell) that stages the
 * node scripts and bundle files into a private temp directory through quoted heredocs, verifies
 * every staged file against its SHA-256, then runs one of the scripts as root. Everything a node
 * receives is therefore visible in `pulumi preview`; nothing secret is ever part of a bundle.
 */

export interface RemoteSettings {
    /** Seconds after which an unconfirmed apply reverts itself. */
    readonly revertAfterSeconds: number;
    /** "auto": use systemd (systemd-run timer, unit enablement) when it runs the node. "off": never. */
    readonly systemd: "auto" | "off";
}

export function remoteSettings(tproxy: TproxyConfig): RemoteSettings {
    return { revertAfterSeconds: tproxy.revertAfterSeconds, systemd: "auto" };
}

/**
 * sshd passes the command to `sh -c` as one argv string; Linux caps one argument at 128 KiB
 * (MAX_ARG_STRLEN). Stay clearly below it.
 */
export const MAX_COMMAND_BYTES = 120 * 1024;

/** Single-quotes a word for sh; values reaching here are validated identifiers/paths. */
function shWord(word: string): string {
    if (word.includes("'") || word.includes("\n")) throw new Error(`refusing to quote ${JSON.stringify(word)}`);
    return `'${word}'`;
}

function sha256(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

interface StagedFile {
    /** Relative to the stage directory. */
    readonly name: string;
    readonly content: string;
}

/**
 * `cat > file <<'TERM'`; content without a final newline is trimmed back with truncate. Content
 * with bytes outside ASCII travels base64-encoded (`base64 -d`, coreutils) instead: dash 0.5.12,
 * a common /bin/sh, loses bytes of some UTF-8 sequences in a quoted heredoc (measured: the 0xCC
 * byte of "C\u0327\u0301" inside the apply text), and the staged checksums would then refuse the
 * whole apply. ASCII stays readable in `pulumi preview`.
 */
function stageFile(file: StagedFile, label: string): string {
    const target = `"$ckpr_stage/${file.name}"`;
    if (file.content === "") return `: >${target}`;
    if (/[^\x00-\x7f]/.test(file.content)) {
        const encoded = `${(
            Buffer.from(file.content, "utf8")
                .toString("base64")
                .match(/.{1,76}/g) ?? []
        ).join("\n")}\n`;
        return [`base64 -d >${target} <<'${heredocTerminator(label, encoded)}'`, `${encoded}${heredocTerminator(label, encoded)}`].join("\n");
    }
    const terminator = heredocTerminator(label, file.content);
    const body = file.content.endsWith("\n") ? file.content : `${file.content}\n`;
    const lines = [`cat >${target} <<'${terminator}'`, `${body}${terminator}`];
    if (body !== file.content) lines.push(`truncate -s -1 ${target}`);
    return lines.join("\n");
}

/**
 * A file the node store holds (storeHolds) is fetched from it by digest instead of carried in the text;
 * either way the staged copy is checked against the same sha256 below.
 */
function stageLine(file: StagedFile, label: string, store: StoreRef | undefined): string {
    return storeHolds(store, file.content) ? storeFetchLine(sha256(file.content), file.name) : stageFile(file, label);
}

function program(title: string, staged: readonly StagedFile[], script: NodeScriptName, args: readonly string[], store?: StoreRef): string {
    // Fetched files are checked as they are fetched (storeFetchFunction); the rest here.
    const inline = staged.filter((f) => !storeHolds(store, f.content));
    const sums = inline.map((f) => `${sha256(f.content)}  ${f.name}`).join("\n") + "\n";
    const fetches = store !== undefined && staged.some((f) => storeHolds(store, f.content));
    const text = [
        `# cilium-kpr tproxy: ${title} (generated from components/tproxy/scripts; runs as root)`,
        "set -eu",
        "umask 077",
        `ckpr_stage=$(mktemp -d "\${TMPDIR:-/tmp}/ckpr-tproxy.XXXXXXXX")`,
        `trap 'rm -rf "$ckpr_stage"' EXIT`,
        `mkdir "$ckpr_stage/files"`,
        ...(fetches ? [storeFetchFunction(store.dir)] : []),
        ...staged.map((f, i) => stageLine(f, `F${i}`, store)),
        ...(inline.length === 0
            ? []
            : [`(cd "$ckpr_stage" && sha256sum --quiet --strict -c -) <<'${heredocTerminator("SUMS", sums)}'`, `${sums}${heredocTerminator("SUMS", sums)}`]),
        `if [ "$(id -u)" -eq 0 ]; then ckpr_sudo=; else ckpr_sudo="sudo -n"; fi`,
        `$ckpr_sudo bash "$ckpr_stage/${script}" "$ckpr_stage" ${args.map(shWord).join(" ")} </dev/null`,
        "",
    ].join("\n");
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > MAX_COMMAND_BYTES) {
        throw new Error(`the ${title} command is ${bytes} bytes; sshd's sh -c argument must stay below ${MAX_COMMAND_BYTES}`);
    }
    return text;
}

function scripts(...names: NodeScriptName[]): StagedFile[] {
    return names.map((name) => ({ name, content: nodeScript(name) }));
}

function checkSettings(settings: RemoteSettings): void {
    if (!Number.isInteger(settings.revertAfterSeconds) || settings.revertAfterSeconds < 1) {
        throw new Error(`revertAfterSeconds ${settings.revertAfterSeconds} must be a positive whole number`);
    }
}

const APPLY_SCRIPTS: readonly NodeScriptName[] = ["tproxy-lib.sh", "tproxy-apply.sh", "tproxy-revert.sh", "tproxy-boot.sh", "policy-routes.sh"];
const CONFIRM_SCRIPTS: readonly NodeScriptName[] = ["tproxy-lib.sh", "tproxy-confirm.sh", "policy-routes.sh"];
const DELETE_SCRIPTS: readonly NodeScriptName[] = ["tproxy-lib.sh", "tproxy-remove.sh", "policy-routes.sh"];

/**
 * What the node store holds for the tproxy steps: their scripts and the bundle's files except the nft
 * ruleset, which stays in the apply's text so `pulumi preview` shows its changes line by line.
 */
export function tproxyStoreContents(bundle: NodeBundle): string[] {
    const scriptNames = [...new Set([...APPLY_SCRIPTS, ...CONFIRM_SCRIPTS, ...DELETE_SCRIPTS])];
    return [...scriptNames.map(nodeScript), ...bundle.files.filter((f) => f.kind !== "nft-ruleset").map((f) => f.content)];
}

/** The manifest tproxy-apply.sh reads: "INDEX KIND MODE OWNER PATH" per file. */
export function bundleManifest(bundle: NodeBundle): string {
    return bundle.files.map((f, i) => `${i} ${f.kind} ${f.mode} ${f.owner} ${f.path}\n`).join("");
}

/** remote.Command `create`/`update`: stage, record, check, arm the revert, apply. */
export function applyCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    checkSettings(settings);
    const staged: StagedFile[] = [
        ...scripts(...APPLY_SCRIPTS),
        { name: "manifest", content: bundleManifest(bundle) },
        ...bundle.files.map((f, i) => ({ name: `files/${i}`, content: f.content })),
    ];
    return program(
        "apply",
        staged,
        "tproxy-apply.sh",
        [
            bundle.layout.stateDir,
            settings.systemd,
            unitNameOf(bundle.layout),
            bundle.tableName,
            ...policyRouteArgs(bundle.routes),
            String(settings.revertAfterSeconds),
        ],
        store,
    );
}

/** A separate remote.Command over a fresh SSH connection: verifies the applied state, disarms the revert. */
export function confirmCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    checkSettings(settings);
    return program("confirm", scripts(...CONFIRM_SCRIPTS), "tproxy-confirm.sh", [bundle.layout.stateDir, settings.systemd], store);
}

/** remote.Command `delete`: restores the node as it was before the first apply. */
export function deleteCommand(bundle: NodeBundle, settings: RemoteSettings, store?: StoreRef): string {
    checkSettings(settings);
    return program("delete", scripts(...DELETE_SCRIPTS), "tproxy-remove.sh", [bundle.layout.stateDir, settings.systemd], store);
}

/**
 * Read-only, for the drift check (tools/check.ts), never a resource: stages the bundle exactly as
 * the program would push it now and reports, per artifact, how the node differs from it.
 */
export function driftCheckCommand(bundle: NodeBundle, vips: { readonly vip4?: string; readonly vip6?: string }, activationSet: string): string {
    const staged: StagedFile[] = [
        ...scripts("tproxy-lib.sh", "tproxy-drift-check.sh", "policy-routes.sh"),
        { name: "manifest", content: bundleManifest(bundle) },
        ...bundle.files.map((f, i) => ({ name: `files/${i}`, content: f.content })),
    ];
    return program("drift check (read-only)", staged, "tproxy-drift-check.sh", [
        bundle.tableName,
        ...policyRouteArgs(bundle.routes),
        vips.vip4 ?? "-",
        vips.vip6 ?? "-",
        activationSet,
    ]);
}
