import { execFileSync } from "node:child_process";

/**
 * Tests that need root and real tools (nft, ip, keepalived, sshd, iptables) run for real in CI.
 * On a laptop without them they skip with the reason; under CI=true a missing prerequisite fails.
 * Use as `test("...", { skip: hostToolsMissing(["nft", "ip"]) }, async () => ...)`.
 */
export function hostToolsMissing(tools: readonly string[]): string | false {
    const problems: string[] = [];
    if (typeof process.getuid === "function" && process.getuid() !== 0) problems.push("not running as root");
    for (const tool of tools) {
        try {
            execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore", env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` } });
        } catch {
            problems.push(`${tool} not installed`);
        }
    }
    if (problems.length === 0) return false;
    const reason = `needs root and ${tools.join(", ")}: ${problems.join("; ")}`;
    if (process.env.CI === "true") {
        throw new Error(`CI=true but this test cannot run: ${reason} (.ci/run must install it)`);
    }
    return reason;
}
