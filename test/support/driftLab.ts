import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { LAB_NODE_ADDRESS, SshLab, layoutUnder } from "../../lab/sshLab";
import { ROOT } from "./stacks";
import type { MigrationConfig } from "../../components/config/validate";
import type { NodeConfig } from "../../components/config/schema";
import { nodeTproxyBundle, type NodeBundle } from "../../components/tproxy/nodeBundle";
import type { RemoteRun } from "../../components/drift/nodeFindings";

/*
 * A one-node stack for the drift check: the SshLab's sshd node (192.0.2.2 in its own network
 * namespace) under the name "node-a", with the lab's real host key pinned, and a stack directory
 * (Pulumi.yaml + Pulumi.<stack>.yaml) the check reads like a real one.
 */
export const DRIFT_STACK = "lab";
export const DRIFT_NODE = "node-a";
export const DRIFT_VIP4 = "192.0.2.10";
export const DRIFT_TABLE = "kpr_drift_tproxy";

export function publicKeyLine(file: string): string {
    return readFileSync(file, "utf8").trim().split(" ").slice(0, 2).join(" ");
}

export interface DriftStackOptions {
    /** The host key pinned for node-a (default: the lab's real one). */
    readonly hostKey?: string;
    readonly tproxyEnabled?: boolean;
    /** node-a's SSH address (default: the lab node's). */
    readonly address?: string;
}

/** Writes Pulumi.yaml and Pulumi.lab.yaml into a fresh directory and returns it. */
export function writeDriftStack(lab: SshLab, options: DriftStackOptions = {}): string {
    const dir = mkdtempSync(path.join(tmpdir(), "kpr-drift-stack-"));
    copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    const config = {
        "cilium-kpr:cluster": { podCidrs: ["203.0.113.128/25"], serviceCidrs: ["198.51.100.128/25"], nodeCidrs: ["192.0.2.0/24"] },
        "cilium-kpr:cilium": { namespace: "default", chartVersion: "1.19.0", k8sServiceHost: DRIFT_VIP4, k8sServicePort: 6443 },
        "cilium-kpr:tproxy": { enabled: options.tproxyEnabled ?? true, vip4: DRIFT_VIP4, bindMode: "vip", tableName: DRIFT_TABLE },
        "cilium-kpr:nodes": [
            {
                name: DRIFT_NODE,
                address: options.address ?? LAB_NODE_ADDRESS,
                hostKey: options.hostKey ?? publicKeyLine(path.join(lab.dir, "host_key.pub")),
            },
        ],
    };
    writeFileSync(path.join(dir, `Pulumi.${DRIFT_STACK}.yaml`), YAML.stringify({ config }));
    return dir;
}

/** The lab client's key: the operator's --ssh-key-file. */
export function labClientKey(lab: SshLab): string {
    return path.join(lab.dir, "client_key");
}

/** Runs ssh inside the lab's client namespace (the only place that reaches the node). */
export function sshInClient(lab: SshLab): (args: readonly string[]) => RemoteRun {
    return (args) => {
        const r = spawnSync("ip", ["netns", "exec", lab.client.name, "ssh", ...args], { encoding: "utf8", timeout: 120_000, input: "" });
        return { status: r.status ?? 255, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
    };
}

/**
 * The program's own bundle for the node (same renderers, same contents), installed under the lab's
 * scratch root instead of /etc, /usr and /var of the machine running the tests.
 */
export function relocatedBundle(root: string): (config: MigrationConfig, node: NodeConfig) => NodeBundle {
    return (config, node) => nodeTproxyBundle(config, node, layoutUnder(root));
}

export function removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
}
