/**
 * The default command: `reconcile [PLAYBOOK] -i INVENTORY [--check] [--diff] [--limit PATTERN]
 * [--forks N] [--prune] [--json] [--metrics-file FILE] [--out PLAN] [--yes] [--strict] [-v]
 * [--accept-new-host-keys]`: options → a PlanRequest; planRun reads, run-session.ts shows, asks,
 * applies and reports.
 *
 * Output: the plan and the recap on stdout (or, with --json, only the report object); progress on
 * a terminal through listr2, otherwise one log line per event on stderr. Exit code: 0 in sync or
 * applied cleanly, 2 check found something to apply and nothing failed, 1 anything failed.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions, type AnsibleConnection } from '../transport-options.js';
import { inventoriesOf, readAnsibleSettings } from '../ansible-config.js';
import { logLineWriter } from '../../render/log-lines.js';
import { InventoryError, UsageError } from '../../errors.js';
import { planRun, type PlanRequest } from '../../engine/plan-run.js';
import { defaultPlanDeps } from '../../engine/inputs.js';
import { parseLockTimeout } from '../run-lock.js';
import { runSession, SESSION_FLAGS } from '../run-session.js';
import { writePlanFile } from '../plan-file.js';
import { packageVersion, shippedPlaybook } from '../package-info.js';

export { packageVersion, shippedPlaybook };

export const HELP = `Usage: reconcile [PLAYBOOK] -i INVENTORY [options]

Reconciles the hosts of an Ansible inventory with what it declares: reads every selected
host's live state over SSH, prints the plan, and applies it (or, with --check, only shows it).

  PLAYBOOK                 plays of {name, hosts, reconcile: [...]} (default: the shipped playbooks/site.yaml)
  -i, --inventory FILE     Ansible YAML inventory (file or folder), several times for several;
                           default: [defaults] inventory of ansible.cfg or ANSIBLE_INVENTORY
  -u, --user USER          remote user for hosts without ansible_user (over remote_user of ansible.cfg)
  --private-key FILE       SSH key for hosts without ansible_ssh_private_key_file
  --list-hosts             print the hosts each play selects (as ansible-playbook --list-hosts), connect to none
  -C, --check              dry run: show the plan, change nothing
  --out PLAN               also save the plan to PLAN (JSON, mode 0600; 'reconcile apply PLAN'
                           applies exactly it, 'reconcile show PLAN' prints it)
  -y, --yes, --auto-approve  apply without asking (a terminal asks first; cron and CI never do)
  -D, --diff               show before/after of every changed field
  --strict                 a variable that looks like one reconcile reads but is not (a typo such
                           as incus_trusted_client) is an error, not a warning
  --limit PATTERN          only hosts matching an Ansible host pattern (a:b, a:&b, a:!b, globs)
  --forks N                hosts worked on in parallel (default: forks of ansible.cfg, else 10)
  --prune                  remove trusted certificates the inventory does not name
  --warn-days N            report trusted certificates expiring within N days (default 30;
                           in the --json report and the metrics file)
  --json                   print one JSON report (schema/report.schema.json) instead of text
  --metrics-file FILE      write Prometheus metrics for node_exporter's textfile collector
                           (atomically: temporary file in the same folder, then rename)
  --lock-timeout SECONDS   wait this long for another run on the same inventory (default 30; 0: do not wait)
  -q, --quiet              print only drift and errors, one line each (nothing when in sync)
  --accept-new-host-keys   record host keys never seen before in known_hosts
  -v, --verbose            log every action as it starts; -vvv also each host's connection
                           settings and where each came from; -vvvv the SSH negotiation
  -h, --help               this help

Exit codes (stable, for cron and scripts; see docs/operations.md):
  0  in sync (--check), or every change applied cleanly (unmanaged certificates kept are reported, not drift)
  2  --check found something an apply would change, and nothing failed
  1  anything failed: invalid inventory, a host unreachable or failed (even when others drifted),
     another run holding the lock past --lock-timeout, a usage error

Without a terminal (cron, CI, pipes) progress is one line per event on stderr, each starting
with an ISO 8601 timestamp, never coloured. Only one run per inventory at a time: the lock is
.reconcile.lock beside the inventory (or in $RECONCILE_LOCK_DIR when set, or when that folder is
read-only, in /run/reconcile for root, else the temp folder).
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i', multiple: true },
  user: { type: 'string', short: 'u' },
  'private-key': { type: 'string' },
  'list-hosts': { type: 'boolean' },
  check: { type: 'boolean', short: 'C' },
  diff: { type: 'boolean', short: 'D' },
  out: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  'auto-approve': { type: 'boolean' },
  strict: { type: 'boolean' },
  limit: { type: 'string', short: 'l' },
  'warn-days': { type: 'string' },
  prune: { type: 'boolean' },
  ...SESSION_FLAGS,
} as const;

/** Parsed command line, for the hooks that later outputs (metrics file, run lock) plug in. */
export interface RunPlaybookOptions {
  /** The first inventory source: the run lock and the plan are named after it. */
  inventory: string;
  /** Every inventory source (-i given several times, or ansible.cfg's list), read as one inventory. */
  inventories: string[];
  playbook: string;
  check: boolean;
  diff: boolean;
  /** --out: where to save the plan. */
  out?: string;
  /** --yes / --auto-approve: do not ask before applying. */
  yes: boolean;
  /** --strict: a near miss of a variable reconcile reads is an error. */
  strict: boolean;
  limit?: string;
  forks: number;
  /** --warn-days: certificates expiring within this many days are reported as expiring. */
  warnDays: number;
  prune: boolean;
  json: boolean;
  metricsFile?: string;
  /** --lock-timeout, in seconds. */
  lockTimeoutSeconds: number;
  /** -q: only drift and errors. */
  quiet: boolean;
  acceptNewHostKeys: boolean;
  /** Number of -v. */
  verbose: number;
  /** --list-hosts: print what each play selects and stop. */
  listHosts: boolean;
  /** ansible.cfg and ANSIBLE_*, with -u / --private-key over them. */
  ansible: AnsibleConnection;
}

