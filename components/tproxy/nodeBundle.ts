import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { renderBootUnit } from "./bootUnit";
import { KEEPALIVED_NOTIFY_MODE, KEEPALIVED_NOTIFY_OWNER, renderKeepalivedNotify } from "./keepalivedNotify";
import { nftRulesetInput, renderNftRuleset } from "./nftRuleset";
import { DEFAULT_NODE_LAYOUT, type NodeFilePaths, type NodeLayout } from "./nodeLayout";
import { scriptText } from "../commands/scripts";
import { policyRouteSpec, renderNetworkdDropIn, type PolicyRouteSpec } from "./policyRoutes";

/** How tproxy-apply.sh checks a file before installing it. */
export type BundleFileKind =
    | "nft-ruleset" // nft -c -f, must only touch our table; loaded with nft -f
    | "script" // bash -n
    | "activation-script" // bash -n; run with RECONCILE after the ruleset loads (keepalived notify)
    | "systemd-unit"
    | "config"
    | "file";

export interface BundleFile {
    readonly path: string;
    /** Octal, e.g. "0644". */
    readonly mode: string;
    /** "user:group". */
    readonly owner: string;
    readonly content: string;
    readonly kind: BundleFileKind;
}

/** Everything one node gets, and the parameters the remote scripts need to manage it. */
export interface NodeBundle {
    readonly files: readonly BundleFile[];
    readonly tableName: string;
    readonly routes: PolicyRouteSpec;
    readonly layout: NodeLayout;
}

/** The rendered texts and parameters the bundle's files are made of. */
export interface NodeBundleArgs {
    /** The nft table the ruleset defines (tproxy.tableName). */
    readonly tableName: string;
    /** The ruleset text (`table inet X {}` + `delete table inet X` + definition). */
    readonly ruleset: string;
    readonly routes: PolicyRouteSpec;
    /** The keepalived notify script; without it the bundle has no activation script and loads the table with plain `nft -f`. */
    readonly keepalivedNotify?: string;
    readonly layout?: NodeLayout;
}

/** What an entry of NODE_FILES renders its content from. */
export interface NodeFileContext extends NodeBundleArgs {
    readonly layout: NodeLayout;
}

/** One file the bundle installs on a node: where (its key in the layout), how, and what. */
export interface NodeFile {
    readonly path: keyof NodeFilePaths;
    readonly kind: BundleFileKind;
    readonly mode: string;
    readonly owner: string;
    /** The file's text; undefined: this bundle does not carry the file. */
    readonly content: (context: NodeFileContext) => string | undefined;
}

/**
 * Every file the node bundle pushes, in manifest order (the order is part of the apply text: keep
 * it). Adding a file is one entry here, plus its path in NodeLayout (nodeLayout.ts); content
 * rendered from config comes in through a NodeBundleArgs field that nodeTproxyBundle fills.
 * Staging, checksums, the apply's check per kind (tproxy-apply.sh), recording and restoring, the
 * drift check and the plan's node files all follow the manifest built from this list
 * (test/tproxy-node-files.test.ts walks every entry through them).
 */
export const NODE_FILES: readonly NodeFile[] = [
    { path: "rulesetPath", kind: "nft-ruleset", mode: "0600", owner: "root:root", content: (c) => c.ruleset },
    { path: "routesScriptPath", kind: "script", mode: "0755", owner: "root:root", content: () => scriptText("tproxy/policy-routes") },
    {
        path: "unitPath",
        kind: "systemd-unit",
        mode: "0644",
        owner: "root:root",
        content: (c) =>
            renderBootUnit(c.routes, c.layout, {
                tableName: c.tableName,
                ...(c.keepalivedNotify === undefined ? {} : { activationScriptPath: c.layout.keepalivedNotifyPath }),
            }),
    },
    { path: "networkdDropInPath", kind: "config", mode: "0644", owner: "root:root", content: (c) => renderNetworkdDropIn(c.routes) },
    {
        path: "keepalivedNotifyPath",
        kind: "activation-script",
        mode: `0${KEEPALIVED_NOTIFY_MODE.toString(8)}`,
        owner: KEEPALIVED_NOTIFY_OWNER,
        content: (c) => c.keepalivedNotify,
    },
];

