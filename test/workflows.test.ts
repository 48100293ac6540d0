import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { chmodSync, existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { hostToolsMissing } from "../lab/hostTools";
import { ROOT } from "./support/stacks";
import { runProgram } from "./support/program";
import { TYPE } from "../components/resourceNames";

/*
 * The GitHub workflows reference only inputs their actions really have (pulumi/actions' list is
 * extracted from its action.yml, with the commit, in .github/pulumi-actions-inputs.json), pin
 * existing major versions, keep secrets out of shell text, and gate `pulumi up` behind an environment.
 */

interface Step {
    readonly name?: string;
    readonly if?: string;
    readonly uses?: string;
    readonly run?: string;
    readonly with?: Record<string, unknown>;
    readonly env?: Record<string, unknown>;
}
interface Job {
    readonly "uses"?: string;
    readonly "runs-on"?: string | string[];
    readonly "permissions"?: Record<string, string>;
    readonly "steps"?: Step[];
    readonly "environment"?: unknown;
    readonly "needs"?: string | string[];
    readonly "strategy"?: { matrix?: { stack?: string[] } };
}
interface Workflow {
    readonly on: Record<string, unknown>;
    readonly jobs: Record<string, Job>;
}

const WORKFLOW_DIR = path.join(ROOT, ".github", "workflows");
const PULUMI_INPUTS = JSON.parse(readFileSync(path.join(ROOT, ".github", "pulumi-actions-inputs.json"), "utf8")) as { commit: string; inputs: string[] };

/** Inputs of the other actions used, from their action.yml (commit noted), for the keys these workflows use. */
const KNOWN_INPUTS: Readonly<Record<string, { readonly major: string; readonly inputs: readonly string[] }>> = {
    "pulumi/actions": { major: "v6", inputs: PULUMI_INPUTS.inputs },
    // actions/checkout action.yml @ f67ee5d6224ccd5af1909d53ea1faa5efb91db29
    "actions/checkout": {
        major: "v4",
        inputs: [
            "repository",
            "ref",
            "token",
            "ssh-key",
            "ssh-known-hosts",
            "ssh-strict",
            "persist-credentials",
            "path",
            "clean",
            "fetch-depth",
            "lfs",
            "submodules",
            "set-safe-directory",
        ],
    },
    // actions/setup-node action.yml @ 76a4cff9ae9abd877db3173c31637296d870a25b
    "actions/setup-node": {
        major: "v4",
        inputs: ["always-auth", "node-version", "architecture", "check-latest", "registry-url", "scope", "token", "cache", "cache-dependency-path"],
    },
    // actions/upload-artifact action.yml @ 2244c8200304ec9588bf9399eac622d9fadc28c4
    "actions/upload-artifact": { major: "v4", inputs: ["name", "path", "if-no-files-found", "retention-days"] },
};

function workflows(): Map<string, Workflow> {
    const files = readdirSync(WORKFLOW_DIR).filter((f) => f.endsWith(".yml"));
    return new Map(files.map((f) => [f, YAML.parse(readFileSync(path.join(WORKFLOW_DIR, f), "utf8")) as Workflow]));
}

function steps(wf: Workflow): { job: string; step: Step }[] {
    return Object.entries(wf.jobs).flatMap(([job, j]) => (j.steps ?? []).map((step) => ({ job, step })));
}

/** Every problem with the `uses:` references and `with:` keys of a workflow. */
function actionReferenceProblems(wf: Workflow): string[] {
    const problems: string[] = [];
    for (const [job, j] of Object.entries(wf.jobs)) {
        if (j.uses !== undefined && !existsSync(path.join(ROOT, j.uses))) problems.push(`${job}: calls ${j.uses}, which does not exist`);
    }
    for (const { job, step } of steps(wf)) {
        if (step.uses === undefined) continue;
        const [action, ref] = step.uses.split("@");
        const known = KNOWN_INPUTS[action!];
        if (!known) {
            problems.push(`${job}: ${step.uses} is not an action whose inputs were checked`);
            continue;
        }
        if (ref !== known.major) problems.push(`${job}: ${step.uses} should pin ${action}@${known.major}`);
        for (const key of Object.keys(step.with ?? {})) {
            if (!known.inputs.includes(key)) problems.push(`${job}: ${action} has no input "${key}"`);
        }
    }
    return problems;
}

test("the input list is what was extracted from pulumi/actions' action.yml", () => {
    assert.match(PULUMI_INPUTS.commit, /^[0-9a-f]{40}$/);
    for (const key of ["command", "stack-name", "cloud-url", "comment-on-pr", "policyPacks", "upsert", "diff"])
        assert.ok(PULUMI_INPUTS.inputs.includes(key), key);
    // The spelling the action really uses (camelCase policyPacks, kebab-case config-map).
    assert.ok(!PULUMI_INPUTS.inputs.includes("policy-packs"));
});

test("the checker catches an input an action does not have, a wrong pin and a missing called workflow", () => {
    const wf: Workflow = {
        on: {},
        jobs: {
            a: { steps: [{ uses: "pulumi/actions@v6", with: { command: "preview", stack: "prod" } }, { uses: "actions/checkout@v3" }] },
            b: { uses: "./.github/workflows/missing.yml" },
        },
    };
    assert.deepEqual(actionReferenceProblems(wf), [
        "b: calls ./.github/workflows/missing.yml, which does not exist",
        'a: pulumi/actions has no input "stack"',
        "a: actions/checkout@v3 should pin actions/checkout@v4",
    ]);
});

test("every workflow references only real inputs of pinned actions", () => {
    const all = workflows();
    assert.deepEqual([...all.keys()].sort(), ["checks.yml", "drift.yml", "preview.yml", "up.yml"]);
    for (const [file, wf] of all) assert.deepEqual(actionReferenceProblems(wf), [], file);
});

test("secrets reach shell steps only through env, never in the command text", () => {
    for (const [file, wf] of workflows()) {
        for (const { job, step } of steps(wf)) {
            assert.doesNotMatch(step.run ?? "", /\$\{\{\s*secrets\./, `${file} ${job}: a secret interpolated into run: text`);
            assert.doesNotMatch(step.run ?? "", /set -x|echo "\$(KUBECONFIG_CONTENT|SSH_PRIVATE_KEY)/, `${file} ${job}: echoes a credential`);
        }
    }
});

test("every pulumi command runs the policy pack on an existing stack, for each example stack", () => {
    const stacks = readdirSync(ROOT)
        .flatMap((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1] ?? [])
        .sort();
    assert.deepEqual(stacks, ["ipv6-native", "prod"]);
    let commands = 0;
    for (const [file, wf] of workflows()) {
        for (const [job, j] of Object.entries(wf.jobs)) {
            for (const step of j.steps ?? []) {
                if (!step.uses?.startsWith("pulumi/actions@") || step.with?.command === undefined) continue;
                commands++;
                assert.equal(step.with.policyPacks, "${{ github.workspace }}/policy", `${file} ${job}`);
                assert.equal(step.with.upsert ?? false, false, `${file} ${job}: CI never creates a stack`);
                assert.equal(step.with["stack-name"], "${{ matrix.stack }}", `${file} ${job}`);
                assert.deepEqual([...(j.strategy?.matrix?.stack ?? [])].sort(), stacks, `${file} ${job}: one run per stack`);
            }
        }
    }
    assert.equal(commands, 3, "preview on pull requests; preview, then up, on main");
});

test("preview comments on the pull request; up waits for the stack's environment after the preview", () => {
    const all = workflows();
    const preview = all.get("preview.yml")!;
    assert.ok("pull_request" in preview.on);
    const prPreview = steps(preview).find(({ step }) => step.with?.command === "preview")!;
    assert.equal(prPreview.step.with!["comment-on-pr"], true);

    const up = all.get("up.yml")!;
    assert.deepEqual(up.on.push, { branches: ["main"] });
    const upJobs = Object.entries(up.jobs).filter(([, j]) => (j.steps ?? []).some((s) => s.with?.command === "up"));
    assert.equal(upJobs.length, 1);
    const [, upJob] = upJobs[0]!;
    assert.equal(upJob.environment, "${{ matrix.stack }}", "required reviewers are configured on the environment");
    const previewJob = Object.entries(up.jobs).find(([, j]) => (j.steps ?? []).some((s) => s.with?.command === "preview"))!;
    assert.deepEqual([upJob.needs].flat(), [previewJob[0]]);
});

test("the test job runs .ci/run as root with CI kept, and no workflow keeps its own Debian package list", () => {
    const all = workflows();
    const runs = (all.get("checks.yml")?.jobs["test"]?.steps ?? []).flatMap((s) => (s.run === undefined ? [] : [s.run]));
    assert.equal(runs.filter((r) => /sudo --preserve-env=CI\b.* \.ci\/run$/m.test(r)).length, 1, "one step runs .ci/run under sudo, keeping CI");
    for (const [file, wf] of all) {
        for (const { job, step } of steps(wf)) {
            assert.doesNotMatch(step.run ?? "", /apt-get install|\bapt install/, `${file} ${job}: installs packages itself; .ci/run owns the list`);
        }
    }
    // And .ci/run really is the one that installs them, lints, then tests.
    const ciRun = readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    assert.match(ciRun, /^debian_packages=\(.*\byamllint\b.*\)$/m);
    const order = ["npm ci", "npm run lint", "yamllint --strict", "npm test"].map((c) => ciRun.indexOf(`\n${c}`));
    assert.ok(
        order.every((i, n) => i > 0 && (n === 0 || i > order[n - 1]!)),
        `.ci/run order: ${order.join(" ")}`,
    );
});

test("yamllint --strict passes on the workflows, their lint config and the policy pack's YAML", { skip: hostToolsMissing(["yamllint"]) }, () => {
    execFileSync("yamllint", ["--strict", ".github", ".yamllint.yaml", "policy/PulumiPolicy.yaml"], { cwd: ROOT, stdio: "pipe" });
    // The config is really applied: a too-long line fails.
    const bad = `name: x\non:\n  push:\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${"x".repeat(150)}\n`;
    assert.throws(() => execFileSync("yamllint", ["--strict", "-c", ".yamllint.yaml", "-"], { cwd: ROOT, input: bad, stdio: "pipe" }));
});

// ---- issue 12 point 16: pull-request previews with least privilege ----

/** Credentials that change the cluster, the nodes or the state. */
const WRITE_SECRETS = ["SSH_PRIVATE_KEY", "KUBECONFIG", "PULUMI_CONFIG_PASSPHRASE"];
const PREVIEW_RUNNER = ["self-hosted", "linux", "cilium-kpr-preview"];
const UP_RUNNER = ["self-hosted", "linux", "cilium-kpr"];

/** Every `secrets.NAME` and `vars.NAME` a job references anywhere (env, with, run, if). */
function referenced(job: Job, kind: "secrets" | "vars"): string[] {
    return [...new Set([...JSON.stringify(job).matchAll(new RegExp(`\\b${kind}\\.([A-Za-z_][A-Za-z0-9_]*)`, "g"))].map((m) => m[1]!))].sort();
}

function pulumiStep(job: Job, command: string): Step | undefined {
    return (job.steps ?? []).find((s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command === command);
}

/** What makes a preview job least-privileged; returns every way it is not. */
function previewPrivilegeProblems(name: string, job: Job): string[] {
    const problems: string[] = [];
    const secrets = referenced(job, "secrets").filter((s) => s !== "GITHUB_TOKEN");
    if (JSON.stringify(secrets) !== JSON.stringify(["PREVIEW_KUBECONFIG"])) problems.push(`${name}: secrets ${secrets.join(", ")} (only PREVIEW_KUBECONFIG)`);
    if (referenced(job, "vars").includes("PULUMI_BACKEND_URL")) problems.push(`${name}: reaches the real state backend (vars.PULUMI_BACKEND_URL)`);
    if (job.environment !== "preview") problems.push(`${name}: environment ${JSON.stringify(job.environment)}, not preview`);
    if (JSON.stringify(job["runs-on"]) !== JSON.stringify(PREVIEW_RUNNER)) problems.push(`${name}: runs on ${JSON.stringify(job["runs-on"])}`);
    const preview = pulumiStep(job, "preview");
    if (preview === undefined) return [...problems, `${name}: no pulumi preview`];
    if (!String(preview.with?.["cloud-url"]).startsWith("file://${{ runner.temp }}/"))
        problems.push(`${name}: preview backend ${String(preview.with?.["cloud-url"])}`);
    if (preview.with?.refresh !== false) problems.push(`${name}: refresh must be false (a refresh reads the release's Secrets)`);
    const runs = (job.steps ?? []).map((s) => s.run ?? "").join("\n");
    for (const script of ["preview-state-fetch.sh", "preview-state-import.sh"]) {
        if (!runs.includes(`.github/scripts/${script} "$STACK"`)) problems.push(`${name}: does not run ${script}`);
    }
    if (/config set --secret[^\n]*sshPrivateKey\s*</.test(runs)) problems.push(`${name}: sets an SSH key from a file`);
    for (const command of ["up", "destroy", "refresh"]) if (pulumiStep(job, command)) problems.push(`${name}: runs pulumi ${command}`);
    return problems;
}

test("the checker of least privilege catches a preview job given the SSH key, the real backend, or another runner", () => {
    const good = workflows().get("preview.yml")!.jobs["preview"]!;
    assert.deepEqual(previewPrivilegeProblems("good", good), []);
    const withKey: Job = { ...good, steps: [...good.steps!, { run: "x", env: { K: "${{ secrets.SSH_PRIVATE_KEY }}" } }] };
    assert.match(previewPrivilegeProblems("withKey", withKey).join("\n"), /secrets PREVIEW_KUBECONFIG, SSH_PRIVATE_KEY/);
    const realBackend: Job = {
        ...good,
        steps: good.steps!.map((s) => (s.with?.command === "preview" ? { ...s, with: { ...s.with, "cloud-url": "${{ vars.PULUMI_BACKEND_URL }}" } } : s)),
    };
    assert.equal(previewPrivilegeProblems("realBackend", realBackend).length, 2);
    assert.match(previewPrivilegeProblems("runner", { ...good, "runs-on": UP_RUNNER }).join("\n"), /runs on/);
    assert.match(previewPrivilegeProblems("env", { ...good, environment: "${{ matrix.stack }}" }).join("\n"), /environment/);
});

test("previews, on pull requests and on main, get no SSH key, no write kubeconfig, no passphrase and no state backend", () => {
    const all = workflows();
    const previewJobs = [...all].flatMap(([file, wf]) =>
        Object.entries(wf.jobs)
            .filter(([, j]) => pulumiStep(j, "preview") !== undefined)
            .map(([name, j]) => [`${file} ${name}`, j] as const),
    );
    assert.deepEqual(
        previewJobs.map(([n]) => n),
        ["preview.yml preview", "up.yml preview"],
    );
    for (const [name, job] of previewJobs) assert.deepEqual(previewPrivilegeProblems(name, job), []);
    // A pull request never previews against an empty stack (everything new); only main may, before the first up.
    const fetchRun = (job: Job) => (job.steps ?? []).map((s) => s.run ?? "").find((r) => r.includes("preview-state-fetch.sh"))!;
    assert.doesNotMatch(fetchRun(all.get("preview.yml")!.jobs["preview"]!), /--missing-ok/);
    assert.match(fetchRun(all.get("up.yml")!.jobs["preview"]!), /--missing-ok$/);
    // pull_request_target would run with the base repository's secrets for any fork's pull request.
    for (const [file, wf] of all) assert.ok(!("pull_request_target" in wf.on), `${file} runs on pull_request_target`);
    // The pull request's workflow as a whole: no write credential anywhere in it, and read-only by default.
    const pr = all.get("preview.yml")!;
    for (const secret of WRITE_SECRETS) assert.ok(!JSON.stringify(pr).includes(`secrets.${secret}`), `preview.yml names secrets.${secret}`);
    assert.deepEqual((pr as unknown as { permissions: unknown }).permissions, { contents: "read" });
    assert.deepEqual(pr.jobs["preview"]!.permissions, { "contents": "read", "actions": "read", "pull-requests": "write" });
});

test("only the up job holds write credentials, behind its stack's environment, on the state runner; it publishes the redacted state", () => {
    for (const [file, wf] of workflows()) {
        for (const [name, job] of Object.entries(wf.jobs)) {
            const write = referenced(job, "secrets").filter((s) => WRITE_SECRETS.includes(s));
            if (write.length === 0) continue;
            assert.equal(`${file} ${name}`, "up.yml up", `${file} ${name} holds ${write.join(", ")}`);
            assert.deepEqual(write, [...WRITE_SECRETS].sort());
            assert.equal(job.environment, "${{ matrix.stack }}");
            assert.deepEqual(job["runs-on"], UP_RUNNER);
        }
    }
    const up = workflows().get("up.yml")!.jobs["up"]!;
    const steps = up.steps!;
    const upAt = steps.findIndex((s) => s.with?.command === "up");
    const publishAt = steps.findIndex((s) =>
        /pulumi stack export --stack "\$STACK" --show-secrets \| \.github\/scripts\/redact-state\.sh > /.test(s.run ?? ""),
    );
    const uploadAt = steps.findIndex((s) => s.uses === "actions/upload-artifact@v4");
    assert.ok(upAt >= 0 && publishAt > upAt && uploadAt > publishAt, `order: up ${upAt}, publish ${publishAt}, upload ${uploadAt}`);
    assert.equal(steps[publishAt]!.if, "always()", "a failed up may have changed state too");
    assert.equal(steps[uploadAt]!.if, "always()");
    assert.equal(steps[uploadAt]!.with!.name, "preview-state-${{ matrix.stack }}");
    // The file name inside the artifact is the one preview-state-fetch.sh unzips.
    assert.match(String(steps[uploadAt]!.with!.path), /\/preview-state-\$\{\{ matrix\.stack \}\}\.json$/);
    const fetch = readFileSync(path.join(ROOT, ".github/scripts/preview-state-fetch.sh"), "utf8");
    assert.ok(fetch.includes("name=preview-state-$STACK&") && fetch.includes('"preview-state-$STACK.json"'));
});

const SCRIPTS = path.join(ROOT, ".github", "scripts");
const placeholderOf = (script: string) => /^readonly PREVIEW_SSH_KEY_PLACEHOLDER="([^"]+)"$/m.exec(readFileSync(path.join(SCRIPTS, script), "utf8"))?.[1];

test("the placeholder the state carries is the placeholder the preview gives the program", () => {
    const placeholder = placeholderOf("redact-state.sh");
    assert.ok(placeholder);
    assert.equal(placeholderOf("preview-state-import.sh"), placeholder);
    assert.ok(readFileSync(path.join(ROOT, "README.md"), "utf8").includes(`\`${placeholder}\``));
});

test("the README's RBAC for previews grants discovery and OpenAPI reads only, to the preview ServiceAccount", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = /```yaml\n# cilium-kpr-preview-rbac\.yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, "README has the RBAC manifest");
    const docs = YAML.parseAllDocuments(block).map(
        (d) => d.toJS() as { kind: string; metadata: { name: string }; rules?: Record<string, unknown>[]; subjects?: unknown[]; roleRef?: unknown },
    );
    assert.deepEqual(
        docs.map((d) => d.kind),
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"],
    );
    const role = docs[1]!;
    assert.ok(role.rules!.length > 0);
    for (const rule of role.rules!) {
        assert.deepEqual(Object.keys(rule).sort(), ["nonResourceURLs", "verbs"], "no resources, no apiGroups");
        assert.deepEqual(rule.verbs, ["get"]);
        for (const url of rule.nonResourceURLs as string[]) assert.match(url, /^\/(version\/?|api(\/\*)?|apis(\/\*)?|openapi\/v2|openapi\/v3(\/\*)?)$/);
    }
    // What the Kubernetes provider reads when it configures (GET /version, discovery, /openapi/v2) is granted.
    const granted = (role.rules! as { nonResourceURLs: string[] }[]).flatMap((r) => r.nonResourceURLs);
    for (const needed of ["/version", "/api", "/apis", "/apis/*", "/openapi/v2"]) assert.ok(granted.includes(needed), needed);
    assert.deepEqual(docs[2]!.subjects, [{ kind: "ServiceAccount", name: "cilium-kpr-preview", namespace: "kube-system" }]);
    assert.deepEqual(docs[2]!.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cilium-kpr-preview" });
    assert.ok(readme.includes("PREVIEW_KUBECONFIG"));
});

// ---- the scripts behind it, run for real ----

const SIG = "4dabf18193072939515e22adb298388d";
const SECRET = "1b47061264138c4ac30d75fd1eb44270";
const secret = (value: unknown) => ({ [SIG]: SECRET, plaintext: JSON.stringify(value) });
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";

/** An export as `pulumi stack export --show-secrets` writes it, of the real program's prod resources. */
async function exportOfProd(): Promise<{
    deployment: { resources: { urn: string; type: string; inputs: Record<string, unknown>; outputs: Record<string, unknown> }[] };
}> {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const withKey = (inputs: Record<string, unknown>): Record<string, unknown> => {
        const connection = inputs.connection as Record<string, unknown> | undefined;
        return connection === undefined ? inputs : { ...inputs, connection: { ...connection, privateKey: secret(PRIVATE_KEY) } };
    };
    return {
        deployment: {
            resources: resources
                .filter((r) => r.custom)
                .map((r) => {
                    const inputs = withKey(r.inputs);
                    const outputs = r.type === "random:index/randomBytes:RandomBytes" ? { ...inputs, base64: secret("c2VlZC1zZWVkLXNl") } : inputs;
                    return { urn: `urn:pulumi:prod::cilium-kpr::${r.type}::${r.name}`, type: r.type, inputs, outputs };
                }),
            secrets_providers: { type: "passphrase", state: { salt: "v1:real-salt" } },
        } as never,
    };
}

function redact(input: unknown): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(path.join(SCRIPTS, "redact-state.sh"), { input: JSON.stringify(input), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test(
    "redact-state.sh: the real program's state keeps everything but the SSH key, which becomes the placeholder",
    { skip: hostToolsMissing(["jq"]) },
    async () => {
        const exported = await exportOfProd();
        const remote = exported.deployment.resources.filter((r) => r.type === TYPE.remoteCommand);
        assert.ok(remote.length > 0);
        const result = redact(exported);
        assert.equal(result.status, 0, result.stderr);
        assert.ok(!result.stdout.includes("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"), "no key material left");
        assert.ok(!result.stdout.includes("PRIVATE KEY"));
        const redacted = JSON.parse(result.stdout) as typeof exported;
        assert.equal((redacted.deployment as unknown as Record<string, unknown>).secrets_providers, undefined);
        const placeholder = placeholderOf("redact-state.sh")!;
        redacted.deployment.resources.forEach((r, i) => {
            const before = exported.deployment.resources[i]!;
            // Node steps and the node store's copies (CopyToRemote) connect with the key; nothing else holds it.
            if (before.type !== TYPE.remoteCommand && before.type !== TYPE.copyToRemote) {
                assert.deepEqual(r, before, `${r.urn} unchanged`);
                return;
            }
            const connection = r.inputs.connection as Record<string, unknown>;
            assert.deepEqual(connection.privateKey, secret(placeholder));
            assert.deepEqual(
                { ...r.inputs, connection: { ...connection, privateKey: null } },
                { ...before.inputs, connection: { ...(before.inputs.connection as object), privateKey: null } },
            );
        });
    },
);

test(
    "redact-state.sh: a credential inside a secret structure is replaced; an unknown secret stops the publish, naming the resource",
    { skip: hostToolsMissing(["jq"]) },
    () => {
        const urn = "urn:pulumi:prod::cilium-kpr::command:local:Command::kpr-gate";
        const nested = redact({
            deployment: { resources: [{ urn, type: TYPE.localCommand, outputs: { connection: secret({ host: "h", password: "pw" }) } }] },
        });
        assert.equal(nested.status, 0, nested.stderr);
        assert.ok(!nested.stdout.includes("pw\\"));
        const unknown = redact({ deployment: { resources: [{ urn, type: TYPE.localCommand, inputs: { environment: secret({ TOKEN: "abc" }) } }] } });
        assert.notEqual(unknown.status, 0);
        assert.match(unknown.stderr, new RegExp(`secrets other than credentials remain in: ${urn}`));
        assert.equal(unknown.stdout, "");
        const ciphertext = redact({ deployment: { resources: [{ urn, type: TYPE.localCommand, inputs: { x: { [SIG]: SECRET, ciphertext: "v1:abc" } } }] } });
        assert.notEqual(ciphertext.status, 0, "an export without --show-secrets is refused, not passed on");
    },
);

/** A stand-in for the GitHub REST API routes preview-state-fetch.sh calls (docs linked in the script). */
async function withFakeGitHub<T>(
    artifacts: { id: number; runId: number; expired?: boolean; zip?: Buffer }[],
    runs: Record<number, { event: string; head_branch: string; path: string }>,
    body: (apiUrl: string, requests: string[]) => Promise<T>,
): Promise<T> {
    const requests: string[] = [];
    const server = createServer((req, res) => {
        requests.push(req.url ?? "");
        if (req.headers.authorization !== "Bearer test-token") {
            res.writeHead(401).end(JSON.stringify({ message: "Bad credentials" }));
            return;
        }
        const url = new URL(req.url ?? "/", "http://x");
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        if (url.pathname === "/repos/o/r/actions/artifacts" && url.searchParams.get("name") !== null) {
            const list = artifacts.map((a) => ({
                id: a.id,
                name: url.searchParams.get("name"),
                expired: a.expired ?? false,
                archive_download_url: `${base}/repos/o/r/actions/artifacts/${a.id}/zip`,
                workflow_run: { id: a.runId, head_branch: runs[a.runId]?.head_branch },
            }));
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ total_count: list.length, artifacts: list }));
            return;
        }
        const run = /^\/repos\/o\/r\/actions\/runs\/(\d+)$/.exec(url.pathname);
        if (run && runs[Number(run[1])]) {
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: Number(run[1]), ...runs[Number(run[1])] }));
            return;
        }
        const zip = /^\/repos\/o\/r\/actions\/artifacts\/(\d+)\/zip$/.exec(url.pathname);
        const artifact = zip ? artifacts.find((a) => a.id === Number(zip[1])) : undefined;
        if (artifact?.zip) {
            res.writeHead(200, { "content-type": "application/zip" }).end(artifact.zip);
            return;
        }
        res.writeHead(404).end(JSON.stringify({ message: "Not Found" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
        return await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests);
    } finally {
        server.close();
    }
}

function zipOf(dir: string, name: string, content: string): Buffer {
    writeFileSync(path.join(dir, name), content);
    execFileSync("zip", ["-q", "-j", path.join(dir, `${name}.zip`), path.join(dir, name)]);
    return readFileSync(path.join(dir, `${name}.zip`));
}

function runScript(
    script: string,
    args: string[],
    env: Record<string, string>,
    cwd: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
    // Asynchronous: the fake API answers from this same process.
    return new Promise((resolve) => {
        const child = execFile(path.join(SCRIPTS, script), args, { cwd, env: { ...process.env, ...env }, encoding: "utf8" }, (err, stdout, stderr) =>
            resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end();
    });
}

test(
    "preview-state-fetch.sh takes the newest artifact of a push of up.yml on main and skips a pull request's look-alike",
    { skip: hostToolsMissing(["jq", "curl", "unzip", "zip"]) },
    async () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fetch-"));
        try {
            const good = JSON.stringify({ deployment: { resources: [{ urn: "good" }] } });
            const poisoned = JSON.stringify({ deployment: { resources: [{ urn: "poisoned" }] } });
            const artifacts = [
                { id: 3, runId: 30, zip: zipOf(dir, "preview-state-prod.json", poisoned) },
                { id: 2, runId: 20, zip: zipOf(dir, "preview-state-prod.json", good) },
                { id: 1, runId: 10, zip: zipOf(dir, "preview-state-prod.json", poisoned) },
            ];
            const runs = {
                30: { event: "pull_request", head_branch: "main", path: ".github/workflows/up.yml" },
                20: { event: "push", head_branch: "main", path: ".github/workflows/up.yml" },
                10: { event: "push", head_branch: "main", path: ".github/workflows/up.yml" },
            };
            const out = path.join(dir, "state.json");
            await withFakeGitHub(artifacts, runs, async (api, requests) => {
                const r = await runScript(
                    "preview-state-fetch.sh",
                    ["prod", out],
                    { GH_TOKEN: "test-token", GITHUB_API_URL: api, GITHUB_REPOSITORY: "o/r" },
                    dir,
                );
                assert.equal(r.status, 0, r.stderr);
                assert.equal(readFileSync(out, "utf8"), good);
                assert.match(r.stderr, /skipping the artifact of run 30/);
                assert.ok(!requests.some((u) => u.includes("/artifacts/1/")), "stops at the newest trusted one");
            });
            // Only untrusted or expired ones: a clear failure, nothing written.
            rmSync(out, { force: true });
            await withFakeGitHub(
                [
                    { id: 3, runId: 30, zip: artifacts[0]!.zip },
                    { id: 2, runId: 20, expired: true },
                ],
                runs,
                async (api) => {
                    const r = await runScript(
                        "preview-state-fetch.sh",
                        ["prod", out],
                        { GH_TOKEN: "test-token", GITHUB_API_URL: api, GITHUB_REPOSITORY: "o/r" },
                        dir,
                    );
                    assert.equal(r.status, 1);
                    assert.match(r.stderr, /no redacted state of prod published by up\.yml on main/);
                    assert.ok(!existsSync(out));
                    const env = { GH_TOKEN: "test-token", GITHUB_API_URL: api, GITHUB_REPOSITORY: "o/r" };
                    const bootstrap = await runScript("preview-state-fetch.sh", ["prod", out, "--missing-ok"], env, dir);
                    assert.equal(bootstrap.status, 0, bootstrap.stderr);
                    assert.match(bootstrap.stdout, /^::warning::no redacted state of prod published by up\.yml yet: this preview starts from an empty stack/m);
                    assert.ok(!existsSync(out));
                },
            );
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    },
);

/**
 * A stand-in for the pulumi CLI, for the four commands preview-state-import.sh runs; anything else
 * fails like the CLI does ("unknown flag", "unknown command"). Flags as documented in
 * https://www.pulumi.com/docs/iac/cli/commands/ (pulumi_login, pulumi_stack_init, pulumi_stack_import,
 * pulumi_config_set): `config set` without a value reads it from stdin; `stack init` with the passphrase
 * provider writes encryptionsalt into Pulumi.<stack>.yaml, and with a salt already there uses it, so
 * another passphrase fails "incorrect passphrase" (pulumi/pulumi pkg/secrets/passphrase/manager.go,
 * NewPromptingPassphraseSecretsManager).
 */
const FAKE_PULUMI = String.raw`#!/usr/bin/env bash
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_PULUMI_LOG"
fail() { echo "error: $*" >&2; exit 255; }
case "$1 $2" in
    "login file://"*) [ "$#" -eq 2 ] || fail "unknown flag: $3" ;;
    "stack init")
        [ "$#" -eq 5 ] && [ "$4" = --secrets-provider ] && [ "$5" = passphrase ] || fail "unknown flag: $4"
        [ -n "$PULUMI_CONFIG_PASSPHRASE" ] || fail "passphrase must be set"
        grep -q '^encryptionsalt:' "Pulumi.$3.yaml" && fail "incorrect passphrase"
        echo "encryptionsalt: v1:new-salt" >>"Pulumi.$3.yaml" ;;
    "stack import")
        [ "$#" -eq 6 ] && [ "$3" = --stack ] && [ "$5" = --file ] || fail "unknown flag"
        cp "$6" "$FAKE_PULUMI_IMPORTED" ;;
    "config set")
        [ "$#" -eq 6 ] && [ "$3" = --secret ] && [ "$4" = --stack ] || fail "unknown flag"
        cat >"$FAKE_PULUMI_CONFIG_VALUE" ;;
    *) fail "unknown command \"$1 $2\" for \"pulumi\"" ;;
