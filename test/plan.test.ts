import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { STEP, TYPE } from "../components/resourceNames";
import { readStackFile, StackFileError } from "../tools/stackFile";
import { stepFileText } from "../tools/planSteps";
import { hostKeyFingerprint, type PlanEntry } from "../tools/planModel";
import { ADOPTION_PARENT_NAME } from "../tools/adoption";
import { recordProgramOutcome, type RecordedResource } from "../tools/mockRuntime";
import { directoryMaker } from "../tools/plan";
import { ROOT } from "./support/stacks";

function tempDir(t: { after(fn: () => void): void }): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-test-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
}

function plan(args: readonly string[]) {
    return spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools", "plan.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
}

/** A stack directory holding Pulumi.yaml and Pulumi.<stack>.yaml with `edit` applied to prod's text. */
function stackDir(dir: string, stack: string, edit: (prod: string) => string = (s) => s): string {
    copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), edit(readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8")));
    return dir;
}

function planned(t: { after(fn: () => void): void }, edit?: (prod: string) => string): { out: string; entries: PlanEntry[]; stdout: string } {
    const dir = tempDir(t);
    const out = path.join(dir, "out");
    const run = plan(["--stack", "prod", "--stack-dir", stackDir(dir, "prod", edit), "--out", out]);
    assert.equal(run.status, 0, run.stderr);
    return { out, entries: JSON.parse(readFileSync(path.join(out, "resources.json"), "utf8")) as PlanEntry[], stdout: run.stdout };
}

const byName = (entries: readonly PlanEntry[], type: string, name: string) => entries.find((e) => e.type === type && e.name === name)!;

test("resources.json names every resource by URN, and every parent, provider and dependency it lists exists", (t) => {
    const { entries } = planned(t);
    const urns = new Set(entries.map((e) => e.urn));
    assert.equal(urns.size, entries.length, "URNs are unique");
    const component = byName(entries, TYPE.ciliumRelease, STEP.ciliumRelease);
    const release = byName(entries, TYPE.helmRelease, STEP.ciliumRelease);
    assert.notEqual(component.urn, release.urn, "the CiliumRelease component and the Release share a name, not an identity");
    assert.equal(release.parent, component.urn);
    for (const e of entries) {
        for (const ref of [e.parent, e.provider, ...e.dependsOn, ...e.waitsFor, ...Object.values(e.propertyDependencies).flat()]) {
            if (ref !== null) assert.ok(urns.has(ref), `${e.urn} refers to ${ref}, which is not in resources.json`);
        }
    }
});

