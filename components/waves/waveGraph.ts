import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type * as command from "@pulumi/command";
import type { MigrationConfig } from "../config/validate";
import { clusterCommand } from "../commands/clusterCommand";
import { clusterScriptStore } from "../commands/clusterScriptStoreStep";
import { STEP, WAVE_STEP } from "../resourceNames";
import { staleRuleCleanup } from "../kubeproxy/staleRuleCleanup";
import { NodeTproxy } from "../tproxy/nodeTproxy";
import type { NodeStoreSteps } from "../commands/nodeStoreSteps";
import { declaredWaves, MIGRATED_LABEL, planWaves, type Wave } from "./wavePlan";
import { WAVE_SETTING_KEYS, waveStackSettings, waveStoreEntries } from "./waveStoreEntries";
import { PENDING_NODE_CONFIG_NAME, pendingNodeConfig } from "./pendingNodeConfig";
import { NODE_CONFIG_CHECK_ENV } from "../ciliumVersions/ciliumVersions";

/**
 * The node-by-node migration's resources (components/waves/waveSteps.ts lists them with what each
 * create and delete does; test/waves-serving.test.ts proves the order safe). Everything here is a
 * child of the migration component, and the per-node stale-rule cleanup and tproxy keep the
 * single-shot path's names, so their URNs do not change when a stack moves to waves.
 *
 * A replacement is create-before-delete unless `deleteBeforeReplace` is set (design.md, engine
 * facts); each step whose delete undoes its create (handover, drain, uncordon, affinity, the pending
 * CiliumNodeConfig) must delete first, or the old delete would undo the new create.
 */
const DELETE_FIRST = { deleteBeforeReplace: true } as const;

export interface WaveGraphArgs {
    readonly config: MigrationConfig;
    readonly provider: k8s.Provider;
    readonly sshPrivateKey: pulumi.Output<string>;
    readonly parent: pulumi.Resource;
    /** Each node's store (commands/nodeStoreSteps.ts), by node name. */
    readonly stores?: ReadonlyMap<string, NodeStoreSteps>;
}

export interface PreReleaseSteps {
    /** Preflight: the cluster serves CiliumNodeConfig v2. */
    readonly crdCheck: command.local.Command;
    /** Keeps unmigrated nodes at KPR "false"; exists before the release gets its final values. */
    readonly pendingNodeConfig: k8s.apiextensions.CustomResource;
}

/** The steps that must exist before the release is upgraded to its final (KPR) values. */
export function preReleaseSteps(args: WaveGraphArgs, checks: pulumi.Resource[]): PreReleaseSteps {
    const { config, provider, parent } = args;
    const crdCheck = clusterCommand(
        WAVE_STEP.nodeConfigCrdCheck,
        // Which CiliumNodeConfig version to require comes from the Cilium version module.
        { cluster: config.cluster, create: "waves/node-config-crd-check", environment: NODE_CONFIG_CHECK_ENV },
        { parent },
    );
    // A canary that already ran (migration.canaryNodes, now wave 1): its nodes get the label before the
    // pending object exists, or their agents would lose KPR at the release upgrade with kube-proxy off them.
    const canary = config.migration.canaryNodes;
    const adoption =
        canary.length > 0
            ? [
                  clusterCommand(
                      WAVE_STEP.canaryAdoption,
                      {
                          cluster: config.cluster,
                          create: "waves/canary-adopt",
                          environment: {
                              CANARY_NODES: canary.join(" "),
                              CILIUM_NAMESPACE: config.cilium.namespace,
                              KUBE_PROXY_NAMESPACE: config.cluster.kubeProxy.namespace,
                              MIGRATED_LABEL,
                          },
                      },
                      { parent, dependsOn: [...checks, crdCheck] },
                  ),
              ]
            : [];
    const cnc = pendingNodeConfig(config.cilium);
    const pending = new k8s.apiextensions.CustomResource(
        WAVE_STEP.pendingNodeConfig,
        { apiVersion: cnc.apiVersion, kind: cnc.kind, metadata: cnc.metadata, spec: cnc.spec },
        { parent, provider, dependsOn: [...checks, crdCheck, ...adoption], ...DELETE_FIRST },
    );
    return { crdCheck, pendingNodeConfig: pending };
}

export interface WaveNodeSteps {
    readonly drain?: command.local.Command;
    readonly handover: command.local.Command;
    readonly gate: command.local.Command;
    readonly cleanup: command.remote.Command;
    readonly tproxy?: NodeTproxy;
    readonly services: command.local.Command;
    readonly uncordon?: command.local.Command;
    /** The step after which this node's wave counts as passed for it. */
    readonly last: pulumi.Resource;
}

export interface WaveGraph {
    readonly waves: readonly Wave[];
    readonly affinity: command.local.Command;
    readonly pendingGate: command.local.Command;
    /** Holds the per-node steps' scripts (commands/clusterScriptStore.ts); every per-node cluster step depends on it. */
    readonly scriptStore: command.local.Command;
    readonly nodes: ReadonlyMap<string, WaveNodeSteps>;
    /** Every node's last step of the last declared wave: the final gate waits for these. */
    readonly lastWave: readonly pulumi.Resource[];
    /** True when every wave is declared (no `migration.stopAfterWave` short of the last): the final steps follow. */
    readonly complete: boolean;
}

