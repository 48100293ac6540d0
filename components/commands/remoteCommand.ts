import { createHash } from "node:crypto";
import * as path from "node:path";
import { STAGE_DIR, type NodeScriptName, type ScriptArgs, type ScriptName, type StageDir } from "./scriptParams";
import { scriptFileName, scriptText } from "./scripts";
import { storeFetchFunction, storeFetchLine, storeHolds, type StoreRef } from "./nodeStore";

/*
 * The one builder of the command text every remote (node, over SSH) step runs: remote.Command's
 * create/delete and the drift check's ssh. sshd hands the text to the user's login shell as
 * `sh -c TEXT` (a POSIX sh program, dash on Debian). It
 *   1. stages N files into a private temp directory through quoted heredocs (visible in
 *      `pulumi preview`; nothing secret is ever staged),
 *   2. checks every staged file against its SHA-256 (`sha256sum -c`) and runs nothing on a mismatch,
 *   3. runs one of them with bash as root (`sudo -n` for a non-root user: no password prompt can
 *      hang the run), with a pinned PATH (nodes' sbin directories, where nft, ip, iptables and
 *      systemctl live, are not on a non-login SSH PATH everywhere) and stdin closed (nothing the
 *      script runs can eat the command text),
 *   4. exits with the script's status, the script's stderr and stdout being the only output: its
 *      stderr as it is written, its stdout held back until it ends (see below).
 *
 * How a failure reads: pulumi-command v1.2.1 (provider/pkg/provider/remote/commandOutputs.go,
 * CommandOutputs.run) returns `fmt.Errorf("%w: running %q:\n%s", err, cmd, stdouterrbuf.String())`:
 * the SSH exit error, then this whole text quoted, then the script's stdout and stderr interleaved
 * in the order written (the same output is also logged live, util.LogOutput at diag.Info). So the
 * wrapper writes nothing of its own unless a staged file is corrupt, and holds the script's stdout
 * (progress lines, the JSON summary) back until the script ends: the script's own stderr is the first
 * thing after the quoted text; the shorter the text, the sooner the reader gets to it.
 */

/**
 * sshd passes the command to `sh -c` as one argv string; Linux caps one argument at 128 KiB
 * (MAX_ARG_STRLEN). Stay clearly below it.
 */
export const MAX_COMMAND_BYTES = 120 * 1024;

/** Nodes' sbin directories are not on a non-login SSH PATH everywhere; nft, ip and iptables live there. */
export const NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A file staged for the script, by its path relative to the stage directory. */
export interface StagedFile {
    readonly name: string;
    readonly content: string;
}

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

/** The one quoting of a word for sh: single quotes; arguments reaching here are validated identifiers, paths and addresses. */
export function shellWord(word: string): string {
    if (!/^[A-Za-z0-9_.:,/@%+=-]*$/.test(word)) throw new Error(`refusing to pass ${JSON.stringify(word)} to a node script`);
    return `'${word}'`;
}

function sha256(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

function checkName(name: string): void {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/.test(name)) throw new Error(`bad staged file name ${JSON.stringify(name)}`);
}

/**
 * `cat > file <<'TERM'`; content without a final newline is trimmed back with truncate. Content
 * with bytes outside ASCII travels base64-encoded (`base64 -d`, coreutils) instead: dash 0.5.12,
 * a common /bin/sh, loses bytes of some UTF-8 sequences in a quoted heredoc (measured: the 0xCC
 * byte of "C\u0327\u0301" inside the apply text), and the staged checksums would then refuse the
 * whole run. ASCII stays readable in `pulumi preview`.
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
        const terminator = heredocTerminator(label, encoded);
        return [`base64 -d >${target} <<'${terminator}'`, `${encoded}${terminator}`].join("\n");
    }
    const terminator = heredocTerminator(label, file.content);
    const body = file.content.endsWith("\n") ? file.content : `${file.content}\n`;
    const lines = [`cat >${target} <<'${terminator}'`, `${body}${terminator}`];
    if (body !== file.content) lines.push(`truncate -s -1 ${target}`);
    return lines.join("\n");
}

/** One argument: a quoted word, or the stage directory. */
function argument(arg: string | StageDir): string {
    return arg === STAGE_DIR ? `"$ckpr_stage"` : shellWord(arg);
}

/**
 * The text-level builder: stages `files` (the first one is run), checks them, runs it. Steps use
 * remoteCommand below, which takes the script by its registry name; this is for tests and tools
 * that run a text of their own.
 */
