import { isChartUpgrade, type UpgradeSettings } from "../ciliumVersions/ciliumVersions";

/*
 * Which path a run takes with the Cilium release, decided from config alone (the program cannot
 * ask the cluster at preview time, least of all in a mock run):
 *
 * - `cilium.upgradeFrom` unset (or equal to chartVersion): "same-version". The release keeps its
 *   chart version; a values change may use Helm's reuse-values (cilium.reuseValues). The
 *   cilium-upgrade-preflight step checks, before the release changes, that the running release
 *   really runs chartVersion, and refuses otherwise: a run whose plan says "same version" never
 *   upgrades the chart with reuse-values.
 * - `cilium.upgradeFrom` = the version the release runs now, chartVersion = the target:
 *   "chart-upgrade". reuse-values is refused (Cilium's upgrade guide, "Upgrading Cilium": the
 *   `--reuse-values` flag "may only be safely used if the Cilium chart version remains unchanged";
 *   it "ignores any newly introduced values present in the new release"). The release gets
 *   exactly the program's values (the full values; chart defaults for the rest), after the
 *   preflight step has checked that every value the operator set on the running release is among
 *   them and has pre-pulled the new image on every node (the guide's cilium-pre-flight-check
 *   DaemonSet).
 *
 * The version rules of an upgrade (one minor at a time, no reuse-values across versions) are checked
 * with the config, in ../ciliumVersions/ciliumVersions.ts (upgradeConfigProblems).
 *
 * After an upgrade the operator removes cilium.upgradeFrom (or leaves it: a release that already
 * runs chartVersion passes the check and skips the pre-pull).
 */

export type UpgradePath =
    | { readonly kind: "same-version"; readonly chartVersion: string; readonly reuseValues: boolean }
    | { readonly kind: "chart-upgrade"; readonly from: string; readonly to: string; readonly reuseValues: false };

export function upgradePath(cilium: UpgradeSettings): UpgradePath {
    if (!isChartUpgrade(cilium)) return { kind: "same-version", chartVersion: cilium.chartVersion, reuseValues: cilium.reuseValues };
    return { kind: "chart-upgrade", from: cilium.upgradeFrom, to: cilium.chartVersion, reuseValues: false };
}
