import { parseArgs } from "node:util";
import { runDriftCheck, SSH_KEY_FILE_ENV } from "./driftCheck";
import { exitCode, formatReport } from "../components/drift/findings";
import { ConfigValidationError } from "../components/config/validate";

/**
 * The drift check: `npm run check -- --stack <name> [--ssh-key-file <file>]`. Read-only. Compares the
 * cluster and every migrated node with what the program would push now, and names for each drift
 * what to run. Exit 0: no drift; 1: drift; 2: usage or invalid config; 3: no drift found, but some
 * check could not run (unreachable node, kubectl error): not a clean bill.
 */
async function main(): Promise<number> {
    const { values } = parseArgs({ options: { "stack": { type: "string" }, "ssh-key-file": { type: "string" }, "stack-dir": { type: "string" } } });
    if (values.stack === undefined || !/^[A-Za-z0-9_.-]+$/.test(values.stack)) {
        process.stderr.write(
            `usage: npm run check -- --stack <name> [--ssh-key-file <file>] [--stack-dir <dir>]\n` +
                `  the SSH key: --ssh-key-file, else $${SSH_KEY_FILE_ENV}, else \`pulumi config get sshPrivateKey --stack <name>\`\n`,
        );
        return 2;
    }
    try {
        const result = await runDriftCheck({
            stack: values.stack,
            ...(values["stack-dir"] === undefined ? {} : { stackDir: values["stack-dir"] }),
            ...(values["ssh-key-file"] === undefined ? {} : { sshKeyFile: values["ssh-key-file"] }),
        });
        process.stdout.write(formatReport(values.stack, result.scopes, result.findings));
        return exitCode(result.findings);
    } catch (err) {
        if (err instanceof ConfigValidationError) {
            process.stderr.write(`${err.message}\n`);
            return 2;
        }
        throw err;
    }
}

main().then(
    (code) => {
        process.exitCode = code;
    },
    (err: unknown) => {
        process.stderr.write(`could not check: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 3;
    },
);
