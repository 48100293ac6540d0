import { z } from "zod";

/*
 * Zod's own messages ("Invalid input: expected number, received string") speak about JavaScript. The
 * stack file is YAML written by an operator, so type errors say what to write there instead. Checks
 * that carry their own message (ports, names, CIDRs) keep it: a schema's message wins over this
 * per-parse map (zod 4 error precedence).
 */

function describe(value: unknown): string {
    if (value === undefined) return "nothing";
    if (value === null) return "an empty value (null)";
    if (typeof value === "string") return `the text "${value.length > 60 ? `${value.slice(0, 57)}...` : value}"`;
    if (typeof value === "number" || typeof value === "boolean") return `${typeof value === "number" ? "the number " : ""}${String(value)}`;
    if (Array.isArray(value)) return "a list";
    return "a map of settings";
}

const EXPECTED: Readonly<Record<string, string>> = {
    string: "text",
    number: "a number",
    int: "a whole number",
    boolean: "true or false",
    array: "a list (one `- item` per line, or [a, b])",
    object: "a map of settings (one `key: value` per line)",
    record: "a map of settings (one `key: value` per line)",
};

export const userWords: z.core.$ZodErrorMap = (issue) => {
    switch (issue.code) {
        case "invalid_type": {
            if (issue.input === undefined) return "is required";
            const expected = EXPECTED[issue.expected] ?? issue.expected;
            const quoteHint =
                issue.expected === "string" && (typeof issue.input === "number" || typeof issue.input === "boolean")
                    ? ` (put it in quotes in the stack file: "${String(issue.input)}")`
                    : "";
            return `expected ${expected}, got ${describe(issue.input)}${quoteHint}`;
        }
        case "invalid_value":
            return `must be ${issue.values.length === 1 ? "" : "one of "}${issue.values.map((v) => JSON.stringify(v)).join(", ")}; got ${describe(issue.input)}`;
        case "too_small":
            if (issue.origin === "array") return `needs at least ${String(issue.minimum)} item${issue.minimum === 1 ? "" : "s"}`;
            if (issue.origin === "string") return `needs at least ${String(issue.minimum)} character${issue.minimum === 1 ? "" : "s"}`;
            return `must be at least ${String(issue.minimum)}; got ${describe(issue.input)}`;
        case "too_big":
            if (issue.origin === "array") return `takes at most ${String(issue.maximum)} items`;
            if (issue.origin === "string") return `takes at most ${String(issue.maximum)} characters`;
            return `must be at most ${String(issue.maximum)}; got ${describe(issue.input)}`;
        case "invalid_union": {
            const expected = [
                ...new Set(issue.errors.flatMap((option) => option.flatMap((i) => (i.code === "invalid_type" ? [EXPECTED[i.expected] ?? i.expected] : [])))),
            ];
            return expected.length > 0 ? `expected ${expected.join(" or ")}, got ${describe(issue.input)}` : `has the wrong type: got ${describe(issue.input)}`;
        }
        default:
            return undefined;
    }
};

/** Optimal string alignment distance: edits, with a swap of two neighbours counting as one ("prot" -> "port"). */
export function editDistance(a: string, b: string): number {
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
            d[i]![j] = best;
        }
    }
    return d[a.length]![b.length]!;
}

/** The known name closest to `name`, if it is close enough to be a typo (at most a third of its letters off, at least one). */
export function closestName(name: string, known: readonly string[]): string | undefined {
    let best: { name: string; distance: number } | undefined;
    for (const candidate of known) {
        const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
        if (best === undefined || distance < best.distance) best = { name: candidate, distance };
    }
    return best !== undefined && best.distance <= Math.max(1, Math.floor(best.name.length / 3)) ? best.name : undefined;
}

/** "is not a setting of X; did you mean "y"?" or, without a close match, the list of settings. */
export function unknownKeyMessage(key: string, known: readonly string[], where: string): string {
    const guess = closestName(key, known);
    const hint = guess !== undefined ? `did you mean "${guess}"?` : `the settings there are: ${known.join(", ")}`;
    return `is not a setting of ${where}, so what it sets would not apply; ${hint}`;
}

/** The keys of the object schema found by walking `path` into `schema` (through defaults, optionals, pipes and lists). */
export function objectKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
    let current: z.ZodType | undefined = unwrap(schema);
    for (const part of path) {
        if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodType>)[String(part)];
        else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
        else return [];
        current = current === undefined ? undefined : unwrap(current);
    }
    return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
    let current = schema;
    for (;;) {
        if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault || current instanceof z.ZodOptional || current instanceof z.ZodNullable) {
            current = current.unwrap() as z.ZodType;
        } else if (current instanceof z.ZodPipe) {
            current = current.in as z.ZodType;
        } else {
            return current;
        }
    }
}
