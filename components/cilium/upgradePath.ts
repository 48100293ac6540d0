import * as semver from "semver";

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
 * After an upgrade the operator removes cilium.upgradeFrom (or leaves it: a release that already
 * runs chartVersion passes the check and skips the pre-pull).
 */

export type UpgradePath =
    | { readonly kind: "same-version"; readonly chartVersion: string; readonly reuseValues: boolean }
    | { readonly kind: "chart-upgrade"; readonly from: string; readonly to: string; readonly reuseValues: false };

export interface UpgradeSettings {
    readonly chartVersion: string;
    readonly upgradeFrom?: string;
    readonly reuseValues: boolean;
}

export function upgradePath(cilium: UpgradeSettings): UpgradePath {
    if (cilium.upgradeFrom === undefined || cilium.upgradeFrom === cilium.chartVersion) {
        return { kind: "same-version", chartVersion: cilium.chartVersion, reuseValues: cilium.reuseValues };
    }
    return { kind: "chart-upgrade", from: cilium.upgradeFrom, to: cilium.chartVersion, reuseValues: false };
}

export interface UpgradeConfigProblem {
    /** Key under cilium., e.g. "reuseValues". */
    readonly key: string;
    readonly message: string;
}

/**
 * Config problems of an upgrade: reuse-values asked for explicitly across chart versions, and a
 * jump of more than one minor release (the guide: "Always perform upgrades and rollbacks between
 * one minor release at a time").
 */
export function upgradeConfigProblems(cilium: UpgradeSettings, reuseValuesSetExplicitly: boolean): UpgradeConfigProblem[] {
    const path = upgradePath(cilium);
    if (path.kind !== "chart-upgrade" || semver.valid(path.from) === null || semver.valid(path.to) === null) return [];
    const problems: UpgradeConfigProblem[] = [];
    if (reuseValuesSetExplicitly && cilium.reuseValues) {
        problems.push({
            key: "reuseValues",
            message: `must not be true while upgrading the chart from ${path.from} to ${path.to}: Cilium's upgrade guide allows --reuse-values only with an unchanged chart version (remove the key; the release then gets the full values)`,
        });
    }
    const from = semver.parse(path.from)!;
    const to = semver.parse(path.to)!;
    if (from.major !== to.major || Math.abs(from.minor - to.minor) > 1) {
        problems.push({
            key: "upgradeFrom",
            message: `${path.from} -> ${path.to} skips a minor release; Cilium only tests upgrades and rollbacks between consecutive minor releases (upgrade to ${from.major}.${from.minor + (to.minor > from.minor ? 1 : -1)}.x first)`,
        });
    }
    return problems;
}