const PATH = /^\/[A-Za-z0-9_./-]+$/;
const MODE = /^0[0-7]{3}$/;
const OWNER = /^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Throws unless a file can be carried safely: plain absolute path, octal mode, user:group, no NUL. */
function checkBundleFile(file: BundleFile): void {
    if (!PATH.test(file.path) || file.path.split("/").some((part) => part === "." || part === "..") || file.path.endsWith("/")) {
        throw new Error(`bundle path "${file.path}" must be absolute and contain only letters, digits, '_', '.', '-', '/'`);
    }
    if (!MODE.test(file.mode)) throw new Error(`bundle file ${file.path}: mode "${file.mode}" must be octal like 0644`);
    if ((parseInt(file.mode, 8) & 0o022) !== 0) throw new Error(`bundle file ${file.path}: mode ${file.mode} is group/world-writable`);
    if (!OWNER.test(file.owner)) throw new Error(`bundle file ${file.path}: owner "${file.owner}" must be user:group`);
    if (file.content.includes("\0")) throw new Error(`bundle file ${file.path} contains a NUL byte`);
}

/**
 * The files for one node, from `files` (NODE_FILES; tests add entries): every entry that has
 * content, at its layout path. Paths are unique, the ruleset comes first; order is stable.
 */
export function renderNodeBundle(args: NodeBundleArgs, entries: readonly NodeFile[] = NODE_FILES): NodeBundle {
    const layout = args.layout ?? DEFAULT_NODE_LAYOUT;
    if (!TABLE.test(args.tableName)) throw new Error(`nft table name "${args.tableName}" must be an identifier`);
    const context: NodeFileContext = { ...args, layout };
    const files: BundleFile[] = entries.flatMap((entry) => {
        const content = entry.content(context);
        return content === undefined ? [] : [{ path: layout[entry.path], mode: entry.mode, owner: entry.owner, content, kind: entry.kind }];
    });
    const activation = files.filter((f) => f.kind === "activation-script");
    if (activation.length > 1) throw new Error(`more than one activation script: ${activation.map((f) => f.path).join(", ")}`);
    const seen = new Set<string>();
    for (const file of files) {
        checkBundleFile(file);
        if (seen.has(file.path)) throw new Error(`bundle path ${file.path} appears twice`);
        seen.add(file.path);
        if (file.kind === "nft-ruleset" && file !== files[0]) throw new Error(`file ${file.path} cannot be a second nft ruleset`);
    }
    // Delete ends with `rm -rf` of the state directory: it must be a dedicated one.
    if (!PATH.test(layout.stateDir) || !/tproxy[^/]*$/.test(layout.stateDir)) {
        throw new Error(`state directory "${layout.stateDir}" must be a plain absolute path whose last component names tproxy`);
    }
    return { files, tableName: args.tableName, routes: args.routes, layout };
}

/**
 * Everything pushed to one node for the tproxy, as a pure function of validated config: the
 * nftables table, policy routes with their boot unit and networkd drop-in, and the keepalived
 * notify script. `layout` moves it (tests install under a scratch root).
 */
export function nodeTproxyBundle(config: MigrationConfig, _node: NodeConfig, layout: NodeLayout = DEFAULT_NODE_LAYOUT): NodeBundle {
    // The bundle depends on the config alone, and a stack asks for it three times per node (its tproxy
    // step, its node store, the offline plan's files): rendered once per config object and layout, it
    // is ~0.2 s less of a 200-node plan (bench/plan-scale.ts).
    const byLayout = renderedBundles.get(config) ?? new Map<NodeLayout, NodeBundle>();
    renderedBundles.set(config, byLayout);
    const rendered = byLayout.get(layout);
    if (rendered !== undefined) return rendered;
    const { tproxy } = config;
    const bundle = renderNodeBundle({
        tableName: tproxy.tableName,
        ruleset: renderNftRuleset(nftRulesetInput(config)),
        routes: policyRouteSpec(tproxy),
        keepalivedNotify: renderKeepalivedNotify(config, { lockPath: layout.notifyLockPath }),
        layout,
    });
    byLayout.set(layout, bundle);
    return bundle;
}

const renderedBundles = new WeakMap<MigrationConfig, Map<NodeLayout, NodeBundle>>();
