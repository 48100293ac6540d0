// Flat config: typescript-eslint's type-checked recommended rules plus the Pulumi plugin's rules.
// @pulumi/eslint-plugin 0.3 exports only `rules` (no ready-made config), so both of its rules are
// switched on here by hand as errors: an Output in a plain template literal renders as a warning
// string instead of its value, which would end up in a node script or a resource name.
import pulumi from "@pulumi/eslint-plugin";
import tseslint from "typescript-eslint";

export default tseslint.config(
    {
        ignores: ["node_modules/**", "policy/node_modules/**", "plan/**", "dist/**"],
    },
    {
        files: ["index.ts", "components/**/*.ts", "tools/**/*.ts", "test/**/*.ts", "bench/**/*.ts", "lab/**/*.ts", "policy/**/*.ts"],
        extends: [tseslint.configs.recommendedTypeChecked],
        languageOptions: {
            parserOptions: {
                projectService: true,
                tsconfigRootDir: import.meta.dirname,
            },
        },
        plugins: { "@pulumi": pulumi },
        rules: {
            "@pulumi/no-output-in-template-literal": "error",
            "@pulumi/no-output-instance-in-template-literal": "error",
            // Same convention as tsc's noUnusedParameters: a leading underscore marks a parameter kept
            // for a uniform signature (e.g. per-node builders that do not yet read the node).
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
            // node:test's test/describe/it return promises that the runner itself awaits and reports;
            // awaiting them at top level would change nothing, so they are declared safe by name.
            "@typescript-eslint/no-floating-promises": [
                "error",
                {
                    allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] }],
                },
            ],
        },
    },
);
