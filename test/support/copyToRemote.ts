import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync, type Stats } from "node:fs";
import * as path from "node:path";

/**
 * A stand-in for pulumi-command 1.2.1's remote.CopyToRemote, acting on this machine's file system as
 * the node's SSH user would see it over SFTP. Modelled on provider/pkg/provider/remote/copy.go and
 * copyController.go at v1.2.1 (Check, Create -> copyToRemote -> sftpCopy/copyDir/copyFile/
 * copyTextContent, Update's needCopy, no Delete), with OpenSSH's sftp-server for what the server does
 * (sftp-server.c process_open: mode 0666 unless the client sends one, process_mkdir: 0777; both under
 * the server's umask; pkg/sftp's Create and Mkdir send none). Error texts are the provider's.
 */

/** The source input, as the engine hands it to the provider (a path asset/archive, or a text asset). */
export type CopySource =
    | { readonly kind: "fileArchive"; readonly path: string; readonly hash: string }
    | { readonly kind: "fileAsset"; readonly path: string; readonly hash: string }
    | { readonly kind: "stringAsset"; readonly text: string; readonly hash: string }
    | { readonly kind: "assetArchive"; readonly hash: string }
    | { readonly kind: "remoteAsset"; readonly uri: string; readonly hash: string };

export interface CopyInputs {
    readonly source: CopySource;
    readonly remotePath: string;
}

export interface SftpServer {
    /** The SSH user's home directory: sftp-server's cwd (OpenSSH session.c do_child chdir(pw->pw_dir)). */
    readonly home: string;
    /** sshd's umask, inherited by sftp-server (022 on Debian). */
    readonly umask?: number;
}

export class CopyToRemoteError extends Error {}

/** copyController.go Check: the failures the engine would report before anything runs. */
export function checkCopyInputs(inputs: CopyInputs): string[] {
    const failures: string[] = [];
    const { source } = inputs;
    if (source.kind === "assetArchive") failures.push("archive: archive must be a path to a file or directory");
    if (source.kind === "remoteAsset") failures.push("asset: asset must be a path-based file asset or a text asset");
    if (inputs.remotePath === "") failures.push("remotePath: missing required property");
    return failures;
}

function remoteFile(server: SftpServer, remotePath: string): string {
    // SFTP resolves a relative path against the server's cwd, the user's home directory.
    return path.isAbsolute(remotePath) ? remotePath : path.join(server.home, remotePath);
}

/** remoteStat: undefined when absent (pkg/sftp normalises ENOENT to os.ErrNotExist). */
function remoteStat(file: string): Stats | undefined {
    try {
        return statSync(file);
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new CopyToRemoteError(`failed to stat remote path ${file}: ${(err as Error).message}`);
    }
}

function umaskOf(server: SftpServer): number {
    return server.umask ?? 0o022;
}

/** sftp Mkdir: fails when the parent is missing or the path exists (SSH_FX_FAILURE). */
function sftpMkdir(server: SftpServer, dir: string): void {
    mkdirSync(dir, { mode: 0o777 & ~umaskOf(server) });
}

/** pkg/sftp Client.MkdirAll: stat, then create the parent chain, then this directory. */
function sftpMkdirAll(server: SftpServer, dir: string): void {
    const st = remoteStat(dir);
    if (st !== undefined) {
        if (st.isDirectory()) return;
        throw new CopyToRemoteError(`mkdir ${dir}: not a directory`);
    }
    const parent = path.dirname(dir);
    if (parent !== dir) sftpMkdirAll(server, parent);
    sftpMkdir(server, dir);
}

/** copyFile: sftp Create (O_RDWR|O_CREATE|O_TRUNC; an existing file keeps its mode) then write. */
function copyFile(server: SftpServer, content: Buffer, dst: string, what: string): void {
    let fd: number;
    try {
        fd = openSync(dst, "w", 0o666 & ~umaskOf(server));
    } catch (err) {
        throw new CopyToRemoteError(`failed to create remote file ${dst}: ${(err as Error).message}`);
    }
    try {
        writeSync(fd, content);
    } catch (err) {
        throw new CopyToRemoteError(`failed to copy file ${what} to remote path ${dst}: ${(err as Error).message}`);
    } finally {
        closeSync(fd);
    }
}

