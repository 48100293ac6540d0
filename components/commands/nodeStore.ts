import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { memoized } from "../memoized";

/**
 * The node store: a content-addressed directory on each node holding the node-side files that are the
 * same on every node (scripts, config-wide rendered files), each named by its own sha256. One
 * remote.CopyToRemote per node fills it; node steps then name files by digest instead of carrying their
 * text, so Pulumi state keeps a digest per file instead of the file (state keeps every input, and a
 * StringAsset's text too: pulumi/pulumi sdk/go/common/resource/asset/asset.go Asset.Serialize; a path
 * FileArchive is stored as path + hash only: sdk/go/common/resource/archive/archive.go Archive.Serialize).
 *
 * The copy only ever adds files (pulumi-command 1.2.1 remote/copyController.go has no Delete; a copy
 * overwrites same-named files, which here means identical content), so a delete stored in state long ago
 * still finds exactly the files it was created with, whatever the repository holds now.
 */

/**
 * Where the store lives on a node, relative to the SSH user's home directory: sftp-server and the
 * remote command both start there (OpenSSH session.c do_child: chdir(pw->pw_dir)), so the same relative
 * path works for root and for a sudo user, who can write nowhere else.
 */
export const NODE_STORE_DIR = ".cilium-kpr/node-store";

export interface StoreEntry {
    readonly sha256: string;
    readonly content: string;
}

/** A set of files as the store holds them, and one digest over the whole set. */
export interface StoreSet {
    /**
     * sha256 of the set's manifest, which the store holds under this name too (so it is content-addressed
     * like the rest): the manifest lists every member as `sha256sum -c` reads it, "<sha256>  <sha256>".
     */
    readonly digest: string;
    readonly manifest: string;
    /** One entry per distinct content, sorted by digest. */
    readonly entries: readonly StoreEntry[];
}

export function sha256Hex(text: string): string {
    return rememberedSha256(text);
}

// Every node's set holds the same few texts: hashed once each, not once per node.
const rememberedSha256 = memoized((text: string) => createHash("sha256").update(text, "utf8").digest("hex"), 4096);

/** The store set of some file contents (duplicates collapse: the store is content-addressed). */
export function storeSet(contents: readonly string[]): StoreSet {
    const byDigest = new Map<string, string>();
    for (const content of contents) byDigest.set(sha256Hex(content), content);
    const entries = [...byDigest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sha256, content]) => ({ sha256, content }));
    const manifest = entries.map((e) => `${e.sha256}  ${e.sha256}\n`).join("");
    return { digest: sha256Hex(manifest), manifest, entries };
}

/** Every file of the set's local directory: the members and the manifest. */
function filesOf(set: StoreSet): StoreEntry[] {
    return [...set.entries, { sha256: set.digest, content: set.manifest }].sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
}

/** True when `dir` holds exactly the set's files, each with its content. */
function holdsExactly(dir: string, set: StoreSet): boolean {
    const files = filesOf(set);
    const present = readdirSync(dir).sort();
    if (present.join("\n") !== files.map((e) => e.sha256).join("\n")) return false;
    return files.every((e) => sha256Hex(readFileSync(path.join(dir, e.sha256), "utf8")) === e.sha256);
}

/**
 * Writes the set to `<root>/<set digest>/` (one file per digest) and returns that directory with a
 * trailing "/", the form CopyToRemote copies the *contents* of (copyController.go sftpCopy: "dir/" ->
 * dest/x for x in dir). The engine hashes the directory when the resource registers, so it must exist
 * before the resource is declared (pkg/resource/deploy/source_eval.go RegisterResource,
 * ComputeAssetHashes). Written into a temporary sibling and renamed, so a concurrent run or a crash
 * never leaves a half-written set; a directory found with other content is replaced.
 */
