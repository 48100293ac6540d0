/**
 * Variants of the rendered tproxy ruleset for benchmarks: the same file the product loads,
 * with some chain rules left out, so a measurement stays tied to the real renderer's output.
 */

const CHAIN_OPEN = /^\tchain (\S+) \{$/;
const CHAIN_CLOSE = /^\t\}$/;
const CHAIN_HEADER = /^\t\ttype /;

/** The rule lines (without indentation) of chain `chain` in a rendered file, in order. */
export function chainRules(rendered: string, chain: string): string[] {
    const rules: string[] = [];
    let current: string | undefined;
    for (const line of rendered.split("\n")) {
        const open = CHAIN_OPEN.exec(line);
        if (open) {
            current = open[1];
            continue;
        }
        if (current !== undefined && CHAIN_CLOSE.test(line)) {
            current = undefined;
            continue;
        }
        if (current === chain && !CHAIN_HEADER.test(line)) rules.push(line.trim());
    }
    return rules;
}

/**
 * The rendered file with only the chain rules `keep` accepts. Chain headers (hook, priority,
 * policy), sets and the replace-the-table preamble stay, so every variant loads the same way.
 * `index` counts rules within their chain from 0.
 */
export function keepRules(rendered: string, keep: (rule: string, index: number, chain: string) => boolean): string {
    const out: string[] = [];
    let current: string | undefined;
    let index = 0;
    for (const line of rendered.split("\n")) {
        const open = CHAIN_OPEN.exec(line);
        if (open) {
            current = open[1];
            index = 0;
            out.push(line);
            continue;
        }
        if (current !== undefined && CHAIN_CLOSE.test(line)) {
            current = undefined;
            out.push(line);
            continue;
        }
        if (current === undefined || CHAIN_HEADER.test(line)) {
            out.push(line);
            continue;
        }
        if (keep(line.trim(), index, current)) out.push(line);
        index++;
    }
    return out.join("\n");
}
