import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { hostToolsMissing } from "./support/hostTools";
import { ROOT } from "./support/stacks";

/*
 * The GitHub workflows reference only inputs their actions really have (pulumi/actions' list is
 * extracted from its action.yml, with the commit, in .github/pulumi-actions-inputs.json), pin
 * existing major versions, keep secrets out of shell text, and gate `pulumi up` behind an environment.
 */

interface Step {
    readonly uses?: string;
    readonly run?: string;
    readonly with?: Record<string, unknown>;
    readonly env?: Record<string, unknown>;
}
interface Job {
    readonly uses?: string;
    readonly steps?: Step[];
    readonly environment?: unknown;
    readonly needs?: string | string[];
    readonly strategy?: { matrix?: { stack?: string[] } };
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