export function parseRunPlaybookArgs(argv: string[], io: CliIO): RunPlaybookOptions | 'help' {
  const { values, positionals } = parseDefaultCommandArgs(argv);
  if (values.help) return 'help';
  if (positionals.length > 1) {
    throw new UsageError(`one playbook at most, got ${positionals.length}: ${positionals.join(' ')} (see 'reconcile --help')`);
  }
  const settings = readAnsibleSettings(io.env, io.cwd);
  const inventories = inventoriesOf(values.inventory, settings, io);
  const playbook = positionals[0] !== undefined ? resolve(io.cwd, positionals[0]) : shippedPlaybook();
  const ansible: AnsibleConnection = { settings };
  if (values.user !== undefined) ansible.user = values.user;
  if (values['private-key'] !== undefined) ansible.privateKey = resolve(io.cwd, values['private-key']);
  return {
    inventory: inventories[0]!,
    inventories,
    listHosts: values['list-hosts'] ?? false,
    ansible,
    playbook,
    check: values.check ?? false,
    diff: values.diff ?? false,
    out: values.out !== undefined ? resolve(io.cwd, values.out) : undefined,
    yes: (values.yes ?? false) || (values['auto-approve'] ?? false),
    strict: values.strict ?? false,
    limit: values.limit,
    forks: withoutCommandPrefix(() => positiveInt('reconcile', '--forks', values.forks, settings.forks?.value ?? 10)),
    warnDays: withoutCommandPrefix(() => positiveInt('reconcile', '--warn-days', values['warn-days'], 30)),
    prune: values.prune ?? false,
    json: values.json ?? false,
    metricsFile: values['metrics-file'] !== undefined ? resolve(io.cwd, values['metrics-file']) : undefined,
    lockTimeoutSeconds: parseLockTimeout(values['lock-timeout']),
    quiet: values.quiet ?? false,
    acceptNewHostKeys: values['accept-new-host-keys'] ?? false,
    verbose: values.verbose?.length ?? 0,
  };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const options = parseRunPlaybookArgs(argv, io);
  if (options === 'help') {
    io.stdout(HELP);
    return 0;
  }
  for (const w of options.ansible.settings.warnings) io.stderr(`reconcile: warning: ${w}\n`);
  if (options.listHosts) return listHosts(options, io);
  if (options.out !== undefined && !existsSync(dirname(options.out))) {
    throw new UsageError(`--out ${options.out}: folder ${dirname(options.out)} does not exist`);
  }
  const request = planRequest(options, io);
  return runSession(
    {
      inventory: options.inventory,
      mode: options.check ? 'check' : 'apply',
      showPlan: true,
      confirm: !options.yes,
      diff: options.diff,
      json: options.json,
      quiet: options.quiet,
      verbose: options.verbose,
      forks: options.forks,
      metricsFile: options.metricsFile,
      lockTimeoutSeconds: options.lockTimeoutSeconds,
      transport: request.transport,
      toolVersion: request.toolVersion,
    },
    io,
    // A check asks nothing more of a host once it is read (watch, which builds on planRequest, keeps its connections).
    (view, pool) => planRun({ ...request, closeAfterReading: options.check }, view, defaultPlanDeps(), pool),
    options.out !== undefined ? (plan) => writePlanFile(options.out!, plan) : undefined,
  );
}

export function planRequest(options: RunPlaybookOptions, io: CliIO): PlanRequest {
  const transport = transportOptions(io, options.acceptNewHostKeys, options.ansible);
  // -vvvv: the SSH negotiation, one timestamped line each, as the other log lines.
  if (options.verbose >= 4) transport.debug = logLineWriter({ write: io.stderr, clock: () => new Date() });
  return {
    inventoryPath: options.inventory,
    inventoryPaths: options.inventories,
    playbookPath: options.playbook,
    limit: options.limit,
    forks: options.forks,
    prune: options.prune,
    warnDays: options.warnDays,
    strict: options.strict,
    transport,
    now: () => new Date(),
    toolVersion: packageVersion(),
  };
}

/** ansible-playbook --list-hosts: each play, its pattern and the hosts it selects (∩ --limit); nothing is connected to. */
async function listHosts(options: RunPlaybookOptions, io: CliIO): Promise<number> {
  const deps = defaultPlanDeps();
  const inventory = await deps.loadInventory(options.inventories);
  const { plays, problems } = await deps.loadPlaybook(options.playbook);
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
  const limited = options.limit !== undefined ? new Set(deps.selectHosts(inventory, options.limit).hosts) : undefined;
  const lines = ['', `playbook: ${options.playbook}`];
  plays.forEach((play, i) => {
    const hosts = deps.selectHosts(inventory, play.hosts).hosts.filter((h) => !limited || limited.has(h));
    lines.push(
      '',
      `  play #${i + 1} (${play.hosts}): ${play.name}`,
      `    pattern: ['${play.hosts}']`,
      `    hosts (${hosts.length}):`,
      ...hosts.map((h) => `      ${h}`),
    );
  });
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

/** main.ts prefixes every usage error with `reconcile: `; the default command has no name of its own to add. */
function parseDefaultCommandArgs(argv: string[]) {
  return withoutCommandPrefix(() => parseCommandArgs('reconcile', argv, OPTIONS));
}

function withoutCommandPrefix<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(e.message.replace(/^reconcile: /, ''));
    throw e;
  }
}
