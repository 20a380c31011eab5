/**
 * `reconcile audit -i INVENTORY [--limit PATTERN] [--json] [--warn-days N] [--forks N]`:
 * reads every selected host's trust store (one SSH connection per host) and marks each trusted
 * certificate managed / unmanaged / expired / expiring / unrestricted against the inventory.
 * Read-only. Exit 0 when every host was read, 1 when any could not be.
 */
import { ansibleSettings, inventoryOf } from '../ansible-config.js';
import { resolve } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { readTrustStores, type TrustStoreRead } from '../trust-stores.js';
import { formatProblem, InternalError, InventoryError, UsageError } from '../../errors.js';
import { loadInventory, readInventoryFile } from '../../inventory/load.js';
import { selectHosts } from '../../inventory/patterns.js';
import { loadInventoryValidator, validateInventory } from '../../inventory/validate.js';
import { MODULES } from '../../modules/registry.js';
import type { DesiredTrust } from '../../modules/incus-trust/model.js';
import { auditCertificate, renderAuditJson, renderAuditText, summarize, type AuditedHost } from '../../render/audit.js';

export const HELP = `Usage: reconcile audit -i INVENTORY [--limit PATTERN] [--json] [--warn-days N]

Reads the Incus trust store of every selected host and marks each trusted certificate:
managed (named by the inventory), unmanaged (not named), expired, expiring (within
--warn-days), unrestricted (full access to every project). Changes nothing.

  -i, --inventory PATH     Ansible YAML inventory (file or folder)
  --limit PATTERN          only hosts matching an Ansible host pattern
  --json                   print one JSON object instead of text
  --warn-days N            "expiring" window in days (default 30)
  --forks N                hosts read in parallel (default 10)
  --accept-new-host-keys   record host keys never seen before in known_hosts
  -h, --help               this help

Exit codes: 0 every host was read; 1 a host could not be read, or bad input.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  limit: { type: 'string', short: 'l' },
  json: { type: 'boolean' },
  'warn-days': { type: 'string' },
  forks: { type: 'string', short: 'f' },
  'accept-new-host-keys': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('audit', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  // -i, else ansible.cfg's inventory or ANSIBLE_INVENTORY, as Ansible finds them.
  const ansible = ansibleSettings(io);
  values.inventory ??= inventoryOf(undefined, ansible, io, 'audit');
  if (positionals.length > 0) throw new UsageError(`audit: unexpected argument '${positionals[0]}' (see 'reconcile audit --help')`);
  const warnDays = values['warn-days'] === '0' ? 0 : positiveInt('audit', '--warn-days', values['warn-days'], 30);
  const forks = positiveInt('audit', '--forks', values.forks, 10);
  const now = new Date();

  const inventoryPath = resolve(io.cwd, values.inventory);
  const inventory = await loadInventory(inventoryPath);
  await loadInventoryValidator();
  const problems = validateInventory(inventory, now, (rel) => readInventoryFile(inventory, rel), MODULES);
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
  for (const p of problems) io.stderr(formatProblem(p) + '\n');

  const selection = selectHosts(inventory, values.limit ?? 'all');
  if (selection.hosts.length === 0) {
    // As the default command: a --limit that selects nothing is a mistake (a typo must not read
    // as a clean audit to cron), said on one line with what did not match.
    const why = selection.warnings.map((w) => w.replace(/; ignoring it$/, '')).join('; ');
    const what = values.limit === undefined ? 'the inventory has no host to audit' : `--limit "${values.limit}" leaves no host to audit`;
    throw new UsageError(`audit: ${what}${why ? ` (${why})` : ''}`);
  }
  for (const w of selection.warnings) io.stderr(`audit: ${w}\n`);

  const transport = transportOptions(io, values['accept-new-host-keys'] ?? false, { settings: ansible });
  const ctx = { inventory, readInventoryFile: (rel: string) => readInventoryFile(inventory, rel), now };
  const reads = await readTrustStores(
    selection.hosts.map((name) => inventory.hosts.get(name)!),
    transport,
    forks,
  );
  const hosts = reads.map((read) => auditHost(read, MODULES.incus_trust.desired(read.host, ctx).desired as DesiredTrust | undefined, now, warnDays));
  const report = summarize(inventoryPath, hosts, now, warnDays);
  io.stdout(values.json ? renderAuditJson(report) : renderAuditText(report));
  return report.exitCode;
}

function auditHost(read: TrustStoreRead, desired: DesiredTrust | undefined, now: Date, warnDays: number): AuditedHost {
  if ('error' in read) {
    const { unreachable, ...error } = read.error;
    return { host: read.host.name, status: unreachable ? 'unreachable' : 'failed', managedByInventory: desired !== undefined, certificates: [], error };
  }
  // The API extensions decide what can be planned; the audit names the daemon and its version.
  const { daemon, ...cluster } = read.observed.server;
  if (!daemon) throw new InternalError(`${read.host.name}: audit reads what every daemon says of itself (GET /1.0)`);
  const { extensions: _extensions, ...about } = daemon;
  return {
    host: read.host.name,
    status: 'ok',
    server: { ...about, ...cluster },
    managedByInventory: desired !== undefined,
    certificates: read.observed.certificates
      .map((c) => auditCertificate(c, desired, now, warnDays))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.fingerprint < b.fingerprint ? -1 : 1)),
  };
}
