import { createHash } from "node:crypto";

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

/**
 * The command text for remote.Command that runs one script on a node as root: the script is
 * written to a private temp file from a quoted heredoc (so it is shown in `pulumi preview`), then run
 * with stdin closed, so nothing the script runs can eat the script text. Non-root SSH users go
 * through `sudo -n` (no password prompt can hang the run).
 */
export function remoteScriptCommand(title: string, script: string, args: readonly string[], sshUser: string): string {
    const terminator = heredocTerminator("SCRIPT", script);
    const body = script.endsWith("\n") ? script : `${script}\n`;
    const runner = sshUser === "root" ? "bash" : "sudo -n bash";
    return [
        `# cilium-kpr: ${title}`,
        "set -eu",
        `ckpr_script=$(mktemp "\${TMPDIR:-/tmp}/ckpr.XXXXXXXX")`,
        `trap 'rm -f "$ckpr_script"' EXIT`,
        `cat >"$ckpr_script" <<'${terminator}'`,
        `${body}${terminator}`,
        `${runner} "$ckpr_script" ${args.map(shellWord).join(" ")} </dev/null`.trimEnd(),
        "",
    ].join("\n");
}
