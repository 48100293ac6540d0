import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { scriptPath } from "../components/commands/scripts";

// chart-source.sh is what cilium-upgrade-preflight.sh and cilium-values-restore.sh hand to helm as the chart.
function chartSource(repository: string): string[] {
    const r = spawnSync(
        "bash",
        ["-c", 'set -euo pipefail; source "$1"; cilium_chart_source; printf "%s\\n" "$chart_ref" "${repo_args[@]}"', "_", scriptPath("cilium/chart-source")],
        {
            encoding: "utf8",
            env: { PATH: process.env.PATH, CILIUM_CHART: "cilium", CILIUM_REPOSITORY: repository },
        },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trimEnd().split("\n");
}

test("an https:// chart repository is passed as --repo with the chart's name", () => {
    assert.deepEqual(chartSource("https://helm.cilium.io/"), ["cilium", "--repo", "https://helm.cilium.io/"]);
});

test("an oci:// registry names the chart by its full reference and passes no --repo", () => {
    assert.deepEqual(chartSource("oci://quay.io/cilium/charts/"), ["oci://quay.io/cilium/charts/cilium"]);
    assert.deepEqual(chartSource("oci://quay.io/cilium/charts"), ["oci://quay.io/cilium/charts/cilium"]);
});
