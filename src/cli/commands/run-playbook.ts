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
import { transportOptions } from '../transport-options.js';
import { UsageError } from '../../errors.js';
import { combineHooks, runPlaybook, type EngineHooks, type RunRequest } from '../../engine/run.js';
import { defaultEngineDeps } from '../../engine/inputs.js';
import type { RunReport } from '../../engine/report.js';
import { renderPlan, renderRecap } from '../../render/plan-text.js';
import { renderJsonReport } from '../../render/json-report.js';
import { listrHooks, logLineHooks } from '../../render/progress.js';
import { logLineWriter, quietLogHooks } from '../../render/log-lines.js';
import { renderFailedRunMetrics, renderMetrics } from '../../render/metrics-file.js';
import { writeFileAtomic } from '../write-atomic.js';
import { generatedKeyPairLine } from '../../render/key-pairs.js';
import { acquireRunLock, parseLockTimeout, RunLockHeldError } from '../../engine/lock.js';

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
  --warn-days N            report trusted certificates expiring within N days (default 30;
                           in the --json report and the metrics file)
  --json                   print one JSON report (schema/report.schema.json) instead of text
  --metrics-file FILE      write Prometheus metrics for node_exporter's textfile collector
                           (atomically: temporary file in the same folder, then rename)
  --lock-timeout SECONDS   wait this long for another run on the same inventory (default 30; 0: do not wait)
  -q, --quiet              print only drift and errors, one line each (nothing when in sync)
  --accept-new-host-keys   record host keys never seen before in known_hosts
  -v, --verbose            log every action as it starts
  -h, --help               this help

Exit codes (stable, for cron and scripts; see docs/operations.md):
  0  in sync (--check), or every change applied cleanly
  2  --check found drift and nothing failed
  1  anything failed: invalid inventory, a host unreachable or failed (even when others drifted),
     another run holding the lock past --lock-timeout, a usage error

Without a terminal (cron, CI, pipes) progress is one line per event on stderr, each starting
with an ISO 8601 timestamp, never coloured. Only one run per inventory at a time: the lock is
.reconcile.lock beside the inventory (or in $RECONCILE_LOCK_DIR when set, or when that folder is
read-only, in /run/reconcile for root, else the temp folder).
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  check: { type: 'boolean' },
  diff: { type: 'boolean' },
  limit: { type: 'string', short: 'l' },
  forks: { type: 'string', short: 'f' },
  'warn-days': { type: 'string' },
  prune: { type: 'boolean' },
  json: { type: 'boolean' },
  'metrics-file': { type: 'string' },
  'lock-timeout': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
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
  verbose: boolean;
}