test("the plan's order reflects the engine: providers, property dependencies, and steps that may run at the same time", (t) => {
    const { entries, stdout } = planned(t);
    const release = byName(entries, TYPE.helmRelease, STEP.ciliumRelease);
    const provider = byName(entries, "pulumi:providers:kubernetes", STEP.provider);
    assert.equal(release.provider, provider.urn, "the release runs with the cluster provider");
    assert.ok(release.waitsFor.includes(provider.urn));
    const commandProvider = entries.find((e) => e.type === "pulumi:providers:command")!;
    assert.equal(commandProvider.implicit, true);
    assert.equal(commandProvider.name, "default_1_2_1", "the engine's default provider for @pulumi/command 1.2.1");
    const gate = byName(entries, TYPE.localCommand, STEP.kprGate);
    assert.equal(gate.provider, commandProvider.urn);
    for (const node of ["m600", "m601", "storage"]) {
        const confirm = byName(entries, TYPE.remoteCommand, STEP.tproxyConfirm(node));
        const apply = byName(entries, TYPE.remoteCommand, STEP.tproxyApply(node));
        assert.deepEqual(confirm.propertyDependencies.triggers, [apply.urn], "the confirm's triggers are the apply's outputs");
        assert.ok(confirm.wave! > apply.wave!);
    }
    const preflightWaves = new Set(["m600", "m601", "storage"].map((n) => byName(entries, TYPE.remoteCommand, STEP.nodePreflight(n)).wave));
    assert.equal(preflightWaves.size, 1, "the node preflights wait for nothing of each other: one wave");
    // The operator preflight is a cluster step: it needs the recorded cluster UID, a property dependency.
    const operatorPreflight = byName(entries, TYPE.localCommand, STEP.operatorPreflight);
    const identity = byName(entries, TYPE.localCommand, STEP.clusterIdentity);
    assert.deepEqual(operatorPreflight.propertyDependencies.environment, [identity.urn]);
    assert.equal(operatorPreflight.wave, identity.wave! + 1, "the operator preflight runs as soon as the cluster is identified");
    assert.ok(byName(entries, TYPE.remoteCommand, STEP.tproxyApply("m601")).wave! > byName(entries, TYPE.remoteCommand, STEP.tproxyConfirm("m600")).wave!);
    for (const e of entries.filter((x) => x.custom)) {
        for (const dep of e.waitsFor) assert.ok(entries.find((x) => x.urn === dep)!.wave! < e.wave!, `${e.name} comes after ${dep}`);
    }
    assert.match(stdout, /A step whose create fails is not recorded in state/);
    // Wave 2 the node's store copy, wave 3 its check, then the node preflight that fetches its script from the store.
    assert.match(stdout, /\[wave 4\] preflight-m601/);
});

test("adoption.sh names only URNs of the plan, with the right types, and an import that lands on the release's URN", (t) => {
    const { out, entries } = planned(t);
    const script = readFileSync(path.join(out, "adoption.sh"), "utf8");
    const release = byName(entries, TYPE.helmRelease, STEP.ciliumRelease);
    const typeOf = (urn: string) => entries.find((e) => e.urn === urn)?.type;

    const targets = [...script.matchAll(/--target '([^']+)'/g)].map((m) => m[1]!);
    assert.deepEqual(targets.map(typeOf).sort(), [TYPE.migration, TYPE.ciliumRelease, "pulumi:providers:kubernetes"].sort());
    // Step generator: a targeted create whose parent is created but not targeted fails ("untargeted create").
    for (const target of targets) {
        const parent = entries.find((e) => e.urn === target)!.parent;
        assert.ok(parent === null || targets.includes(parent), `${target}'s parent ${parent} is targeted too`);
    }

    const importLine = /pulumi import --stack prod (\S+) (\S+) (\S+)(.*)\n\s+--parent '([^=]+)=([^']+)' \\\n\s+--provider '([^=]+)=([^']+)'/.exec(script);
    assert.ok(importLine, script);
    const [, type, name, id, flags, parentName, parentUrn, providerName, providerUrn] = importLine as unknown as string[];
    assert.equal(type, TYPE.helmRelease);
    assert.equal(name, release.name);
    assert.equal(id, "default/cilium", "import ID <namespace>/<release>");
    assert.doesNotMatch(flags!, /--protect=false/, "protected until an up stores retainOnDelete");
    assert.equal(typeOf(parentUrn!), TYPE.ciliumRelease);
    assert.equal(typeOf(providerUrn!), "pulumi:providers:kubernetes");
    assert.equal(parentName, ADOPTION_PARENT_NAME);
    // import.go parseImportFile: a parent name equal to the imported name resolves to the resource itself.
    assert.notEqual(parentName, name);
    assert.notEqual(providerName, parentName, "import.go makeImportFile: provider and parent must have distinct names");
    // import.go: NewURN(stack, project, parent URN's qualified type, type, name).
    const qualifiedParentType = parentUrn!.split("::")[2]!;
    assert.equal(
        `urn:pulumi:prod::cilium-kpr::${qualifiedParentType}$${type}::${name}`,
        release.urn,
        "the import lands where the program declares the release",
    );
    assert.equal(providerUrn, release.provider);
});

