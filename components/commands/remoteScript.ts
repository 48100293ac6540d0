import { createHash } from "node:crypto";
import { storeFetchFunction, storeFetchLine, storeHolds, type StoreRef } from "./nodeStore";

/** A heredoc terminator that no line of `content` equals (checked, not assumed). */
export function heredocTerminator(label: string, content: string): string {
    if (!/^[A-Z0-9_]+$/.test(label)) throw new Error(`heredoc label "${label}" must be A-Z, 0-9, _`);
    const lines = new Set(content.split("\n"));
    const digest = createHash("sha256").update(content).digest("hex").slice(0, 12).toUpperCase();
    for (let n = 0; n < 100; n++) {
        const candidate = `CKPR_${label}_${digest}${n === 0 ? "" : `_${n}`}`;
        if (!lines.has(candidate)) return candidate;
    }
    throw new Error(`no free heredoc terminator for ${label}`);
}

/** Single-quotes one word for sh; arguments reaching here are validated identifiers and addresses. */
export function shellWord(word: string): string {
    if (!/^[A-Za-z0-9_.:,/@%+=-]*$/.test(word)) throw new Error(`refusing to pass ${JSON.stringify(word)} to a node script`);
    return `'${word}'`;
}

/** Nodes' sbin directories are not on a non-login SSH PATH everywhere; nft, ip and iptables live there. */
const NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The command text for remote.Command that runs one script on a node as root: the script is
 * written to a private temp file from a quoted heredoc (so it is shown in `pulumi preview`), then run
 * with a fixed PATH and stdin closed, so nothing the script runs can eat the script text. A non-root
 * SSH user goes through `sudo -n` (no password prompt can hang the run). The exit status is the script's.
 */
export function remoteScriptCommand(title: string, script: string, args: readonly string[], store?: StoreRef): string {
    if (store !== undefined && storeHolds(store, script)) return storedScriptCommand(title, script, args, store);
    const terminator = heredocTerminator("SCRIPT", script);
    const body = script.endsWith("\n") ? script : `${script}\n`;
    return [
        `# cilium-kpr: ${title}`,
        "set -eu",
        "umask 077",
        `ckpr_script=$(mktemp "\${TMPDIR:-/tmp}/ckpr.XXXXXXXX")`,
        `trap 'rm -f "$ckpr_script"' EXIT`,
        `cat >"$ckpr_script" <<'${terminator}'`,
        `${body}${terminator}`,
        `if [ "$(id -u)" -eq 0 ]; then ckpr_sudo=; else ckpr_sudo="sudo -n"; fi`,
        `$ckpr_sudo env PATH=${NODE_PATH} bash "$ckpr_script" ${args.map(shellWord).join(" ")} </dev/null`.trimEnd(),
        "",
    ].join("\n");
}

/**
 * The same, with the script fetched from the node store by its sha256 (nodeStore.ts) into a private
 * stage directory and checked there, so the text carries a digest instead of the script.
 */
function storedScriptCommand(title: string, script: string, args: readonly string[], store: StoreRef): string {
    const sha = createHash("sha256").update(script, "utf8").digest("hex");
    return [
        `# cilium-kpr: ${title}`,
        "set -eu",
        "umask 077",
        `ckpr_stage=$(mktemp -d "\${TMPDIR:-/tmp}/ckpr.XXXXXXXX")`,
        `trap 'rm -rf "$ckpr_stage"' EXIT`,
        storeFetchFunction(store.dir),
        storeFetchLine(sha, "script.sh"),
        `if [ "$(id -u)" -eq 0 ]; then ckpr_sudo=; else ckpr_sudo="sudo -n"; fi`,
        `$ckpr_sudo env PATH=${NODE_PATH} bash "$ckpr_stage/script.sh" ${args.map(shellWord).join(" ")} </dev/null`.trimEnd(),
        "",
    ].join("\n");
}
