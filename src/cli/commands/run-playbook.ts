/**
 * The default command: `reconcile [PLAYBOOK] -i INVENTORY [--check] [--diff] [--limit PATTERN]
 * [--forks N] [--prune] [--json] [--metrics-file FILE] [-v] [--accept-new-host-keys]`.
 *
 * Output: the plan and the recap on stdout (or, with --json, only the report object); progress on
 * a terminal through listr2, otherwise one log line per event on stderr. Exit code: 0 in sync or
 * applied cleanly, 2 check found drift and nothing failed, 1 anything failed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { UsageError } from '../../errors.js';
import { combineHooks, runPlaybook, type EngineHooks, type RunRequest } from '../../engine/run.js';
import { defaultEngineDeps } from '../../engine/inputs.js';
import type { RunReport } from '../../engine/report.js';
import { renderPlan, renderRecap } from '../../render/plan-text.js';
import { renderJsonReport } from '../../render/json-report.js';
import { listrHooks, logLineHooks } from '../../render/progress.js';
import type { TransportOptions } from '../../transport/types.js';

export const HELP = `Usage: reconcile [PLAYBOOK] -i INVENTORY [options]

Reconciles the hosts of an Ansible inventory with what it declares: reads every selected
host's live state over SSH, prints the plan, and applies it (or, with --check, only shows it).

  PLAYBOOK                 plays of {name, hosts, reconcile: [...]} (default: the shipped playbooks/site.yaml)
  -i, --inventory FILE     Ansible YAML inventory (file or folder)
  --check                  dry run: show the plan, change nothing
  --diff                   show before/after of every changed field
  --limit PATTERN          only hosts matching an Ansible host pattern (a:b, a:&b, a:!b, globs)
  --forks N                hosts worked on in parallel (default 10)
  --prune                  remove trusted certificates the inventory does not name
  --json                   print one JSON report (schema/report.schema.json) instead of text
  --metrics-file FILE      write Prometheus metrics for node_exporter's textfile collector
  --accept-new-host-keys   record host keys never seen before in known_hosts
  -v, --verbose            log every action as it starts
  -h, --help               this help

Exit codes: 0 in sync (check) or applied cleanly; 2 --check found drift and nothing failed;
1 anything failed (invalid inventory, unreachable host, failed action).
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  check: { type: 'boolean' },
  diff: { type: 'boolean' },
  limit: { type: 'string', short: 'l' },
  forks: { type: 'string', short: 'f' },
  prune: { type: 'boolean' },
  json: { type: 'boolean' },
  'metrics-file': { type: 'string' },
  'accept-new-host-keys': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parsed command line, for the hooks that later outputs (metrics file, run lock) plug in. */
export interface RunPlaybookOptions {
  inventory: string;
  playbook: string;
  check: boolean;
  diff: boolean;
  limit?: string;
  forks: number;
  prune: boolean;
  json: boolean;
  metricsFile?: string;
  acceptNewHostKeys: boolean;
  verbose: boolean;
}

export function parseRunPlaybookArgs(argv: string[], io: CliIO): RunPlaybookOptions | 'help' {
  const { values, positionals } = parseCommandArgs('reconcile', argv, OPTIONS);
  if (values.help) return 'help';
  if (positionals.length > 1) {
    throw new UsageError(`reconcile: one playbook at most, got ${positionals.length}: ${positionals.join(' ')} (see 'reconcile --help')`);
  }
  if (!values.inventory) throw new UsageError(`reconcile: -i INVENTORY is required (see 'reconcile --help')`);
  const playbook = positionals[0] !== undefined ? resolve(io.cwd, positionals[0]) : shippedPlaybook();
  return {
    inventory: resolve(io.cwd, values.inventory),
    playbook,
    check: values.check ?? false,
    diff: values.diff ?? false,
    limit: values.limit,
    forks: positiveInt('reconcile', '--forks', values.forks, 10),
    prune: values.prune ?? false,
    json: values.json ?? false,
    metricsFile: values['metrics-file'] !== undefined ? resolve(io.cwd, values['metrics-file']) : undefined,
    acceptNewHostKeys: values['accept-new-host-keys'] ?? false,
    verbose: values.verbose ?? false,
  };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const options = parseRunPlaybookArgs(argv, io);
  if (options === 'help') {
    io.stdout(HELP);
    return 0;
  }
  if (options.metricsFile !== undefined) {
    throw new UsageError('reconcile: --metrics-file is not available in this build yet');
  }
  const report = await runPlaybook(runRequest(options, io), outputHooks(options, io), defaultEngineDeps());
  return report.exitCode;
}

export function runRequest(options: RunPlaybookOptions, io: CliIO): RunRequest {
  return {
    inventoryPath: options.inventory,
    playbookPath: options.playbook,
    check: options.check,
    limit: options.limit,
    forks: options.forks,
    prune: options.prune,
    warnDays: 30,
    transport: transportOptions(options, io),
    now: () => new Date(),
    toolVersion: packageVersion(),
  };
}

/** Text or JSON on stdout, progress on the terminal (listr2) or as log lines on stderr. */
export function outputHooks(options: RunPlaybookOptions, io: CliIO): EngineHooks {
  const warnings: EngineHooks = { warning: (m) => io.stderr(`${m}\n`) };
  const progress = io.isTTY && !options.json ? listrHooks() : logLineHooks({ writeLine: (l) => io.stderr(`${l}\n`), verbose: options.verbose });
  const results: EngineHooks = options.json
    ? { finished: (r: RunReport) => io.stdout(renderJsonReport(r)) }
    : {
        planned: (plan) => io.stdout(renderPlan(plan, { diff: options.diff })),
        finished: (r: RunReport) => io.stdout(`\n${renderRecap(r)}`),
      };
  // Progress first: its `planned` waits for the reading list to finish drawing before the plan prints.
  return combineHooks(warnings, progress, results);
}

function transportOptions(options: RunPlaybookOptions, io: CliIO): TransportOptions {
  const home = io.env.HOME ?? '';
  const sshConfig = join(home, '.ssh', 'config');
  return {
    // Overridable so that fault tests (test/faults) and slow links need not wait the defaults.
    connectTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_CONNECT_TIMEOUT_MS', 10_000),
    commandTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_COMMAND_TIMEOUT_MS', 60_000),
    knownHostsFiles: [join(home, '.ssh', 'known_hosts')],
    acceptNewHostKeys: options.acceptNewHostKeys,
    sshConfigFile: home && existsSync(sshConfig) ? sshConfig : undefined,
  };
}

/** A timeout in milliseconds from the environment; anything but a whole positive number is a usage error. */
function timeoutFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`reconcile: ${name} takes a whole number of milliseconds, not '${text}'`);
  return Number(text);
}

/** The package root: the nearest folder above this file holding reconcile's package.json (src/ or dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'playbooks'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
    dir = up;
  }
}

export function shippedPlaybook(): string {
  return join(packageRoot(), 'playbooks', 'site.yaml');
}

let cachedVersion: string | undefined;
function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      // Read synchronously once: the report carries the tool's version.
      cachedVersion = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}
