/**
 * `compute` that remembers its result for each key (the first `limit` keys): for pure work a stack
 * repeats with the same input for every node (hashing the same texts, naming the same components).
 */
export function memoized<K, V>(compute: (key: K) => V, limit: number = Number.POSITIVE_INFINITY): (key: K) => V {
    const known = new Map<K, V>();
    return (key) => {
        const hit = known.get(key);
        if (hit !== undefined || known.has(key)) return hit as V;
        const value = compute(key);
        if (known.size < limit) known.set(key, value);
        return value;
    };
}