/** copyDir: fs.WalkDir order (lexical), directories made with Mkdir, files copied. */
function copyDir(server: SftpServer, src: string, dst: string): void {
    const walk = (rel: string) => {
        const from = path.join(src, rel);
        const to = path.join(dst, rel);
        if (statSync(from).isDirectory()) {
            const info = remoteStat(to);
            if (info === undefined) {
                try {
                    sftpMkdir(server, to);
                } catch (err) {
                    throw new CopyToRemoteError(`failed to create remote directory ${to}: ${(err as Error).message}`);
                }
            } else if (!info.isDirectory()) {
                throw new CopyToRemoteError(`remote path ${to} exists but is not a directory`);
            }
            for (const entry of readdirSync(from).sort()) walk(path.join(rel, entry));
        } else {
            copyFile(server, readFileSync(from), to, from);
        }
    };
    walk(".");
}

/** sftpCopy, with its table of source/destination cases. */
function sftpCopy(server: SftpServer, sourcePath: string, destPath: string): void {
    let srcInfo: Stats;
    try {
        srcInfo = statSync(sourcePath);
    } catch (err) {
        throw new CopyToRemoteError(
            `open ${sourcePath}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (err as Error).message}`,
        );
    }
    let dest = remoteFile(server, destPath);
    let destStat = remoteStat(dest);
    if (srcInfo.isDirectory()) {
        if (destStat === undefined) {
            try {
                sftpMkdirAll(server, dest);
            } catch (err) {
                throw new CopyToRemoteError(`failed to create remote directory ${dest}: ${(err as Error).message}`);
            }
        }
        if (!sourcePath.endsWith("/")) {
            dest = path.join(dest, path.basename(sourcePath));
            destStat = remoteStat(dest);
            if (destStat !== undefined && !destStat.isDirectory()) throw new CopyToRemoteError(`remote path ${dest} exists but is not a directory`);
            if (destStat === undefined) {
                try {
                    sftpMkdir(server, dest);
                } catch (err) {
                    throw new CopyToRemoteError(`failed to create remote directory ${dest}: ${(err as Error).message}`);
                }
            }
        }
        copyDir(server, sourcePath, dest);
    } else {
        if (destStat?.isDirectory()) {
            dest = path.join(dest, path.basename(sourcePath));
        } else if (destStat === undefined) {
            try {
                sftpMkdirAll(server, path.dirname(dest));
            } catch (err) {
                throw new CopyToRemoteError(`failed to create parent directories for ${dest}: ${(err as Error).message}`);
            }
        }
        copyFile(server, readFileSync(sourcePath), dest, sourcePath);
    }
}

/** copyTextContent (a StringAsset source). */
function copyTextContent(server: SftpServer, text: string, destPath: string): void {
    const dest = remoteFile(server, destPath);
    if (remoteStat(dest)?.isDirectory()) {
        throw new CopyToRemoteError(`remote path ${dest} is a directory; when using a text asset, remotePath must be a file path`);
    }
    try {
        sftpMkdirAll(server, path.dirname(dest));
    } catch (err) {
        throw new CopyToRemoteError(`failed to create parent directories for ${dest}: ${(err as Error).message}`);
    }
    copyFile(server, Buffer.from(text, "utf8"), dest, "text");
}

/** Create (not a preview): Check, then copy. */
export function createCopy(server: SftpServer, inputs: CopyInputs): void {
    const failures = checkCopyInputs(inputs);
    if (failures.length > 0) throw new CopyToRemoteError(failures.join("; "));
    const { source } = inputs;
    if (source.kind === "stringAsset") copyTextContent(server, source.text, inputs.remotePath);
    else if (source.kind === "fileArchive" || source.kind === "fileAsset") sftpCopy(server, source.path, inputs.remotePath);
}

/** Update: copies again only when the source's hash or the remote path changed (needCopy). */
export function updateCopy(server: SftpServer, olds: CopyInputs, news: CopyInputs): "copied" | "unchanged" {
    if (olds.source.hash === news.source.hash && olds.remotePath === news.remotePath) return "unchanged";
    createCopy(server, news);
    return "copied";
}

/** Delete: CopyToRemote implements none, so nothing runs (pulumi-go-provider infer CustomDelete). */
export function deleteCopy(): void {}
