import { test } from "node:test";
import assert from "node:assert/strict";
import { nftRulesetInput, outputRules, preroutingRules, renderNftRuleset } from "../components/tproxy/nftRuleset";
import { chainRules, keepRules } from "../bench/rulesetVariant";
import { labConfig } from "../lab/tproxyLab";
import { hostToolsMissing } from "../lab/hostTools";
import { NetNs } from "../lab/netns";

const input = nftRulesetInput(labConfig({ bindMode: "vip" }));
const rendered = renderNftRuleset(input);

test("chainRules reads back exactly the rules the renderer put in each chain", () => {
    assert.deepEqual(chainRules(rendered, "prerouting"), preroutingRules(input));
    assert.deepEqual(chainRules(rendered, "output"), outputRules(input));
});

test("keepRules drops only the rules it is told to, in both chains, and keeps headers and sets", () => {
    const noFib = keepRules(rendered, (rule) => !rule.startsWith("fib "));
    assert.deepEqual(
        chainRules(noFib, "prerouting"),
        preroutingRules(input).filter((r) => !r.startsWith("fib ")),
    );
    assert.deepEqual(
        chainRules(noFib, "output"),
        outputRules(input).filter((r) => !r.startsWith("fib ")),
    );
    assert.equal(chainRules(noFib, "prerouting").length, preroutingRules(input).length - 1);

    const empty = keepRules(rendered, () => false);
    assert.deepEqual(chainRules(empty, "prerouting"), []);
    assert.match(empty, /\t\ttype filter hook prerouting priority mangle \+ 1; policy accept;/);
    assert.match(empty, /\t\ttype route hook output priority mangle \+ 1; policy accept;/);
    assert.match(empty, /set cluster_dst_v4 \{/);

    const firstTwo = keepRules(rendered, (_rule, index) => index < 2);
    assert.deepEqual(chainRules(firstTwo, "output"), outputRules(input).slice(0, 2));
});

test("every kind of variant the attribution bench builds loads in nft", { skip: hostToolsMissing(["nft", "ip"]) }, (t) => {
    const ns = new NetNs("bvar");
    t.after(() => ns.dispose());
    const variants = [
        keepRules(rendered, () => false),
        keepRules(rendered, (rule) => rule.startsWith("ct direction")),
        keepRules(rendered, (rule) => !rule.startsWith("fib ")),
        ...preroutingRules(input).map((_r, i) => keepRules(rendered, (_rule, index) => index <= i)),
    ];
    for (const text of variants) {
        const r = ns.try("nft -f -", text);
        assert.equal(r.status, 0, r.stderr);
        const listed = ns.sh(`nft list chain inet ${input.tableName} prerouting`);
        assert.equal(listed.split("\n").filter((line) => /return|accept$|counter/.test(line)).length, chainRules(text, "prerouting").length);
    }
});
