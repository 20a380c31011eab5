/**
 * `reconcile inventory -i INVENTORY (--list | --host NAME | --graph [GROUP])`: the inventory as
 * reconcile understands it, in ansible-inventory's formats (JSON sorted, 4-space indent), so
 * the two can be compared. It loads but does not validate (see `reconcile validate`).
 *
 * Exports: HELP, run(argv: string[], io: CliIO): Promise<number>,
 *          inventoryList(inventory), hostVarsJson(inventory, name), inventoryGraph(inventory, group)
 */
import { ansibleSettings, inventoryOf } from '../ansible-config.js';
import { parseCommandArgs } from '../args.js';
import type { CliIO } from '../io.js';
import { formatProblem, UsageError } from '../../errors.js';
import { loadInventory } from '../../inventory/load.js';
import { plainVars, type Inventory } from '../../inventory/model.js';

export const HELP = `Usage: reconcile inventory -i INVENTORY (--list | --host NAME | --graph [GROUP])

Shows the inventory as reconcile understands it, in the formats of ansible-inventory:
  --list           every group with its hosts and children, and _meta.hostvars (JSON)
  --host NAME      the merged variables of one host, with Ansible's precedence (JSON)
  --graph [GROUP]  the group tree under GROUP (default all)
  -i, --inventory PATH   inventory file, or folder of inventory files
  -h, --help             this help

Values are shown as written: Jinja templates are not evaluated, vault values are shown as
{"__ansible_vault": ...}.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  list: { type: 'boolean' },
  host: { type: 'string' },
  graph: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('inventory', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const modes = [values.list, values.host !== undefined, values.graph].filter(Boolean).length;
  if (modes !== 1) throw new UsageError("inventory: give exactly one of --list, --host NAME, --graph (see 'reconcile inventory --help')");
  // -i, else ansible.cfg's inventory or ANSIBLE_INVENTORY, as Ansible finds them.
  values.inventory ??= inventoryOf(undefined, ansibleSettings(io), io, 'inventory');
  if (positionals.length > (values.graph ? 1 : 0)) throw new UsageError(`inventory: unexpected argument '${positionals[values.graph ? 1 : 0]}'`);
  const inventory = await loadInventory(values.inventory);
  // As ansible-inventory: warnings on stderr, so stdout stays the JSON or graph alone.
  for (const w of inventory.warnings ?? []) io.stderr(formatProblem(w) + '\n');
  if (values.list) io.stdout(toJson(inventoryList(inventory)) + '\n');
  else if (values.host !== undefined) io.stdout(toJson(hostVarsJson(inventory, values.host)) + '\n');
  else io.stdout(inventoryGraph(inventory, positionals[0] ?? 'all') + '\n');
  return 0;
}

/** As ansible-inventory --list: groups (empty ones dropped), then _meta.hostvars. */
export function inventoryList(inventory: Inventory): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  const visit = (name: string) => {
    const g = inventory.groups.get(name)!;
    const entry: Record<string, string[]> = {};
    if (name !== 'all' && g.hosts.length > 0) entry.hosts = [...g.hosts];
    if (g.children.length > 0) entry.children = [...g.children];
    if (Object.keys(entry).length > 0) out[name] = entry;
    for (const c of g.children) {
      if (seen.has(c)) continue;
      seen.add(c);
      visit(c);
    }
  };
  visit('all');
  const hostvars: Record<string, unknown> = {};
  for (const h of inventory.hosts.values()) {
    const vars = plainVars(h);
    if (Object.keys(vars).length > 0) hostvars[h.name] = vars;
  }
  out._meta = { hostvars };
  return out;
}

export function hostVarsJson(inventory: Inventory, name: string): Record<string, unknown> {
  const host = inventory.hosts.get(name);
  if (!host) throw new UsageError(`inventory: no host named "${name}" in ${inventory.source}`);
  return plainVars(host);
}

/** As ansible-inventory --graph (ansible-core 2.14): children and hosts in inventory order. */
export function inventoryGraph(inventory: Inventory, group: string): string {
  if (!inventory.groups.has(group)) throw new UsageError(`inventory: no group named "${group}" in ${inventory.source}`);
  const lines: string[] = [];
  const indent = (depth: number, text: string) => (depth ? '  |'.repeat(depth) + '--' + text : text);
  const walk = (name: string, depth: number) => {
    const g = inventory.groups.get(name)!;
    lines.push(indent(depth, `@${name}:`));
    for (const c of g.children) walk(c, depth + 1);
    if (name !== 'all') for (const h of g.hosts) lines.push(indent(depth + 1, h));
  };
  walk(group, 0);
  return lines.join('\n');
}

/** Python's json.dumps(sort_keys=True, indent=4), as ansible-inventory prints. */
function toJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sorted(value), null, 4);
}
