import * as path from "node:path";

/** Where each file of the node bundle is installed; one key per entry of NODE_FILES (nodeBundle.ts). */
export interface NodeFilePaths {
    readonly rulesetPath: string;
    readonly routesScriptPath: string;
    /** The oneshot boot unit; its file name is the unit name. */
    readonly unitPath: string;
    readonly networkdDropInPath: string;
    /**
     * keepalived's enable_script_security refuses a script unless it and every directory above it are
     * root-owned and not group/world-writable: /etc/keepalived (root:root 0755) qualifies.
     */
    readonly keepalivedNotifyPath: string;
}

/** Where the tproxy lives on a node. Tests move the state directory and every file under a scratch root. */
export interface NodeLayout extends NodeFilePaths {
    /** Root-only directory with the lock, the recorded previous state and the revert machinery. */
    readonly stateDir: string;
    /** Serialises keepalived notify calls; apply and the boot unit reload the table under it (through the notify script). */
    readonly notifyLockPath: string;
    readonly nftPath: string;
    /** The bash the boot unit runs its script with. */
    readonly bashPath: string;
}

export const DEFAULT_NODE_LAYOUT: NodeLayout = {
    stateDir: "/var/lib/cilium-kpr-tproxy",
    rulesetPath: "/etc/cilium-kpr-tproxy/tproxy.nft",
    routesScriptPath: "/usr/local/lib/cilium-kpr-tproxy/policy-routes.sh",
    unitPath: "/etc/systemd/system/cilium-kpr-tproxy.service",
    networkdDropInPath: "/etc/systemd/networkd.conf.d/50-cilium-kpr-tproxy.conf",
    keepalivedNotifyPath: "/etc/keepalived/cilium-kpr-tproxy-notify.sh",
    notifyLockPath: "/run/cilium-kpr-tproxy.lock",
    nftPath: "/usr/sbin/nft",
    bashPath: "/bin/bash",
};

export function unitNameOf(layout: NodeLayout): string {
    const name = path.posix.basename(layout.unitPath);
    if (!/^[A-Za-z0-9@_.-]+\.service$/.test(name)) throw new Error(`${layout.unitPath} does not name a .service unit`);
    return name;
}

/** tproxy-boot.sh, which tproxy-apply.sh installs into the state directory beside tproxy-lib.sh. */
export function bootScriptPath(layout: NodeLayout): string {
    return path.posix.join(layout.stateDir, "bin", "tproxy-boot.sh");
}

/** The manifest the last apply installed (tproxy-apply.sh: `$state/manifest`); the next apply and the drift check compare against it. */
export function manifestPathOf(layout: NodeLayout): string {
    return path.posix.join(layout.stateDir, "manifest");
}