esac
`;

test(
    "preview-state-import.sh builds a throwaway stack: new passphrase, no real salt or secure values, import under the new salt, placeholder key",
    { skip: hostToolsMissing(["jq", "openssl"]) },
    async () => {
        const dir = mkdtempSync(path.join(tmpdir(), "import-"));
        try {
            mkdirSync(path.join(dir, "bin"));
            writeFileSync(path.join(dir, "bin", "pulumi"), FAKE_PULUMI);
            chmodSync(path.join(dir, "bin", "pulumi"), 0o755);
            const stackFile = readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");
            writeFileSync(
                path.join(dir, "Pulumi.prod.yaml"),
                `encryptionsalt: v1:real-salt\n${stackFile.replace("config:\n", "config:\n  cilium-kpr:sshPrivateKey:\n    secure: v1:real-ciphertext\n")}`,
            );
            const exported = { deployment: { resources: [{ urn: "u" }] } };
            writeFileSync(path.join(dir, "state.json"), JSON.stringify(exported));
            const files = {
                log: path.join(dir, "log"),
                imported: path.join(dir, "imported.json"),
                value: path.join(dir, "value"),
                env: path.join(dir, "github_env"),
            };
            writeFileSync(files.env, "");
            const r = await runScript(
                "preview-state-import.sh",
                ["prod", path.join(dir, "state.json"), path.join(dir, "backend")],
                {
                    PATH: `${path.join(dir, "bin")}:${process.env.PATH ?? ""}`,
                    NODE_PATH: path.join(ROOT, "node_modules"),
                    FAKE_PULUMI_LOG: files.log,
                    FAKE_PULUMI_IMPORTED: files.imported,
                    FAKE_PULUMI_CONFIG_VALUE: files.value,
                    GITHUB_ENV: files.env,
                    PULUMI_CONFIG_PASSPHRASE: "the-real-passphrase-must-not-be-used",
                },
                dir,
            );
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(readFileSync(files.log, "utf8").trim().split("\n"), [
                `login file://${path.join(dir, "backend")}`,
                "stack init prod --secrets-provider passphrase",
                `stack import --stack prod --file ${path.join(dir, "backend", "import.json")}`,
                "config set --secret --stack prod sshPrivateKey",
            ]);
            const written = YAML.parse(readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8")) as { encryptionsalt: string; config: Record<string, unknown> };
            assert.equal(written.encryptionsalt, "v1:new-salt");
            assert.equal(written.config["cilium-kpr:sshPrivateKey"], undefined, "the real ciphertext is gone");
            assert.deepEqual(written.config["cilium-kpr:nodes"], (YAML.parse(stackFile) as { config: Record<string, unknown> }).config["cilium-kpr:nodes"]);
            assert.deepEqual(JSON.parse(readFileSync(files.imported, "utf8")), {
                deployment: { ...exported.deployment, secrets_providers: { type: "passphrase", state: { salt: "v1:new-salt" } } },
            });
            assert.equal(readFileSync(files.value, "utf8"), placeholderOf("preview-state-import.sh"));
            const env = readFileSync(files.env, "utf8");
            const passphrase = /^PULUMI_CONFIG_PASSPHRASE=([0-9a-f]{64})$/m.exec(env)?.[1];
            assert.ok(passphrase, env);
            assert.ok(r.stdout.includes(`::add-mask::${passphrase}`), "masked in the log");
            assert.ok(!existsSync(path.join(dir, "backend", "import.json")), "the plaintext copy is removed after the import");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    },
);

