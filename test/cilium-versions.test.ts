import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
    ipvsInitHangVerdict,
    KPR_STATUS_JQ,
    NODE_CONFIG_API_VERSION,
    NODE_CONFIG_CHECK_ENV,
    operatorPreflightVersionEnv,
} from "../components/ciliumVersions/ciliumVersions";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { hostToolsMissing } from "../lab/hostTools";

/*
 * The Cilium version module (components/ciliumVersions/ciliumVersions.ts): the parameters the scripts
 * receive instead of their own version regexes and JSON shapes.
 */

/** What operator-preflight.sh decided from CILIUM_VERSION before it took the verdict as IPVS_HANG. */
function scriptRuleBefore(version: string): "refuse" | "warn" | "none" {
    if (/^1\.19\.[0-9]+([-+].*)?$/.test(version)) return "refuse";
    const m = /^([0-9]+)\.([0-9]+)\./.exec(version);
    if (m && (Number(m[1]) > 1 || Number(m[2]) >= 20)) return "warn";
    return "none";
}

const chartVersion = fc
    .tuple(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 25 }),
        fc.integer({ min: 0, max: 12 }),
        fc.option(fc.constantFrom("-rc.1", "-pre.0", "-snapshot.2", "+build.7"), { nil: undefined }),
    )
    // Config validation refuses charts before MINIMUM_CHART_VERSION (1.14.0), so no 0.x or 1.13 reaches the preflight.
    .filter(([major, minor]) => major > 1 || minor >= 14)
    .map(([major, minor, patch, suffix]) => `${major}.${minor}.${patch}${suffix ?? ""}`);

test("cilium/cilium#44464's verdict is the rule the preflight script applied to the version itself", () => {
    fc.assert(fc.property(chartVersion, (v) => ipvsInitHangVerdict(v) === scriptRuleBefore(v)));
    assert.equal(ipvsInitHangVerdict("1.19.0"), "refuse");
    assert.equal(ipvsInitHangVerdict("1.19.7-rc.1"), "refuse");
    assert.equal(ipvsInitHangVerdict("1.18.9"), "none");
    assert.equal(ipvsInitHangVerdict("1.20.0-rc.1"), "warn");
    assert.equal(ipvsInitHangVerdict("2.0.0"), "warn");
    assert.deepEqual(operatorPreflightVersionEnv("1.19.2"), {
        CILIUM_VERSION: "1.19.2",
        IPVS_HANG: "refuse",
        IPVS_HANG_MINOR: "1.19",
        IPVS_SAFE_MINOR: "1.18",
    });
});

test("the CiliumNodeConfig check gets the version the pending object is written in", () => {
    assert.equal(`cilium.io/${NODE_CONFIG_CHECK_ENV.NODE_CONFIG_VERSION}`, NODE_CONFIG_API_VERSION);
});

test("the KPR status filter reads cilium-dbg's status JSON, absent booleans as false", { skip: hostToolsMissing(["jq"]) }, () => {
    const read = (status: unknown) => {
        const r = spawnSync("jq", ["-c", KPR_STATUS_JQ], { input: JSON.stringify(status), encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as unknown;
    };
    // As an agent with KPR prints it (false booleans omitted).
    const on = { "kube-proxy-replacement": { mode: "True", features: { socketLB: { enabled: true }, nodePort: { enabled: true } } } };
    assert.deepEqual(read(on), { mode: "True", socketLB: true, nodePort: true, active: true });
    assert.deepEqual(read({ "kube-proxy-replacement": { mode: "True", features: { socketLB: { enabled: true }, nodePort: {} } } }), {
        mode: "True",
        socketLB: true,
        nodePort: false,
        active: false,
    });
    assert.deepEqual(read({ "kube-proxy-replacement": { mode: "False" } }), { mode: "False", socketLB: false, nodePort: false, active: false });
    assert.deepEqual(read({}), { mode: null, socketLB: false, nodePort: false, active: false });
    assert.deepEqual(read([1]), { mode: null, socketLB: false, nodePort: false, active: false });
});

test("the cluster prelude reads agent status with exactly the version module's filter", () => {
    const prelude = readFileSync(path.join(__dirname, "..", "components", "kubeproxy", "scripts", "cluster-lib.sh"), "utf8");
    const definitions = [...prelude.matchAll(/^readonly KPR_STATUS_JQ='([^']*)'$/gm)].map((m) => m[1]);
    assert.deepEqual(definitions, [KPR_STATUS_JQ]);
});