test("steps/ shows where each step runs: a node's connection and host-key fingerprint, a cluster step's environment", (t) => {
    const { out } = planned(t, (s) => s.replace("  # cilium-kpr:migration:\n  #   canaryNodes: [m601]", "  cilium-kpr:migration:\n    canaryNodes: [m601]"));
    const steps = readdirSync(path.join(out, "steps"));
    assert.ok(steps.includes("kube-proxy-canary-exclusion.create.sh"), steps.join(" "));
    const exclusion = readFileSync(path.join(out, "steps", "kube-proxy-canary-exclusion.create.sh"), "utf8");
    assert.match(exclusion, /^# {3}CANARY_NODES="m601"$/m, "the canary step names the canary node");
    const prod = readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");
    const hostKey = /address: 172\.25\.4\.12[\s\S]*?hostKey: (.+)/
        .exec(prod)![1]!
        .trim()
        .replace(/^["']|["']$/g, "");
    const apply = readFileSync(path.join(out, "steps", "tproxy-apply-m601.create.sh"), "utf8");
    assert.match(apply, /^# over SSH: root@172\.25\.4\.12 port 22$/m);
    assert.ok(apply.includes(`host key pinned: ${hostKeyFingerprint(hostKey)}`), apply.slice(0, 600));
    assert.match(apply, /private key: \[secret\]/);
});

test("two nodes' tproxy steps are told apart by their connection", (t) => {
    const { out } = planned(t);
    const a = readFileSync(path.join(out, "steps", "tproxy-apply-m600.create.sh"), "utf8");
    const b = readFileSync(path.join(out, "steps", "tproxy-apply-m601.create.sh"), "utf8");
    assert.notEqual(a, b);
    assert.match(a, /root@172\.25\.4\.11 /);
    assert.match(b, /root@172\.25\.4\.12 /);
});

test("a step file never shows the SSH private key", () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
    const r = {
        type: TYPE.remoteCommand,
        name: "tproxy-apply-x",
        inputs: { create: "true", connection: { host: "192.0.2.1", port: 22, user: "root", privateKey: key } },
        secretInputs: [],
    } as unknown as RecordedResource;
    const entry = { urn: "urn:x", waitsFor: [], propertyDependencies: {}, ignoreChanges: [], deleteBeforeReplace: false } as unknown as PlanEntry;
    const text = stepFileText(entry, r, "create");
    assert.ok(!text.includes("PRIVATE KEY") && !text.includes("b3BlbnNzaC1rZXkt"), text);
    assert.match(text, /host key pinned: NONE \(unchecked\)/);
});

test("hostKeyFingerprint matches ssh-keygen -l", (t) => {
    const dir = tempDir(t);
    const gen = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "k")], { encoding: "utf8" });
    if (gen.status !== 0) {
        if (process.env.CI === "true") assert.fail(`ssh-keygen is needed: ${gen.stderr}`);
        t.skip("ssh-keygen not available");
        return;
    }
    const line = readFileSync(path.join(dir, "k.pub"), "utf8");
    const listed = spawnSync("ssh-keygen", ["-l", "-E", "sha256", "-f", path.join(dir, "k.pub")], { encoding: "utf8" }).stdout.split(" ")[1];
    assert.equal(hostKeyFingerprint(line), `ssh-ed25519 ${listed}`);
});

test("--out refuses a non-empty directory the plan did not write, and cleans only its own files in one it did", (t) => {
    const dir = tempDir(t);
    const checkout = path.join(dir, "checkout");
    mkdirSync(path.join(checkout, ".git"), { recursive: true });
    writeFileSync(path.join(checkout, "README.md"), "mine\n");
    const refused = plan(["--stack", "prod", "--out", checkout]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /^plan: --out .*checkout is not empty and holds no \.cilium-kpr-plan/);
    assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    assert.ok(existsSync(path.join(checkout, ".git")) && existsSync(path.join(checkout, "README.md")), "nothing was deleted");

    const out = path.join(dir, "plan");
    assert.equal(plan(["--stack", "prod", "--out", out]).status, 0);
    writeFileSync(path.join(out, "notes.txt"), "a reviewer's notes\n");
    writeFileSync(path.join(out, "steps", "stale-step.create.sh"), "from an older plan\n");
    const again = plan(["--stack", "prod", "--out", out]);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(existsSync(path.join(out, "notes.txt")), "a file the plan did not write survives");
    assert.ok(!existsSync(path.join(out, "steps", "stale-step.create.sh")), "the plan's own old output is replaced");
    assert.ok(existsSync(path.join(out, "resources.json")));
});