test(
    "preview-state-import.sh without a published export (main's bootstrap) starts from an empty stack: no import, still the placeholder key",
    { skip: hostToolsMissing(["jq", "openssl"]) },
    async () => {
        const dir = mkdtempSync(path.join(tmpdir(), "import-empty-"));
        try {
            mkdirSync(path.join(dir, "bin"));
            writeFileSync(path.join(dir, "bin", "pulumi"), FAKE_PULUMI);
            chmodSync(path.join(dir, "bin", "pulumi"), 0o755);
            writeFileSync(path.join(dir, "Pulumi.prod.yaml"), readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8"));
            const log = path.join(dir, "log");
            const value = path.join(dir, "value");
            const r = await runScript(
                "preview-state-import.sh",
                ["prod", path.join(dir, "missing.json"), path.join(dir, "backend")],
                {
                    PATH: `${path.join(dir, "bin")}:${process.env.PATH ?? ""}`,
                    NODE_PATH: path.join(ROOT, "node_modules"),
                    FAKE_PULUMI_LOG: log,
                    FAKE_PULUMI_IMPORTED: path.join(dir, "imported.json"),
                    FAKE_PULUMI_CONFIG_VALUE: value,
                    GITHUB_ENV: "",
                },
                dir,
            );
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stderr, /nothing published yet/);
            assert.deepEqual(readFileSync(log, "utf8").trim().split("\n"), [
                `login file://${path.join(dir, "backend")}`,
                "stack init prod --secrets-provider passphrase",
                "config set --secret --stack prod sshPrivateKey",
            ]);
            assert.equal(readFileSync(value, "utf8"), placeholderOf("preview-state-import.sh"));
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    },
);

test("drift.yml runs the read-only drift check per stack on a schedule and by hand, with its own read-only credentials", () => {
    const drift = workflows().get("drift.yml")!;
    assert.deepEqual(Object.keys(drift.on).sort(), ["schedule", "workflow_dispatch"]);
    const crons = (drift.on.schedule as { cron: string }[]).map((s) => s.cron);
    assert.equal(crons.length, 1);
    assert.match(crons[0]!, /^(\S+\s+){4}\S+$/, "five cron fields");
    const stacks = readdirSync(ROOT)
        .flatMap((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1] ?? [])
        .sort();
    const jobs = Object.values(drift.jobs) as (Job & { "runs-on"?: unknown })[];
    assert.equal(jobs.length, 1);
    const job = jobs[0]!;
    assert.deepEqual([...(job.strategy?.matrix?.stack ?? [])].sort(), stacks, "one check per stack");
    assert.deepEqual(job["runs-on"], ["self-hosted", "linux", "cilium-kpr"], "the runner inside the cluster's network");
    const runs = (job.steps ?? []).flatMap((s) => (s.run === undefined ? [] : [s.run]));
    assert.equal(runs.filter((r) => /npm run --silent check -- --stack "\$STACK"/.test(r)).length, 1);
    // The exit status of the check (1 drift, 3 could not check) is the job's, after the summary is written.
    assert.ok(runs.some((r) => /set \+e[\s\S]*status=\$\{PIPESTATUS\[0\]\}[\s\S]*GITHUB_STEP_SUMMARY[\s\S]*exit "\$status"/.test(r)));
    // Read-only: no Pulumi CLI, state, passphrase or deploy credentials; only its own secrets.
    const text = readFileSync(path.join(WORKFLOW_DIR, "drift.yml"), "utf8");
    assert.doesNotMatch(text, /pulumi\/actions|PULUMI_CONFIG_PASSPHRASE|PULUMI_BACKEND_URL|pulumi (up|preview|login)/);
    const secrets = [...text.matchAll(/secrets\.([A-Z_]+)/g)].map((m) => m[1]).sort();
    assert.deepEqual(secrets, ["DRIFT_KUBECONFIG", "DRIFT_SSH_PRIVATE_KEY"]);
    assert.ok(
        runs.some((r) => /CILIUM_KPR_SSH_KEY_FILE=/.test(r)),
        "the key reaches the check as a file it names",
    );
    assert.deepEqual(actionReferenceProblems(drift), []);
});
