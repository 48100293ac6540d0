import { createPublicKey } from "node:crypto";

/*
 * The one check of a pinned SSH host key, used by the stack config (schema.ts) and the policy pack
 * (policy/invariants.ts). A host key line is "<type> <base64 blob>", as `ssh-keyscan` prints it
 * without the host. The blob is the SSH wire format (RFC 4253 section 6.6): a string with the type
 * name, then the type's fields, each a uint32 length and that many bytes.
 * pulumi-command parses the line with golang.org/x/crypto/ssh ParseAuthorizedKey (v0.48.0
 * ssh/keys.go): it goes by the type name inside the blob, not the line's first word, and refuses a
 * wrong ed25519 size (parseED25519 "invalid size"), an ECDSA point off its curve (parseECDSA
 * "invalid curve point") and trailing bytes (ParsePublicKey "trailing junk in public key"); such a key
 * fails every remote step at `up`. A line whose first word differs from its blob's type is refused
 * too: it pins another algorithm than it says, and OpenSSH's own parser refuses it
 * (test/config-validation.test.ts compares with `ssh-keygen -l`).
 */

/** Host key types a connection can pin. */
export const PINNABLE_HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const;

const ECDSA_CURVES: Readonly<Record<string, { readonly curve: string; readonly jwk: string; readonly coordinateBytes: number }>> = {
    "ecdsa-sha2-nistp256": { curve: "nistp256", jwk: "P-256", coordinateBytes: 32 },
    "ecdsa-sha2-nistp384": { curve: "nistp384", jwk: "P-384", coordinateBytes: 48 },
    "ecdsa-sha2-nistp521": { curve: "nistp521", jwk: "P-521", coordinateBytes: 66 },
};

const ED25519_KEY_BYTES = 32;

/**
 * Why ssh-rsa cannot be pinned. pulumi-command 1.2.1 (provider/pkg/provider/remote/connection.go,
 * SSHConfig) pins with ssh.FixedHostKey and sets HostKeyAlgorithms to []string{publicKey.Type()},
 * which is "ssh-rsa" for an RSA key; x/crypto v0.48.0 offers exactly that list in its KEXINIT
 * (ssh/handshake.go, sendKexInit: msg.ServerHostKeyAlgos = t.hostKeyAlgorithms). "ssh-rsa" is the
 * SHA-1 signature, which OpenSSH 8.8 and later servers no longer offer by default
 * (https://www.openssh.com/txt/release-8.8), so the key exchange finds no common host key algorithm.
 */
export const SSH_RSA_REFUSAL =
    "is an ssh-rsa key, which cannot be pinned: the SSH client offers only the pinned key's own algorithm, and for RSA that is the SHA-1 " +
    '"ssh-rsa" signature OpenSSH 8.8 and later servers disable, so every remote step would fail to connect; pin the node\'s ed25519 or ECDSA ' +
    "key instead (`ssh-keyscan -t ed25519 <host>`, without the host name)";

const LINE_FORM =
    'is not a public host key line such as "ssh-ed25519 AAAA..." (what `ssh-keyscan -t ed25519 <host>` prints, without the host name and without a comment)';

/** A decoded host key: its type and the fields after the type name. */
export interface HostKeyBlob {
    readonly type: string;
    readonly fields: readonly Buffer[];
}

/** Why a host key line cannot pin a host, or undefined if it can. The text is meant to follow the key's name. */
export function hostKeyProblem(line: string): string | undefined {
    const match = /^([A-Za-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    if (!match) return LINE_FORM;
    const [, type, base64] = match as unknown as [string, string, string];
    if (type === "ssh-rsa") return SSH_RSA_REFUSAL;
    if (!(PINNABLE_HOST_KEY_TYPES as readonly string[]).includes(type)) {
        return `is a ${type} key; pin the node's ed25519 or ECDSA key (${PINNABLE_HOST_KEY_TYPES.join(", ")}): \`ssh-keyscan -t ed25519 <host>\``;
    }
    const blob = Buffer.from(base64, "base64");
    if (base64.length % 4 !== 0 || blob.toString("base64") !== base64) return "is not valid base64 (was the line cut or wrapped?)";

    const read = readWireStrings(blob);
    if (typeof read === "string") return read;
    const [name, ...fields] = read;
    if (name === undefined) return "is empty";
    const blobType = name.toString("latin1");
    if (blobType !== type) return `says ${type} but the key inside is ${printable(blobType)}`;
    return type === "ssh-ed25519" ? ed25519Problem(fields) : ecdsaProblem(type, fields);
}

/**
 * Whether a well-formed key's material is readable text (the example stacks' "replace-me-..." keys):
 * a real key's random bytes are all printable with odds below 1e-13. Only the policy pack refuses
 * these: the committed example stacks use them so the offline plan runs without a cluster.
 */
export function hostKeyPlaceholderText(line: string): string | undefined {
    if (hostKeyProblem(line) !== undefined) return undefined;
    const read = readWireStrings(Buffer.from(line.split(" ")[1]!, "base64"));
    if (typeof read === "string") return undefined;
    const material = read.slice(1).reduce((longest, f) => (f.length > longest.length ? f : longest));
    return material.every((byte) => byte >= 0x20 && byte <= 0x7e) ? material.toString("latin1") : undefined;
}

function ed25519Problem(fields: readonly Buffer[]): string | undefined {
    if (fields.length === 0) return "is truncated: the ed25519 key has no key bytes";
    if (fields.length > 1) return "has data after the ed25519 key (ssh: trailing junk in public key)";
    if (fields[0]!.length !== ED25519_KEY_BYTES) return `has an ed25519 key of ${fields[0]!.length} bytes; ed25519 keys are ${ED25519_KEY_BYTES}`;
    return undefined;
}

function ecdsaProblem(type: string, fields: readonly Buffer[]): string | undefined {
    const spec = ECDSA_CURVES[type]!;
    if (fields.length < 2) return `is truncated: the ${type} key lacks its ${fields.length === 0 ? "curve name and point" : "point"}`;
    if (fields.length > 2) return `has data after the ${type} key (ssh: trailing junk in public key)`;
    const [curve, point] = fields as [Buffer, Buffer];
    if (curve.toString("latin1") !== spec.curve) return `says ${type} but names the curve ${printable(curve.toString("latin1"))}`;
    const n = spec.coordinateBytes;
    if (point.length !== 1 + 2 * n || point[0] !== 0x04) return `has a ${spec.curve} point of ${point.length} bytes; an uncompressed point is ${1 + 2 * n}`;
    try {
        const coordinate = (from: number) => point.subarray(from, from + n).toString("base64url");
        createPublicKey({ key: { kty: "EC", crv: spec.jwk, x: coordinate(1), y: coordinate(1 + n) }, format: "jwk" });
    } catch {
        return `has a point that is not on the ${spec.curve} curve`;
    }
    return undefined;
}

/** Splits an SSH wire-format blob into its length-prefixed strings, or says where it is cut. */
function readWireStrings(blob: Buffer): Buffer[] | string {
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < blob.length) {
        if (offset + 4 > blob.length) return `is truncated: ${blob.length - offset} stray byte(s) where a field length should be`;
        const length = blob.readUInt32BE(offset);
        offset += 4;
        if (offset + length > blob.length) return `is truncated: a field says ${length} bytes but only ${blob.length - offset} follow`;
        out.push(blob.subarray(offset, offset + length));
        offset += length;
    }
    return out;
}

function printable(text: string): string {
    return /^[\x20-\x7e]{1,64}$/.test(text) ? `"${text}"` : "not a key type name";
}
