import * as semver from "semver";
import { MINIMUM_CHART_VERSION } from "../cilium/chartVersionRules";

/**
 * The newest Cilium chart minor whose values this program was checked against: the removed keys in
 * ../cilium/chartVersionRules.ts and the key set in ../cilium/chartKeys/values-1.19.0.json stop at 1.19.
 * A newer minor may drop or rename keys that Helm then ignores silently (the schema has no
 * additionalProperties), so it is refused unless cilium.allowUntestedChartVersion says otherwise.
 */
export const NEWEST_CHART_MINOR_WITH_RULES = "1.19";

/** Whether a valid chart version falls in a minor from MINIMUM_CHART_VERSION to NEWEST_CHART_MINOR_WITH_RULES (pre-releases included). */
export function chartMinorHasRules(version: string): boolean {
    const parsed = semver.parse(version);
    const [newestMajor, newestMinor] = NEWEST_CHART_MINOR_WITH_RULES.split(".").map(Number) as [number, number];
    const oldest = semver.parse(MINIMUM_CHART_VERSION)!;
    if (parsed === null) return false;
    const minorIndex = (major: number, minor: number) => major * 1000 + minor;
    const at = minorIndex(parsed.major, parsed.minor);
    return at >= minorIndex(oldest.major, oldest.minor) && at <= minorIndex(newestMajor, newestMinor);
}
