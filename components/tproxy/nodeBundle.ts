import { DEFAULT_NODE_LAYOUT, renderPolicyRoutes, type NodeLayout, type PolicyRouteSpec } from "./policyRoutes";

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

export interface NodeBundleArgs {
    /** The nft table the ruleset defines (tproxy.tableName). */
    readonly tableName: string;
    /** The ruleset text (`table inet X {}` + `delete table inet X` + definition). */
    readonly ruleset: string;
    readonly routes: PolicyRouteSpec;
    readonly layout?: NodeLayout;
    /** Further files, e.g. the keepalived notify script. */
    readonly extraFiles?: readonly BundleFile[];
}

const PATH = /^\/[A-Za-z0-9_./-]+$/;
const MODE = /^0[0-7]{3}$/;
const OWNER = /^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Throws unless a file can be carried safely: plain absolute path, octal mode, user:group, no NUL. */
export function checkBundleFile(file: BundleFile): void {
    if (!PATH.test(file.path) || file.path.split("/").some((part) => part === "." || part === "..") || file.path.endsWith("/")) {
        throw new Error(`bundle path "${file.path}" must be absolute and contain only letters, digits, '_', '.', '-', '/'`);
    }
    if (!MODE.test(file.mode)) throw new Error(`bundle file ${file.path}: mode "${file.mode}" must be octal like 0644`);
    if ((parseInt(file.mode, 8) & 0o022) !== 0) throw new Error(`bundle file ${file.path}: mode ${file.mode} is group/world-writable`);
    if (!OWNER.test(file.owner)) throw new Error(`bundle file ${file.path}: owner "${file.owner}" must be user:group`);
    if (file.content.includes("\0")) throw new Error(`bundle file ${file.path} contains a NUL byte`);
}

/**
 * The files for one node: the nft ruleset, policy-routes.sh, the oneshot unit that restores both
 * at boot, the networkd drop-in, and any extra files. Paths are unique; order is stable.
 */
export function renderNodeBundle(args: NodeBundleArgs): NodeBundle {
    const layout = args.layout ?? DEFAULT_NODE_LAYOUT;
    if (!TABLE.test(args.tableName)) throw new Error(`nft table name "${args.tableName}" must be an identifier`);
    const activation = (args.extraFiles ?? []).filter((f) => f.kind === "activation-script");
    if (activation.length > 1) throw new Error(`more than one activation script: ${activation.map((f) => f.path).join(", ")}`);
    const routes = renderPolicyRoutes(args.routes, layout, {
        tableName: args.tableName,
        ...(activation[0] === undefined ? {} : { activationScriptPath: activation[0].path }),
    });
    const files: BundleFile[] = [
        { path: layout.rulesetPath, mode: "0600", owner: "root:root", content: args.ruleset, kind: "nft-ruleset" },
        { path: layout.routesScriptPath, mode: "0755", owner: "root:root", content: routes.script, kind: "script" },
        { path: layout.unitPath, mode: "0644", owner: "root:root", content: routes.unit, kind: "systemd-unit" },
        { path: layout.networkdDropInPath, mode: "0644", owner: "root:root", content: routes.networkdDropIn, kind: "config" },
        ...(args.extraFiles ?? []),
    ];
    const seen = new Set<string>();
    for (const file of files) {
        checkBundleFile(file);
        if (seen.has(file.path)) throw new Error(`bundle path ${file.path} appears twice`);
        seen.add(file.path);
        if (file.kind === "nft-ruleset" && file !== files[0]) throw new Error(`extra file ${file.path} cannot be a second nft ruleset`);
    }
    // Delete ends with `rm -rf` of the state directory: it must be a dedicated one.
    if (!PATH.test(layout.stateDir) || !/tproxy[^/]*$/.test(layout.stateDir)) {
        throw new Error(`state directory "${layout.stateDir}" must be a plain absolute path whose last component names tproxy`);
    }
    return { files, tableName: args.tableName, routes: args.routes, layout };
}