export function parseRunPlaybookArgs(argv: string[], io: CliIO): RunPlaybookOptions | 'help' {
  const { values, positionals } = parseDefaultCommandArgs(argv);
  if (values.help) return 'help';
  if (positionals.length > 1) {
    throw new UsageError(`one playbook at most, got ${positionals.length}: ${positionals.join(' ')} (see 'reconcile --help')`);
  }
  if (!values.inventory) throw new UsageError(`-i INVENTORY is required (see 'reconcile --help')`);
  const playbook = positionals[0] !== undefined ? resolve(io.cwd, positionals[0]) : shippedPlaybook();
  return {
    inventory: resolve(io.cwd, values.inventory),
    playbook,
    check: values.check ?? false,
    diff: values.diff ?? false,
    limit: values.limit,
    forks: withoutCommandPrefix(() => positiveInt('reconcile', '--forks', values.forks, 10)),
    warnDays: withoutCommandPrefix(() => positiveInt('reconcile', '--warn-days', values['warn-days'], 30)),
    prune: values.prune ?? false,
    json: values.json ?? false,
    metricsFile: values['metrics-file'] !== undefined ? resolve(io.cwd, values['metrics-file']) : undefined,
    lockTimeoutSeconds: parseLockTimeout(values['lock-timeout']),
    quiet: values.quiet ?? false,
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
  const metricsFile = options.metricsFile;
  if (metricsFile !== undefined && !existsSync(dirname(metricsFile))) {
    throw new UsageError(`--metrics-file ${metricsFile}: folder ${dirname(metricsFile)} does not exist`);
  }
  const logLine = logLineWriter({ write: io.stderr, clock: () => new Date() });
  const say = options.quiet ? () => undefined : logLine;
  const startedAt = new Date();
  // One run per inventory at a time, taken before anything is read (src/engine/lock.ts). When it
  // is held past the timeout, the metrics file is left to the run holding it.
  const lock = await acquireRunLock({
    inventoryPath: options.inventory,
    env: io.env,
    timeoutMs: options.lockTimeoutSeconds * 1000,
    onWait: (h, file, timeoutMs) =>
      say(`waiting up to ${timeoutMs / 1000} s for the run lock: another run holds it, PID ${h.pid} on ${h.hostname}, started ${h.startedAt} (${file})`),
    onStaleTakeover: (h, file) => say(`taking over a stale run lock left by PID ${h?.pid ?? 'unknown'}, no longer running (${file})`),
  });
  // SIGINT/SIGTERM while applying: start no new action, let the ones in flight finish, report,
  // and exit 130/143 (the lock is held until then). Before apply nothing was changed, and a second
  // signal means "now": both die of the signal at once, as without a handler (the lock's own
  // handler releases it).
  const interrupt = new AbortController();
  let applying = false;
  const stopInterruptHandlers = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  function onSignal(signal: NodeJS.Signals): void {
    if (!applying || interrupt.signal.aborted) {
      stopInterruptHandlers();
      process.kill(process.pid, signal);
      return;
    }
    interrupt.abort(signal);
    logLine(`${signal} received: finishing the actions in flight, starting no new ones (send it again to stop at once)`);
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const applyStarts: EngineHooks = { planned: (plan) => void (applying = plan.mode === 'apply') };
  try {
    if (lock.waitedFor) say(`got the run lock after waiting ${(lock.waitedMs / 1000).toFixed(1)} s for PID ${lock.waitedFor.pid}`);
    const hooks = combineHooks(outputHooks(options, io), applyStarts);
    const report = await runPlaybook({ ...runRequest(options, io), interrupt: interrupt.signal }, hooks, defaultEngineDeps());
    if (metricsFile !== undefined) await writeMetrics(metricsFile, renderMetrics(report));
    // Interrupted: the report is out; the exit status says which signal (128 + n), as a shell's would.
    if (interrupt.signal.aborted) return interrupt.signal.reason === 'SIGINT' ? 130 : 143;
    return report.exitCode;
  } catch (e) {
    // A run that ended without a report (invalid inventory …) still tells Prometheus it failed.
    if (metricsFile !== undefined && !(e instanceof RunLockHeldError)) {
      const failed = { inventory: options.inventory, startedAt, durationMs: Date.now() - startedAt.getTime(), mode: options.check ? 'check' : 'apply', version: packageVersion() } as const;
      await writeMetrics(metricsFile, renderFailedRunMetrics(failed)).catch(() => undefined);
    }
    throw e;
  } finally {
    stopInterruptHandlers();
    lock.release();
  }
}

async function writeMetrics(file: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(file, text);
  } catch (e) {
    throw new UsageError(`cannot write --metrics-file ${file}: ${(e as Error).message}`);
  }
}

export function runRequest(options: RunPlaybookOptions, io: CliIO): RunRequest {
  return {
    inventoryPath: options.inventory,
    playbookPath: options.playbook,
    check: options.check,
    limit: options.limit,
    forks: options.forks,
    prune: options.prune,
    warnDays: options.warnDays,
    transport: transportOptions(io, options.acceptNewHostKeys),
    now: () => new Date(),
    toolVersion: packageVersion(),
  };
}

/** Text or JSON on stdout, progress on the terminal (listr2) or as log lines on stderr. */
export function outputHooks(options: RunPlaybookOptions, io: CliIO): EngineHooks {
  // Without a terminal every event is one timestamped, colourless line (src/render/log-lines.ts).
  const logLine = logLineWriter({ write: io.stderr, clock: () => new Date() });
  const listr = io.isTTY && !options.json && !options.quiet;
  const warnings: EngineHooks = options.quiet ? {} : { warning: (m) => (listr ? io.stderr(`${m}\n`) : logLine(m)) };
  // A key pair made on the controller is a change even -q reports: a log line (stderr) unless
  // the terminal shows progress, and a line of the text output (stdout); --json has `generated`.
  const keyPairs: EngineHooks = {
    keyPairGenerated: (pair) => {
      const line = generatedKeyPairLine(pair);
      if (!listr) logLine(line);
      if (!options.json && !options.quiet) io.stdout(`${line}\n`);
    },
  };
  const progress = options.quiet ? quietLogHooks(logLine) : listr ? listrHooks() : logLineHooks({ writeLine: logLine, verbose: options.verbose });
  const results: EngineHooks = options.json
    ? { finished: (r: RunReport) => io.stdout(renderJsonReport(r)) }
    : options.quiet
      ? {}
      : {
        planned: (plan) => io.stdout(renderPlan(plan, { diff: options.diff })),
        finished: (r: RunReport) => io.stdout(`\n${renderRecap(r)}`),
      };
  // Progress first: its `planned` waits for the reading list to finish drawing before the plan prints.
  return combineHooks(warnings, keyPairs, progress, results);
}

/** A timeout in milliseconds from the environment; anything but a whole positive number is a usage error. */

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
