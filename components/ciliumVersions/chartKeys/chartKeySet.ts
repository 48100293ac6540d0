import valuesData from "./values-1.19.0.json";

/** The value keys of the real Cilium 1.19.0 chart, as derived in values-1.19.0.json (see README.md). */
export interface ChartKeySet {
    readonly chartVersion: string;
    /** Every key path the set can vouch for: full subtrees, the listed keys of partial subtrees, and commented keys a template reads. */
    readonly known: ReadonlySet<string>;
    readonly topLevelKeys: ReadonlySet<string>;
    /** Top-level keys whose whole subtree was transcribed (absence under them is meaningful). */
    readonly completeSubtrees: ReadonlySet<string>;
}

export type KeyVerdict = "present" | "absent" | "unverified";

export function chartKeySet1190(): ChartKeySet {
    const known = new Set<string>();
    const complete = new Set<string>();
    const subtrees: Record<string, readonly string[]> = valuesData.subtrees;
    const partial: Record<string, readonly string[]> = valuesData.partialSubtrees;
    for (const key of valuesData.topLevelKeys) {
        if (subtrees[key] === undefined && partial[key] === undefined) {
            // A scalar, list or free-form map at the top level: the key itself is the path.
            known.add(key);
        }
    }
    for (const [top, children] of Object.entries(subtrees)) {
        complete.add(top);
        for (const child of children) known.add(`${top}.${child}`);
    }
    for (const [top, children] of Object.entries(partial)) {
        for (const child of children) known.add(`${top}.${child}`);
    }
    for (const { key } of valuesData.commentedKeys) known.add(key);
    return { chartVersion: valuesData.chartVersion, known, topLevelKeys: new Set(valuesData.topLevelKeys), completeSubtrees: complete };
}

/**
 * Whether a dotted value path exists in the chart. "absent" is only claimed where the transcription is
 * complete (an unknown top-level key, or a path under a fully transcribed subtree); elsewhere "unverified".
 */
export function chartKeyVerdict(set: ChartKeySet, path: string): KeyVerdict {
    if (set.known.has(path)) return "present";
    const top = path.split(".")[0] ?? path;
    if (!set.topLevelKeys.has(top)) return "absent";
    if (set.completeSubtrees.has(top)) return "absent";
    // A top-level scalar/list/free-form map (known as a leaf): children of a scalar do not exist,
    // children of a free-form map cannot be judged from values.yaml.
    return "unverified";
}
