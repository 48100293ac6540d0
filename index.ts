import { loadStackConfig } from "./components/config/stackConfig";
import { CiliumKprMigration } from "./components/migration";

// Validation runs first and throws, listing every problem, before any resource is declared.
const stack = loadStackConfig();
const migration = new CiliumKprMigration("cilium-kpr", stack);

export const ciliumValues = migration.cilium.values;
