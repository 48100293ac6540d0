import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { validateStackConfig } from "./components/config/validate";
import { renderNftRuleset, nftRulesetInput } from "./components/tproxy/nftRuleset";
const doc = parse(readFileSync("./Pulumi.prod.yaml", "utf8")).config;
const r = validateStackConfig("cilium-kpr", { cluster: doc["cilium-kpr:cluster"], cilium: doc["cilium-kpr:cilium"], tproxy: doc["cilium-kpr:tproxy"], nodes: doc["cilium-kpr:nodes"], hasSshPrivateKey: true });
if (!r.ok) throw new Error(JSON.stringify(r.issues));
process.stdout.write(renderNftRuleset(nftRulesetInput(r.config)));
