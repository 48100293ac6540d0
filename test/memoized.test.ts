import { test } from "node:test";
import * as assert from "node:assert/strict";
import { memoized } from "../components/memoized";

test("memoized computes each key once, remembers undefined results too, and stops remembering new keys past its limit", () => {
    const calls: string[] = [];
    const length = memoized((key: string) => {
        calls.push(key);
        return key === "none" ? undefined : key.length;
    }, 3);
    assert.deepEqual(["ab", "ab", "none", "none", "abc", "ab"].map(length), [2, 2, undefined, undefined, 3, 2]);
    assert.deepEqual(calls, ["ab", "none", "abc"], "each of the first three keys computed once");
    assert.equal(length("abcd"), 4);
    assert.equal(length("abcd"), 4);
    assert.deepEqual(calls.slice(3), ["abcd", "abcd"], "past the limit a key is computed every time, never wrong");
});

test("a memoized function may call itself (a recursive walk computes each node once)", () => {
    const children: Record<string, string[]> = { a: ["b", "c"], b: ["c"], c: [] };
    let calls = 0;
    const below: (key: string) => readonly string[] = memoized((key: string) => {
        calls++;
        return [key, ...children[key]!.flatMap(below)];
    });
    assert.deepEqual(below("a"), ["a", "b", "c", "c"]);
    assert.equal(calls, 3);
});