/** kube-proxy's affinity, the pending gate and every wave, after the release. */
export function waveGraph(args: WaveGraphArgs, release: pulumi.Resource, pendingNodeConfigResource: pulumi.Resource): WaveGraph {
    const { config, sshPrivateKey, parent } = args;
    const { cluster } = config;
    // The settings every wave script reads: in the environment of the steps that carry their script, in
    // the stored copies (waveStoreEntries) for the per-node steps.
    const settings = waveStackSettings(config);
    const common = {
        CILIUM_NAMESPACE: settings.CILIUM_NAMESPACE,
        KUBE_PROXY_NAMESPACE: settings.KUBE_PROXY_NAMESPACE,
        KUBE_PROXY_DAEMONSET: settings.KUBE_PROXY_DAEMONSET,
        MIGRATED_LABEL: settings.MIGRATED_LABEL,
        WAIT_TIMEOUT: settings.WAIT_TIMEOUT,
    };

    const affinity = clusterCommand(
        WAVE_STEP.kubeProxyLabelAffinity,
        {
            cluster,
            create: "waves/kube-proxy-label-affinity",
            delete: "waves/kube-proxy-label-affinity-restore",
            environment: common,
        },
        { parent, dependsOn: [pendingNodeConfigResource], ...DELETE_FIRST },
    );
    const pendingGate = clusterCommand(
        WAVE_STEP.pendingGate,
        { cluster, create: "waves/pending-gate", environment: { ...common, PENDING_NODE_CONFIG: PENDING_NODE_CONFIG_NAME } },
        { parent, dependsOn: [release, affinity, pendingNodeConfigResource] },
    );

    // The per-node cluster steps carry a digest, not their script: the store holds each script once, with
    // the stack's settings baked in, so a step's environment holds only its node (and the cluster's identity).
    const scriptStore = clusterScriptStore(WAVE_STEP.clusterScriptStore, cluster, waveStoreEntries(config), WAVE_SETTING_KEYS, {
        parent,
        dependsOn: [pendingGate],
    });

    const waves = declaredWaves(config.migration, planWaves(config.migration, config.nodes));
    const byName = new Map(config.nodes.map((n) => [n.name, n]));
    const nodes = new Map<string, WaveNodeSteps>();
    let previous: pulumi.Resource[] = [pendingGate];
    for (const wave of waves) {
        const ends: pulumi.Resource[] = [];
        for (const name of wave.nodes) {
            const node = byName.get(name)!;
            const env = { NODE: name };
            const drain = config.migration.drain
                ? clusterCommand(
                      WAVE_STEP.drain(name),
                      {
                          cluster,
                          create: "waves/node-drain",
                          // Drained once, on its wave: an update (new script digest, new timeout) must
                          // not drain a migrated node again; pulumi-command would re-run the create.
                          update: "waves/node-step-kept",
                          delete: "waves/node-uncordon",
                          environment: env,
                          store: scriptStore,
                      },
                      { parent, dependsOn: previous, ...DELETE_FIRST },
                  )
                : undefined;
            const handover = clusterCommand(
                WAVE_STEP.handover(name),
                { cluster, create: "waves/node-handover", delete: "waves/node-handback", environment: env, store: scriptStore },
                { parent, dependsOn: drain ? [drain] : previous, ...DELETE_FIRST },
            );
            const gate = clusterCommand(
                WAVE_STEP.agentGate(name),
                {
                    cluster,
                    create: "waves/node-kpr-gate",
                    environment: env,
                    store: scriptStore,
                    // A new handover (a restarted agent) is checked again.
                    triggers: [handover.id],
                },
                { parent, dependsOn: [handover] },
            );
            const store = args.stores?.get(name);
            const cleanup = staleRuleCleanup(node, cluster, sshPrivateKey, { parent, dependsOn: [gate] }, store);
            const tproxy = config.tproxy.enabled
                ? new NodeTproxy(STEP.nodeTproxy(name), { config, node, privateKey: sshPrivateKey, store }, { parent, dependsOn: [cleanup] })
                : undefined;
            const services = clusterCommand(
                WAVE_STEP.nodeServices(name),
                { cluster, create: "waves/node-services", environment: env, triggers: [handover.id], store: scriptStore },
                { parent, dependsOn: [tproxy ? tproxy.confirm : cleanup] },
            );
            const uncordon = config.migration.drain
                ? clusterCommand(
                      WAVE_STEP.uncordon(name),
                      {
                          cluster,
                          create: "waves/node-uncordon",
                          // Uncordoned once, at its wave's end: an update must not uncordon a node
                          // an operator has cordoned since.
                          update: "waves/node-step-kept",
                          delete: "waves/node-drain",
                          environment: env,
                          store: scriptStore,
                      },
                      { parent, dependsOn: [services], ...DELETE_FIRST },
                  )
                : undefined;
            const last = uncordon ?? services;
            nodes.set(name, { drain, handover, gate, cleanup, tproxy, services, uncordon, last });
            ends.push(last);
        }
        // The next wave starts only when every node of this one passed.
        previous = ends;
    }
    const complete = waves.length === planWaves(config.migration, config.nodes).length;
    return { waves, affinity, pendingGate, scriptStore: scriptStore.step, nodes, lastWave: previous, complete };
}
