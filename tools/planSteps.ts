import type { RecordedResource } from "./mockRuntime";

/** One readable line per resource for the plan's step list. */
export function describeStep(r: RecordedResource): string {
    const after = r.dependsOn.length > 0 ? `  (after ${r.dependsOn.join(", ")})` : "";
    switch (r.type) {
        case "pulumi:providers:kubernetes":
            return `kubernetes provider "${r.name}": the cluster and context every cluster step uses`;
        case "random:index/randomBytes:RandomBytes":
            return `generate ${r.name}: kept in state so every agent gets the same value${after}`;
        case "kubernetes:helm.sh/v3:Release":
            return `Helm release ${String(r.inputs.namespace)}/${String(r.inputs.name)} chart ${String(r.inputs.chart)} ${String(r.inputs.version)} with KPR values (retained on destroy)${after}`;
        default:
            return `${r.name} [${r.type}]${after}`;
    }
}