export function writeLocalStore(root: string, set: StoreSet): string {
    const dir = path.join(root, set.digest);
    if (existsSync(dir) && holdsExactly(dir, set)) return `${dir}/`;
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const tmp = path.join(root, `.tmp-${set.digest}-${randomBytes(6).toString("hex")}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
        for (const e of filesOf(set)) writeFileSync(path.join(tmp, e.sha256), e.content, { mode: 0o644 });
        if (existsSync(dir)) {
            if (holdsExactly(dir, set)) return `${dir}/`;
            rmSync(dir, { recursive: true, force: true });
        }
        try {
            renameSync(tmp, dir);
        } catch (err) {
            // Another run renamed the same set first: fine if it is complete.
            if (!(existsSync(dir) && holdsExactly(dir, set))) throw err;
        }
    } finally {
        rmSync(tmp, { recursive: true, force: true });
    }
    return `${dir}/`;
}

const SHA256 = /^[0-9a-f]{64}$/;
const STORE_DIR = /^[A-Za-z0-9_./-]+$/;

/** The store directory as a shell word: a relative one is under $HOME (see NODE_STORE_DIR). */
export function storeDirWord(storeDir: string): string {
    if (!STORE_DIR.test(storeDir) || storeDir.split("/").includes("..") || [".", ""].includes(storeDir.replace(/\/+$/, ""))) {
        throw new Error(`node store directory "${storeDir}" must be a plain path without ".."`);
    }
    const dir = storeDir.replace(/\/+$/, "");
    return dir.startsWith("/") ? `'${dir}'` : `"$HOME"/'${dir}'`;
}

/**
 * The store check (remote.Command `create`): every file of the set is present under its digest and
 * has that digest. Runs as the SSH user (the store is the SSH user's), reads only.
 */
export function storeCheckCommand(set: StoreSet, storeDir: string = NODE_STORE_DIR): string {
    if (!SHA256.test(set.digest)) throw new Error(`"${set.digest}" is not a sha256 digest`);
    return [
        `# cilium-kpr: check the node store holds set ${set.digest} (${set.entries.length} files, each named by its sha256)`,
        "set -eu",
        `cd ${storeDirWord(storeDir)}`,
        // The manifest first (it is named by its own digest), then every member it lists.
        `printf '%s  %s\\n' ${set.digest} ${set.digest} | sha256sum --quiet --strict -c -`,
        `sha256sum --quiet --strict -c ${set.digest}`,
        `echo "node store holds set ${set.digest}"`,
        "",
    ].join("\n");
}

/**
 * The store's removal (remote.Command `delete`): every node step depends on the store, so destroy runs
 * this after their deletes. Removes the parent too when nothing else is in it (we created it).
 */
export function storeRemoveCommand(storeDir: string = NODE_STORE_DIR): string {
    const dir = storeDirWord(storeDir);
    const parent = path.posix.dirname(storeDir.replace(/\/+$/, ""));
    return [
        "# cilium-kpr: remove the node store (after every node step's delete)",
        "set -eu",
        `rm -rf -- ${dir}`,
        // The parent only when it is ours by name (".cilium-kpr"), and only if empty.
        ...(/cilium-kpr/.test(path.posix.basename(parent)) ? [`rmdir -- ${storeDirWord(parent)} 2>/dev/null || true`] : []),
        "echo 'node store removed'",
        "",
    ].join("\n");
}

/** What a node step's text needs to fetch from the store: the set copied there, and where it is. */
export interface StoreRef {
    readonly set: StoreSet;
    readonly dir: string;
}

export function storeRef(set: StoreSet, dir: string = NODE_STORE_DIR): StoreRef {
    storeDirWord(dir);
    return { set, dir };
}

/** True when the store holds this exact content (so a step fetches it instead of carrying it). */
export function storeHolds(store: StoreRef | undefined, content: string): boolean {
    if (store === undefined) return false;
    const sha = sha256Hex(content);
    return store.set.entries.some((e) => e.sha256 === sha);
}
