import { createHash } from "node:crypto";
import { STAGE_DIR, type NodeScriptName, type ScriptArgs, type ScriptName, type StageDir } from "./scriptParams";
import { scriptFileName, scriptText } from "./scripts";
import { sha256Hex, storeDirWord, storeHolds, type StoreRef } from "./nodeStore";

/*
 * The one builder of the command text every remote (node, over SSH) step runs: remote.Command's
 * create/delete and the drift check's ssh. sshd hands the text to the user's login shell as
 * `sh -c TEXT` (a POSIX sh program, dash on Debian). The work is done by one script, the node runner
 * (scripts/node-runner.sh), which
 *   1. stages N files into a private temp directory: fetched from the node store by sha256, or carried
 *      in the text as arguments (visible in `pulumi preview`; nothing secret is ever staged),
 *   2. checks every staged file against its SHA-256 (`sha256sum -c`) and runs nothing on a mismatch,
 *   3. runs the first with bash as root (`sudo -n` for a non-root user: no password prompt can hang
 *      the run), with a pinned PATH (NODE_PATH) and stdin closed,
 *   4. exits with the script's status, the script's stderr and stdout being the only output: its
 *      stderr as it is written, its stdout held back until it ends (see below).
 * With a node store (every node step of the program), the text only checks the runner the store
 * holds under its sha256 (a missing or changed runner: one line naming the node-store step, nothing
 * run) and execs it with the step's files and arguments: a few lines. Without one (the drift check,
 * tests), the text carries the runner itself in a quoted heredoc, and every file as an argument.
 *
 * How a failure reads: pulumi-command v1.2.1 (provider/pkg/provider/remote/commandOutputs.go line 101,
 * CommandOutputs.run, tag v1.2.1 = 7f3eb6f) returns `fmt.Errorf("%w: running %q:\n%s", err, cmd,
 * stdouterrbuf.String())`: the SSH exit error (golang.org/x/crypto v0.48.0 ssh/session.go:639,
 * "Process exited with status N"), then this whole text Go-quoted on one line, then the session's
 * stdout and stderr in one buffer, in the order they arrived (the same output is also logged live,
 * util.LogOutput at diag.Info). So the runner writes nothing of its own unless a file is missing or
 * corrupt, and holds the script's stdout (progress lines, the JSON summary) back until the script
 * ends: the script's own stderr is the first thing after the quoted text, and the text is short
 * (test/node-store-ssh.test.ts shows the error of a failing step over real SSH).
 */

/**
 * sshd passes the command to `sh -c` as one argv string; Linux caps one argument at 128 KiB
 * (MAX_ARG_STRLEN). Stay clearly below it.
 */
export const MAX_COMMAND_BYTES = 120 * 1024;

/** Nodes' sbin directories are not on a non-login SSH PATH everywhere; nft, ip and iptables live there. The runner pins it (script-registry.test.ts checks the two agree). */
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

function checkName(name: string): void {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/.test(name)) throw new Error(`bad staged file name ${JSON.stringify(name)}`);
}

/** The node runner (scripts/node-runner.sh): POSIX sh, ASCII, ending in exactly one newline (see below). */
export function nodeRunnerText(): string {
    const text = scriptText("commands/node-runner");
    // The store form reads it back through `$(cat ...)`, which drops every final newline, and checks
    // `printf '%s\n'` of that: exact only for a text ending in one newline, with no NUL.
    if (!text.endsWith("\n") || text.endsWith("\n\n") || /[^\x01-\x7f]/.test(text))
        throw new Error("node-runner.sh must be ASCII and end in exactly one newline");
    return text;
}

/** Any text as one single-quoted sh word (a ' becomes '\''): exact for every byte but NUL. */
function quoted(text: string): string {
    return `'${text.replace(/'/g, "'\\''")}'`;
}

/**
 * The runner's arguments for one file: fetched from the store by digest, or carried in the text.
 * Content with bytes outside ASCII travels base64-encoded (`base64 -d`, coreutils): dash 0.5.12, a
 * common /bin/sh, loses bytes of some UTF-8 sequences inside quoted text (measured: the 0xCC byte of
 * "C\u0327\u0301" in a quoted heredoc), and the checksum would then refuse the whole run. ASCII stays
 * readable in `pulumi preview`.
 */
function fileArguments(file: StagedFile, store: StoreRef | undefined): string {
    const sha = sha256Hex(file.content);
    if (storeHolds(store, file.content)) return `-f ${sha} ${quoted(file.name)}`;
    if (/[^\x00-\x7f]/.test(file.content)) return `-b ${quoted(file.name)} ${sha} ${quoted(Buffer.from(file.content, "utf8").toString("base64"))}`;
    return `-i ${quoted(file.name)} ${sha} ${quoted(file.content)}`;
}

/** One argument: a quoted word, or the runner's placeholder for the stage directory ({stage}: no word shellWord passes). */
function argument(arg: string | StageDir): string {
    return arg === STAGE_DIR ? "'{stage}'" : shellWord(arg);
}

/**
 * The text-level builder: the runner stages `files` (the first one is run), checks them, runs it.
 * Steps use remoteCommand below, which takes the script by its registry name; this is for tests and
 * tools that run a text of their own.
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
    const runner = nodeRunnerText();
    if (store !== undefined && !storeHolds(store, runner)) throw new Error(`the node store set of the ${title} command lacks the node runner`);
    const runnerSha = sha256Hex(runner);
    const invocation = [
        `exec sh -c "$ckpr_r" cilium-kpr-runner ${store === undefined ? "-" : '"$ckpr_store"'}`,
        ...files.map((f) => fileArguments(f, store)),
        ["--", ...args.map(argument)].join(" "),
    ].join(" \\\n  ");
    const heading = `# cilium-kpr: ${title.replace(/\n/g, " ")}`;
    const text =
        store === undefined
            ? [
                  `${heading} (runs ${run.name} as root through the node runner, carried here; its files are staged and checked first)`,
                  "set -eu",
                  `ckpr_r=$(cat <<'${heredocTerminator("RUNNER", runner)}'`,
                  `${runner}${heredocTerminator("RUNNER", runner)}`,
                  ")",
                  invocation,
                  "",
              ]
            : [
                  // The exec line below names the runner and the script: the title is enough here.
                  heading,
                  "set -eu",
                  `ckpr_store=${storeDirWord(store.dir)} ckpr_runner=${runnerSha}`,
                  // The runner is checked as read, and what was checked is what runs (no copy to change under us).
                  `ckpr_r=$(cat -- "$ckpr_store/$ckpr_runner" 2>/dev/null) && [ "$(printf '%s\\n' "$ckpr_r" | sha256sum)" = "$ckpr_runner  -" ] ||`,
                  `  { echo "cilium-kpr: the node runner (sha256 $ckpr_runner) is missing from the node store $ckpr_store or differs (node-store step); nothing was run" >&2; exit 1; }`,
                  invocation,
                  "",
              ];
    const joined = text.join("\n");
    const bytes = Buffer.byteLength(joined, "utf8");
    if (bytes > MAX_COMMAND_BYTES) {
        throw new Error(`the ${title} command is ${bytes} bytes; sshd's sh -c argument must stay below ${MAX_COMMAND_BYTES}`);
    }
    return joined;
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
