/**
 * `reconcile validate -i INVENTORY [PLAYBOOK]`: load and check the inventory (and a playbook),
 * reporting every problem at once as file:line:column, value path, message and source line.
 * Exit 0 when valid (warnings printed on stderr), 1 with problems (InventoryError, via main.ts).
 *
 * Exports: HELP, run(argv: string[], io: CliIO): Promise<number>
 */
import { ansibleSettings, inventoryOf } from '../ansible-config.js';
import { parseCommandArgs } from '../args.js';
import type { CliIO } from '../io.js';
import { formatProblem, InventoryError, UsageError, type Problem } from '../../errors.js';
import { loadInventory, readInventoryFile } from '../../inventory/load.js';
import { loadInventoryValidator, validateInventory } from '../../inventory/validate.js';
import { selectHosts } from '../../inventory/patterns.js';
import { loadPlaybook } from '../../playbook/load.js';
import { shellMismatch } from '../../modules/reach.js';
import { MODULES } from '../../modules/registry.js';

export const HELP = `Usage: reconcile validate -i INVENTORY [PLAYBOOK]

Checks an Ansible YAML inventory (and a playbook, when given) without connecting to any host:
YAML syntax, the variables reconcile reads against schema/inventory.schema.json, and the rules
of each kind of thing reconciled (unique certificate names, certificate files that exist,
are public certificates and are valid today, Qubes policy names, ...). Every problem is
reported at once with its file:line:column and the path of the value.

  -i, --inventory PATH   inventory file, or folder of inventory files (group_vars/ and
                         host_vars/ beside it are read too)
  PLAYBOOK               playbook to check: plays of {name, hosts, reconcile: [...]}
  --strict               a variable that looks like one reconcile reads but is not (a typo such
                         as incus_trusted_client) is an error, not a warning
  -h, --help             this help

Exit codes: 0 valid (warnings may be printed), 1 problems found or bad usage.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  strict: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('validate', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  // -i, else ansible.cfg's inventory or ANSIBLE_INVENTORY, as Ansible finds them.
  values.inventory ??= inventoryOf(undefined, ansibleSettings(io), io, 'validate');
  if (positionals.length > 1) throw new UsageError(`validate: one PLAYBOOK at most, got ${positionals.length} (see 'reconcile validate --help')`);

  const inventory = await loadInventory(values.inventory);
  await loadInventoryValidator();
  const problems: Problem[] = validateInventory(inventory, new Date(), (path) => readInventoryFile(inventory, path), MODULES, {
    strict: values.strict ?? false,
  });
  let plays = 0;
  if (positionals[0] !== undefined) {
    const playbook = await loadPlaybook(positionals[0]);
    problems.push(...playbook.problems);
    plays = playbook.plays.length;
    if (!playbook.problems.some((p) => p.severity === 'error')) {
      for (const play of playbook.plays) {
        const selected = selectHosts(inventory, play.hosts);
        for (const warning of selected.warnings) {
          problems.push({ severity: 'warning', message: `play "${play.name}": ${warning}` });
        }
        for (const name of selected.hosts) {
          for (const m of play.reconcile) {
            const mismatch = MODULES[m] && shellMismatch(inventory.hosts.get(name)!, MODULES[m]);
            if (mismatch) problems.push({ severity: 'error', valuePath: name, message: `play "${play.name}": ${mismatch}` });
          }
        }
      }
    }
  }
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
  for (const p of problems) io.stderr(formatProblem(p) + '\n');
  const warnings = problems.length;
  const what = positionals[0] !== undefined ? `${values.inventory} and ${positionals[0]} (${plays} play${plays === 1 ? '' : 's'})` : values.inventory;
  io.stdout(
    `${what}: valid — ${inventory.hosts.size} host${inventory.hosts.size === 1 ? '' : 's'}, ${inventory.groups.size} groups` +
      (warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : '') +
      '\n',
  );
  return 0;
}