export function stagedCommand(title: string, files: readonly StagedFile[], args: readonly (string | StageDir)[], store?: StoreRef): string {
    const run = files[0];
    if (run === undefined) throw new Error(`the ${title} command stages no script`);
    const names = new Set<string>();
    for (const f of files) {
        checkName(f.name);
        if (names.has(f.name)) throw new Error(`the ${title} command stages ${f.name} twice`);
        names.add(f.name);
    }
    const dirs = [...new Set(files.map((f) => path.posix.dirname(f.name)).filter((d) => d !== "."))].sort();
    // A file the node store holds is fetched from it by digest (and checked as it is fetched) instead of
    // carried in the text: Pulumi state then keeps a digest, not the file (commands/nodeStore.ts).
    const inline = files.filter((f) => !storeHolds(store, f.content));
    const fetched = store !== undefined && inline.length < files.length;
    const sums = inline.map((f) => `${sha256(f.content)}  ${f.name}`).join("\n") + "\n";
    const sumsTerminator = heredocTerminator("SUMS", sums);
    const text = [
        `# cilium-kpr: ${title.replace(/\n/g, " ")} (runs ${run.name} as root; its files are staged and checked first)`,
        "set -eu",
        "umask 077",
        `ckpr_stage=$(mktemp -d "\${TMPDIR:-/tmp}/ckpr.XXXXXXXX")`,
        `trap 'rm -rf "$ckpr_stage"' EXIT`,
        ...(dirs.length > 0 ? [`mkdir -p ${dirs.map((d) => `"$ckpr_stage/${d}"`).join(" ")}`] : []),
        ...(fetched ? [storeFetchFunction(store.dir)] : []),
        ...files.map((f, i) => (storeHolds(store, f.content) ? storeFetchLine(sha256(f.content), f.name) : stageFile(f, i === 0 ? "SCRIPT" : `F${i}`))),
        ...(inline.length === 0
            ? []
            : [
                  `(cd "$ckpr_stage" && sha256sum --quiet --strict -c - >&2) <<'${sumsTerminator}' || { echo "cilium-kpr: a staged file does not match its checksum; nothing was run" >&2; exit 1; }`,
                  `${sums}${sumsTerminator}`,
              ]),
        `if [ "$(id -u)" -eq 0 ]; then ckpr_sudo=; else ckpr_sudo="sudo -n"; fi`,
        // The script's stdout is held back until it ends, so its stderr (a failure's reason) comes first.
        `ckpr_run() { ckpr_status=0; "$@" >"$ckpr_stage/.stdout" || ckpr_status=$?; cat "$ckpr_stage/.stdout"; exit "$ckpr_status"; }`,
        ["ckpr_run", "$ckpr_sudo", "env", `PATH=${NODE_PATH}`, "bash", `"$ckpr_stage/${run.name}"`, ...args.map(argument), "</dev/null"].join(" "),
        "",
    ].join("\n");
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > MAX_COMMAND_BYTES) {
        throw new Error(`the ${title} command is ${bytes} bytes; sshd's sh -c argument must stay below ${MAX_COMMAND_BYTES}`);
    }
    return text;
}

/** One remote step: which registered node script runs, with its own arguments, and what is staged beside it. */
export interface RemoteStep<N extends NodeScriptName> {
    /** Says what the step does; the command's first line. */
    readonly title: string;
    readonly script: N;
    readonly args: ScriptArgs<N>;
    /** Further registered scripts staged beside it under their file names (e.g. policy-routes.sh). */
    readonly companions?: readonly ScriptName[];
    /** Further files staged beside it, by path relative to the stage directory (e.g. a manifest). */
    readonly files?: readonly StagedFile[];
    /** The node's store: every file it holds is fetched from there by sha256 instead of carried (nodeStore.ts). */
    readonly store?: StoreRef;
}

/** The command text of a remote step (see the top of this file for what it does). */
export function remoteCommand<N extends NodeScriptName>(step: RemoteStep<N>): string {
    const scripts = [step.script, ...(step.companions ?? [])].map((name) => ({ name: scriptFileName(name), content: scriptText(name) }));
    // ScriptArgs<N> is a tuple of words and STAGE_DIR for every node script (scriptParams.ts).
    return stagedCommand(step.title, [...scripts, ...(step.files ?? [])], step.args as readonly (string | StageDir)[], step.store);
}
