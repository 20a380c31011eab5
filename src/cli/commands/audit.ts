/**
 * `reconcile audit -i INVENTORY [--limit PATTERN] [--json] [--warn-days N] [--forks N]`:
 * reads every selected host's trust store (one SSH connection per host) and marks each trusted
 * certificate managed / unmanaged / expired / expiring / unrestricted against the inventory.
 * Read-only. Exit 0 when every host was read, 1 when any could not be.
 */
import { resolve } from 'node:path';
import pLimit from 'p-limit';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { formatProblem, InventoryError, TransportError, UsageError } from '../../errors.js';
import { loadInventory, readInventoryFile } from '../../inventory/load.js';
import type { InventoryHost } from '../../inventory/model.js';
import { selectHosts } from '../../inventory/patterns.js';
import { validateInventory } from '../../inventory/validate.js';
import { MODULES } from '../../modules/registry.js';
import type { DesiredTrust, ObservedTrust } from '../../modules/incus-trust/model.js';
import { auditCertificate, renderAuditJson, renderAuditText, summarize, type AuditedHost } from '../../render/audit.js';
import type { HostSession } from '../../transport/types.js';

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
  if (!values.inventory) throw new UsageError("audit: -i INVENTORY is required (see 'reconcile audit --help')");
  if (positionals.length > 0) throw new UsageError(`audit: unexpected argument '${positionals[0]}' (see 'reconcile audit --help')`);
  const warnDays = values['warn-days'] === '0' ? 0 : positiveInt('audit', '--warn-days', values['warn-days'], 30);
  const forks = positiveInt('audit', '--forks', values.forks, 10);
  const now = new Date();

  const inventoryPath = resolve(io.cwd, values.inventory);
  const inventory = await loadInventory(inventoryPath);
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

  const transport = transportOptions(io, values['accept-new-host-keys'] ?? false);
  // ssh2 loads only once there is something to read: --help and usage errors stay fast.
  const { connectHost, connectionSpecOf } = await import('../../transport/connect.js');
  const { observeTrust } = await import('../../modules/incus-trust/observe.js');
  const readHost = async (host: InventoryHost) => {
    const session = await connectHost(connectionSpecOf(host, transport), transport);
    try {
      return { session, observed: await observeTrust(session) };
    } catch (e) {
      await session.close();
      throw e;
    }
  };
  const ctx = { inventory, readInventoryFile: (rel: string) => readInventoryFile(inventory, rel), now };
  const limit = pLimit(forks);
  const hosts = await Promise.all(
    selection.hosts.map((name) =>
      limit(async () => {
        const host = inventory.hosts.get(name)!;
        const desired = MODULES.incus_trust.desired(host, ctx).desired as DesiredTrust | undefined;
        return auditHost(host, desired, readHost, now, warnDays);
      }),
    ),
  );
  const report = summarize(inventoryPath, hosts, now, warnDays);
  io.stdout(values.json ? renderAuditJson(report) : renderAuditText(report));
  return report.exitCode;
}

async function auditHost(
  host: InventoryHost,
  desired: DesiredTrust | undefined,
  readHost: (host: InventoryHost) => Promise<{ session: HostSession; observed: ObservedTrust }>,
  now: Date,
  warnDays: number,
): Promise<AuditedHost> {
  let session: HostSession | undefined;
  try {
    const read = await readHost(host);
    session = read.session;
    const observed = read.observed;
    return {
      host: host.name,
      status: 'ok',
      server: observed.server,
      managedByInventory: desired !== undefined,
      certificates: observed.certificates
        .map((c) => auditCertificate(c, desired, now, warnDays))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.fingerprint < b.fingerprint ? -1 : 1)),
    };
  } catch (e) {
    if (!(e instanceof TransportError)) throw e;
    return {
      host: host.name,
      status: e.unreachable ? 'unreachable' : 'failed',
      managedByInventory: desired !== undefined,
      certificates: [],
      error: { step: e.step, message: e.message.slice(`${e.host}: ${e.step}: `.length) },
    };
  } finally {
    await session?.close();
  }
}
