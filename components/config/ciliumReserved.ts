/**
 * Marks, ip rule priorities and route tables that Cilium itself uses on every node.
 * Our tproxy settings must stay clear of all of them (see ../shared/design.md).
 */
export const CILIUM_MARK_MASK = 0x0f00;
export const CILIUM_RULE_PRIORITIES: readonly number[] = [9, 10, 20, 100, 110, 111, 112];
export const CILIUM_ROUTE_TABLES: readonly number[] = [200, 202, 2004, 2005];
/** Priorities and tables the kernel reserves. */
export const KERNEL_RULE_PRIORITIES: readonly number[] = [0, 32766, 32767];
export const KERNEL_ROUTE_TABLES: readonly number[] = [0, 253, 254, 255];
/** Maglev table sizes the Cilium agent accepts (all prime). */
export const MAGLEV_TABLE_SIZES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