test("command-line and stack-file mistakes: one line naming the problem, no stack trace", (t) => {
    const dir = tempDir(t);
    const cases: [string[], RegExp][] = [
        [["prod"], /^plan: .*pass the plan's options after `--`/],
        [["--stack", "nosuch"], /^plan: Pulumi\.nosuch\.yaml: no such file$/],
        [
            ["--stack", "broken", "--stack-dir", stackDir(dir, "broken", (s) => `${s}\n  cilium-kpr:extra: [unclosed\n`)],
            /^plan: .*Pulumi\.broken\.yaml:\d+:\d+: YAML syntax error: /,
        ],
    ];
    for (const [args, expected] of cases) {
        const run = plan(args);
        assert.equal(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
        assert.match(run.stderr.trim(), expected);
        assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
        assert.doesNotMatch(run.stderr, /^\s+at /m);
    }
});

test("values Pulumi reads by YAML 1.1 rules (0100 is octal, yes a boolean) are refused, naming file, line and column", (t) => {
    const dir = tempDir(t);
    stackDir(dir, "octal", (s) => s.replace(/port: 7892/, "port: 07892").replace(/enabled: true\n/, "enabled: yes\n"));
    assert.throws(
        () => readStackFile(dir, "octal"),
        (err: Error) => {
            assert.ok(err instanceof StackFileError);
            const lines = err.message.split("\n");
            assert.equal(lines.length, 2, err.message);
            assert.match(
                lines.find((l) => l.includes("07892"))!,
                /Pulumi\.octal\.yaml:\d+:\d+: `07892` is ambiguous: a number with a leading zero is octal to Pulumi/,
            );
            assert.match(
                lines.find((l) => l.includes("`yes`"))!,
                /Pulumi\.octal\.yaml:\d+:\d+: `yes` is ambiguous: a boolean to Pulumi CLIs that read YAML 1\.1/,
            );
            return true;
        },
    );
    const run = plan(["--stack", "octal", "--stack-dir", dir, "--out", path.join(dir, "out")]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /07892/);
    assert.ok(!existsSync(path.join(dir, "out")), "nothing is written");

    // Quoted, the same texts mean one thing in every YAML version and pass.
    stackDir(dir, "quoted", (s) => s.replace(/port: 7892/, 'port: "7892"').replace(/daemonSet: kube-proxy/, 'daemonSet: "yes"'));
    const quoted = readStackFile(dir, "quoted");
    assert.equal((JSON.parse(quoted.config.cluster!) as { kubeProxy: { daemonSet: string } }).kubeProxy.daemonSet, "yes");
    for (const stack of ["prod", "ipv6-native"]) assert.doesNotThrow(() => readStackFile(ROOT, stack), `${stack} is unambiguous`);
});

test("the README's adoption commands are the ones the plan generates for prod", (t) => {
    const { out } = planned(t);
    const commands = (text: string) =>
        text
            .split("\n")
            .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#") && l !== "set -eu")
            .join("\n");
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Adopting a Cilium release"));
    const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
    assert.equal(commands(block), commands(readFileSync(path.join(out, "adoption.sh"), "utf8")));
});

test("directoryMaker makes each directory under the plan directory with one mkdir, parents first, and nothing outside it", (t) => {
    const root = tempDir(t);
    const mkdirs = t.mock.method(fs, "mkdirSync");
    const mkdir = directoryMaker(root);
    mkdir(path.join(root, "nodes", "node-0001", "etc", "nftables.d"));
    assert.ok(existsSync(path.join(root, "nodes", "node-0001", "etc", "nftables.d")));
    const made = () => mkdirs.mock.calls.map((c) => path.relative(root, String(c.arguments[0])));
    assert.deepEqual(made(), ["nodes", "nodes/node-0001", "nodes/node-0001/etc", "nodes/node-0001/etc/nftables.d"]);
    // Directories already made (or their parents) cost no further system call.
    mkdir(path.join(root, "nodes", "node-0001", "etc", "nftables.d"));
    mkdir(path.join(root, "nodes", "node-0001"));
    mkdir(path.join(root, "nodes", "node-0001", "etc", "systemd"));
    assert.deepEqual(made().slice(4), ["nodes/node-0001/etc/systemd"]);
    assert.throws(() => mkdir(path.join(root, "..", "elsewhere")), /outside the plan directory/);
    assert.throws(() => mkdir("/tmp"), /outside the plan directory/);
});

test("recording with errorStackFrames 0 formats no stacks and maps none while the program runs, and restores both after", async () => {
    const before = Error.stackTraceLimit;
    const sourceMapsBefore = process.sourceMapsEnabled;
    assert.equal(sourceMapsBefore, true, "tsx maps stack frames to the .ts sources");
    let inside: number | undefined;
    let sourceMapsInside: boolean | undefined;
    // V8's hook, read as the property it is (Node's typings declare it as a method).
    const errorHooks = Error as unknown as { prepareStackTrace?: unknown };
    const prepareBefore = errorHooks.prepareStackTrace;
    let stack: string | undefined;
    let unlimitedStack: string | undefined;
    let nodeErrorStack: string | undefined;
    const outcome = await recordProgramOutcome({ project: "p", stack: "s", config: {}, errorStackFrames: 0 }, () => {
        inside = Error.stackTraceLimit;
        sourceMapsInside = process.sourceMapsEnabled;
        stack = new Error("x").stack;
        // What Resource.callsites does for every resource (@pulumi/pulumi resource.js): raise the limit, read the stack.
        Error.stackTraceLimit = Number.POSITIVE_INFINITY;
        unlimitedStack = new Error("callsites").stack;
        try {
            fs.readFileSync(path.join(os.tmpdir(), "plan-test-no-such-file"));
        } catch (err) {
            nodeErrorStack = (err as Error).stack;
        }
        Error.stackTraceLimit = 0;
        throw new Error("the program's own message");
    });
    assert.equal(inside, 0);
    assert.equal(sourceMapsInside, false, "Resource.callsites' stacks are not source-mapped while the program runs");
    assert.equal(stack, "Error: x");
    assert.equal(unlimitedStack, "Error: callsites", "a raised limit formats no frames either: Resource.callsites gets none to parse");
    assert.match(nodeErrorStack ?? "", /^Error: ENOENT: no such file or directory, open '[^']+plan-test-no-such-file'$/);
    assert.equal(Error.stackTraceLimit, before);
    assert.equal(errorHooks.prepareStackTrace, prepareBefore);
    assert.equal(process.sourceMapsEnabled, sourceMapsBefore);
    assert.match(new Error("after").stack ?? "", /^Error: after\n +at /, "stacks have frames again after the recording");
    // The plan prints a failed program's message: it still arrives whole.
    assert.equal((outcome.error as Error).message, "the program's own message");

    // Unset leaves stacks alone (the tests' own recordings keep their stack traces).
    await recordProgramOutcome({ project: "p", stack: "s", config: {} }, () => {
        inside = Error.stackTraceLimit;
        sourceMapsInside = process.sourceMapsEnabled;
    });
    assert.equal(inside, before);
    assert.equal(sourceMapsInside, sourceMapsBefore);
});
