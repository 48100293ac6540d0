import { generateKeyPairSync } from "node:crypto";

/*
 * Host key lines as `ssh-keyscan` prints them (without the host), built from freshly generated keys
 * in the SSH wire format (RFC 4253 section 6.6, RFC 5656 section 3.1, RFC 8709 section 4).
 */

export function wireString(b: Buffer | string): Buffer {
    const bytes = typeof b === "string" ? Buffer.from(b, "latin1") : b;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length, 0);
    return Buffer.concat([length, bytes]);
}

export function keyLine(type: string, fields: readonly Buffer[], blobType = type): string {
    return `${type} ${Buffer.concat([wireString(blobType), ...fields.map(wireString)]).toString("base64")}`;
}

export function ed25519HostKey(): string {
    const spki = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
    return keyLine("ssh-ed25519", [spki.subarray(spki.length - 32)]);
}

const CURVES = { nistp256: "P-256", nistp384: "P-384", nistp521: "P-521" } as const;

export function ecdsaHostKey(curve: keyof typeof CURVES): string {
    const jwk = generateKeyPairSync("ec", { namedCurve: CURVES[curve] }).publicKey.export({ format: "jwk" });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
    return keyLine(`ecdsa-sha2-${curve}`, [Buffer.from(curve), point]);
}

/** ssh-rsa: mpint e, mpint n (a leading zero byte keeps a high bit positive). */
export function rsaHostKey(): string {
    const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" });
    const mpint = (b64: string) => {
        const b = Buffer.from(b64, "base64url");
        return b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
    };
    return keyLine("ssh-rsa", [mpint(jwk.e!), mpint(jwk.n!)]);
}
