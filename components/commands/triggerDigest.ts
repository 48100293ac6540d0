import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

/**
 * A trigger that changes exactly when any of `texts` changes, without carrying them: `triggers` is an
 * input, so whatever it holds is stored in state (twice: inputs and the provider's outputs). The texts
 * are hashed as a JSON array (an absent text as null), so moving text from one to the next changes the digest too.
 */
export function textsDigest(texts: readonly (string | undefined)[]): string {
    return `sha256:${createHash("sha256").update(JSON.stringify(texts), "utf8").digest("hex")}`;
}

/** textsDigest of outputs; the result still depends on the resources they come from. */
export function outputsDigest(texts: readonly pulumi.Input<string | undefined>[]): pulumi.Output<string> {
    return pulumi.all([...texts]).apply((values) => textsDigest(values));
}
