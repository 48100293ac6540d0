import type { NodeConfig } from "../config/schema";
import type { MigrationConfig } from "../config/validate";
import { markText, policyRouteSpec } from "../config/policyRouteSpec";
import type { StoreRef } from "../commands/nodeStore";
import { remoteCommand, stagedCommand } from "../commands/remoteCommand";
import { scriptFileName, scriptPath, scriptText } from "../commands/scripts";
import type { NodePreflightArgs, OperatorPreflightEnv } from "../commands/scriptParams";
import { clusterEnvironment } from "../commands/clusterCommand";
import { operatorPreflightVersionEnv, servesNodePortsOn } from "../ciliumVersions/ciliumVersions";

/*
 * Inputs of the two preflight scripts, as pure functions of the validated config.
 * node-preflight.sh takes positional arguments (sshd's AcceptEnv is not needed);
 * operator-preflight.sh runs locally and takes environment variables.
 */

export const NODE_PREFLIGHT_SCRIPT = scriptPath("preflight/node-preflight");
export const OPERATOR_PREFLIGHT_SCRIPT = scriptPath("preflight/operator-preflight");

export function nodePreflightArgs(config: MigrationConfig, node: NodeConfig): NodePreflightArgs {
    const { tproxy } = config;
    const families = policyRouteSpec(tproxy).families;
    return [
        node.name,
        tproxy.enabled ? "1" : "0",
        markText(tproxy.mark),
        String(tproxy.routeTable),
        String(tproxy.rulePriority),
        tproxy.enabled && families.length > 0 ? [...families].sort().join(",") : "none",
        config.cluster.kubeProxy.iptablesBackend,
    ];
}

/** The environment of operator-preflight.sh (only non-secret values; the kubeconfig is a path). */
export function operatorPreflightEnv(config: MigrationConfig): OperatorPreflightEnv {
    const { cluster, cilium, tproxy } = config;
    // The tproxy VIPs are the addresses keepalived holds, whether or not the proxy itself is on.
    const vips = [tproxy.vip4, tproxy.vip6].filter((v): v is string => v !== undefined);
    const env: OperatorPreflightEnv = {
        // The target version and what is known to break with it (cilium/cilium#44464).
        ...operatorPreflightVersionEnv(cilium.chartVersion),
        KUBE_PROXY_NAMESPACE: cluster.kubeProxy.namespace,
        KUBE_PROXY_DAEMONSET: cluster.kubeProxy.daemonSet,
        KUBE_PROXY_CONFIGMAP: cluster.kubeProxy.configMap,
        KEEPALIVED_VIPS: vips.join(","),
        // The VIPs cilium.nodePortAddresses makes Cilium serve NodePorts on (cilium/cilium#37691): not warned about.
        NODEPORT_VIPS_SERVED: vips.filter((v) => servesNodePortsOn(cilium.nodePortAddresses, v)).join(","),
        K8S_SERVICE_HOST: cilium.k8sServiceHost ?? "",
        NEEDS_HELM: "1",
    };
    return { ...env, ...clusterEnvironment(cluster) };
}

/** The text of node-preflight.sh as embedded (its shared prelude inlined). */
export function nodePreflightScript(): string {
    return scriptText("preflight/node-preflight");
}

/** The node preflight as a remote.Command `create` (reads only; changes nothing). */
export function nodePreflightCommand(config: MigrationConfig, node: NodeConfig, script?: string, store?: StoreRef): string {
    const title = `preflight for node ${node.name} (reads only; changes nothing)`;
    const args = nodePreflightArgs(config, node);
    // `script` replaces the file's text in tests only.
    if (script !== undefined) return stagedCommand(title, [{ name: scriptFileName("preflight/node-preflight"), content: script }], args);
    return remoteCommand({ title, script: "preflight/node-preflight", args, store });
}
