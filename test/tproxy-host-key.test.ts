import { strict as assert } from "node:assert";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import { nodeConnection } from "../components/commands/nodeConnection";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { renderNodeBundle } from "../components/tproxy/nodeBundle";
import { applyCommand } from "../components/tproxy/tproxyCommands";
import { TYPE } from "../components/resourceNames";
import { hostToolsMissing } from "../lab/hostTools";
import { runProgram } from "./support/program";
import { LAB_NODE_ADDRESS, SshLab, layoutUnder } from "../lab/sshLab";
import { PROJECT, rawStack, withValues } from "./support/stacks";

/*
 * The program's host-key pinning, tested through the program's own connection objects rather than
 * through an OpenSSH known_hosts the test writes itself: these tests fail if the program stops
 * setting connection.hostKey (pulumi-command then checks no host key at all).
 */

test("every remote command the program declares pins the configured host key of the node it connects to", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const validated = validateStackConfig(PROJECT, rawStack("prod"));
    assert.ok(validated.ok);
    const byAddress = new Map(validated.config.nodes.map((n) => [n.address, n]));
    const remote = resources.filter((r) => r.type === TYPE.remoteCommand || r.type === TYPE.copyToRemote);
    // Preflight, stale-rule cleanup and verify, tproxy apply and confirm, the node store's copy and check: seven per node.
    assert.equal(remote.length, 7 * validated.config.nodes.length, remote.map((r) => r.name).join(" "));
    for (const r of remote) {
        const connection = r.inputs.connection as { host?: unknown; hostKey?: unknown };
        const node = byAddress.get(String(connection.host));
        assert.ok(node, `${r.name}: connects to ${String(connection.host)}, which is no configured node`);
        assert.equal(connection.hostKey, node.hostKey, `${r.name}: pins ${node.name}'s configured host key`);
    }
});

/**
 * pulumi-command 1.2.1's host-key handling (design.md, "pulumi-command 1.2.1"), as OpenSSH options:
 * with connection.hostKey, ssh.ParseAuthorizedKey + ssh.FixedHostKey accept only a server key
 * byte-equal to that key (golang.org/x/crypto/ssh fixedHostKey.check: bytes.Equal of the marshalled
 * keys, else "ssh: host key mismatch"), and the client offers only that key's algorithm; OpenSSH's
 * known_hosts match is the same blob comparison. Without hostKey, ssh.InsecureIgnoreHostKey()
 * accepts any key.
 */
function pinLikePulumiCommand(connection: command.types.input.remote.ConnectionArgs, dir: string): string[] {
    const { hostKey, host } = connection;
    if (hostKey === undefined) return ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"];
    // Plain strings, known at preview time (the program builds them from the stack config).
    assert.ok(typeof hostKey === "string" && typeof host === "string", "host and hostKey are plain strings");
    const text = hostKey;
    const knownHosts = path.join(dir, "pinned_known_hosts");
    writeFileSync(knownHosts, `${host} ${text}\n`);
    return ["StrictHostKeyChecking=yes", `UserKnownHostsFile=${knownHosts}`, `HostKeyAlgorithms=${text.split(" ")[0]!}`];
}

describe("pinning end to end: a node presenting another host key is refused", { skip: hostToolsMissing(["sshd", "ssh", "ssh-keygen", "nft", "ip"]) }, () => {
    let lab: SshLab;
    let config: MigrationConfig;
    before(async () => {
        lab = new SshLab();
        await lab.start("host_key");
        const validated = validateStackConfig(
            PROJECT,
            withValues(rawStack("prod"), {
                "cluster.nodeCidrs": ["172.25.4.0/24", "192.0.2.0/24"],
                "nodes": [{ name: "lab-node", address: LAB_NODE_ADDRESS, hostKey: lab.publicKey.host_key }],
            }),
        );
        if (!validated.ok) throw new Error(JSON.stringify(validated.issues));
        config = validated.config;
    });
    after(() => lab?.dispose());

    test("the program's connection logs in to the node with its configured key, and refuses the same address presenting another key", async () => {
        const connection = nodeConnection(config.nodes[0]!, pulumi.output("unused: the lab logs in with its own client key"));
        const pinned = pinLikePulumiCommand(connection, lab.dir);
        const genuine = lab.ssh("echo reached", { options: pinned });
        assert.equal(genuine.status, 0, genuine.stderr);
        assert.equal(genuine.stdout.trim(), "reached");

        // The same address now answers with a different host key (a replaced or impersonated node).
        await lab.stop();
        await lab.start("other_host_key");
        const layout = layoutUnder(lab.root);
        const stateDir = layout.stateDir;
        const bundle = renderNodeBundle({
            tableName: "kpr_pin_test",
            ruleset: "table inet kpr_pin_test {}\ndelete table inet kpr_pin_test\ntable inet kpr_pin_test {\n}\n",
            routes: { mark: 0x1, table: 100, priority: 1000, families: ["ipv4"] },
            layout,
        });
        const refused = lab.ssh(applyCommand(bundle, { revertAfterSeconds: 60, systemd: "off" }), { options: pinned });
        assert.equal(refused.status, 255, `${refused.stdout}${refused.stderr}`);
        assert.match(refused.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
        assert.equal(lab.node.try(`test -e ${stateDir}`).status, 1, "nothing ran on the impostor");
        assert.equal(lab.node.try("nft list table inet kpr_pin_test").status, 1);

        // The check can tell: a connection that does not pin reaches the impostor.
        const unpinned = lab.ssh("echo reached", { options: pinLikePulumiCommand({ ...connection, hostKey: undefined }, lab.dir) });
        assert.equal(unpinned.status, 0, unpinned.stderr);
    });
});
