/**
 * What every command that may change hosts does around the engine, in one place: take the run
 * lock, pick the views, read (or load) the plan, show it, ask before applying on a terminal,
 * apply it, write the metrics file, and turn the report into an exit code. SIGINT/SIGTERM/SIGHUP
 * while applying start no new action and still report; before apply they stop at once.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { applyPlan, hostApplies } from '../engine/apply-plan.js';
import { defaultSessionPool, reasonWords } from '../engine/inputs.js';
import type { SessionPool } from '../engine/plan-run.js';
import { buildReport, exitCodeOf, type RunReport } from '../engine/report.js';
import { MODULES } from '../modules/registry.js';
import type { RunPlan } from '../plan/types.js';
import { generatedKeyPairLine } from '../render/key-pairs.js';
import { renderJsonReport } from '../render/json-report.js';
import { logLineWriter, quietLogHooks } from '../render/log-lines.js';
import { renderFailedRunMetrics, renderMetrics } from '../render/metrics-file.js';
import { expiryWindow, hostsWithErrorShown, renderPlan, renderRecap, renderSummaryLine } from '../render/plan-text.js';
import { listrHooks, logLineHooks } from './progress.js';
import { combineViews, type ReasonWords, type RunView } from '../render/view.js';
import type { CliIO } from './io.js';
import { acquireRunLock, RunLockHeldError } from './run-lock.js';
import { writeFileAtomic } from './write-atomic.js';
import type { TransportOptions } from '../transport/types.js';

/**
 * Signals that stop a run: while applying, the actions in flight finish, no new one starts and
 * the report is written; before, at once. SIGHUP is the terminal going away (an SSH session to
 * the controller dropped): the same report as SIGTERM, never a run cut off mid-action.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The options every command that may change hosts takes (the default command and `apply PLAN`). */
export const SESSION_FLAGS = {
  forks: { type: 'string', short: 'f' },
  json: { type: 'boolean' },
  'metrics-file': { type: 'string' },
  'lock-timeout': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'accept-new-host-keys': { type: 'boolean' },
  // -v logs each action, -vvv each host's connection settings and their sources, -vvvv the SSH negotiation.
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface SessionOptions {
  /** The inventory the lock is taken for. */
  inventory: string;
  /** check: plan only; apply: plan (or the saved plan), then apply. */
  mode: 'check' | 'apply';
  /** Show the plan text before applying (a saved plan was reviewed already: not shown again). */
  showPlan: boolean;
  /** Ask before applying on a terminal (--yes / a saved plan: no). */
  confirm: boolean;
  diff: boolean;
  json: boolean;
  quiet: boolean;
  /** How many -v: 1 actions, 3 connection settings, 4 the SSH negotiation. */
  verbose: number;
  forks: number;
  metricsFile?: string;
  lockTimeoutSeconds: number;
  transport: TransportOptions;
  toolVersion: string;
}

/** How the plan is had: read from the hosts (default command) or loaded from a file (apply PLAN). */
export type PlanSource = (view: RunView, pool: SessionPool) => Promise<RunPlan>;

export async function runSession(options: SessionOptions, io: CliIO, makePlan: PlanSource, afterPlan?: (plan: RunPlan) => Promise<void>): Promise<number> {
  const metricsFile = options.metricsFile;
  if (metricsFile !== undefined && !existsSync(dirname(metricsFile))) {
    throw new UsageError(`--metrics-file ${metricsFile}: folder ${dirname(metricsFile)} does not exist`);
  }
  const logLine = logLineWriter({ write: io.stderr, clock: () => new Date() });
  const say = options.quiet ? () => undefined : logLine;
  const startedAt = new Date();
  // One run per inventory at a time, taken before anything is read (run-lock.ts). When it is
  // held past the timeout, the metrics file is left to the run holding it.
  const lock = await acquireRunLock({
    inventoryPath: options.inventory,
    env: io.env,
    timeoutMs: options.lockTimeoutSeconds * 1000,
    onWait: (h, file, timeoutMs) =>
      say(`waiting up to ${timeoutMs / 1000} s for the run lock: another run holds it, PID ${h.pid} on ${h.hostname}, started ${h.startedAt} (${file})`),
    onStaleTakeover: (h, file) => say(`taking over a stale run lock left by PID ${h?.pid ?? 'unknown'}, no longer running (${file})`),
  });
  const interrupt = new AbortController();
  let applying = false;
  const stopInterruptHandlers = () => {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  };
  function onSignal(signal: NodeJS.Signals): void {
    if (!applying || interrupt.signal.aborted) {
      // Before apply nothing was changed, and a second signal means "now": die of the signal at
      // once, as without a handler (the lock's own handler releases it).
      stopInterruptHandlers();
      process.kill(process.pid, signal);
      return;
    }
    interrupt.abort(signal);
    logLine(`${signal} received: finishing the actions in flight, starting no new ones (send it again to stop at once)`);
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  // The output's reader went away (`| head`): as SIGTERM during apply — the actions in flight
  // finish, no new one starts, the report files are written — and no apply starts after it.
  const onOutputClosed = () => {
    if (!interrupt.signal.aborted) interrupt.abort('EPIPE');
  };
  io.outputClosed?.addEventListener('abort', onOutputClosed);
  const pool = defaultSessionPool(options.transport);
  const words = reasonWords();
  try {
    if (lock.waitedFor) say(`got the run lock after waiting ${(lock.waitedMs / 1000).toFixed(1)} s for PID ${lock.waitedFor.pid}`);
    const view = chooseViews(options, io, words);
    const plan = await makePlan(view, pool);
    await view.planned?.(plan);
    await afterPlan?.(plan);
    let report: RunReport;
    if (options.mode === 'check') {
      report = buildReport(plan, { mode: 'check', startedAt, finishedAt: new Date() });
    } else {
      if (options.confirm && !(await confirmed(plan, io))) {
        io.stderr('reconcile: apply cancelled; nothing was changed\n');
        return 1;
      }
      // From here a signal is "stop starting actions": apply still runs and reports each host.
      applying = true;
      await pauseBeforeApplyForTests(view);
      view.applyStarting?.(plan);
      report = await applyPlan(plan, pool, view, { forks: options.forks, modules: MODULES, now: () => new Date(), interrupt: interrupt.signal });
      report = { ...report, startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime() };
    }
    for (const h of report.hosts) view.hostFinished?.(h);
    await view.finished?.(report);
    if (metricsFile !== undefined) await writeMetrics(metricsFile, renderMetrics(report));
    // Interrupted: the report is out; the exit status says which signal (128 + n), as a shell's would.
    if (interrupt.signal.aborted) return { SIGHUP: 129, SIGINT: 130, EPIPE: 141 }[String(interrupt.signal.reason)] ?? 143;
    return exitCodeOf(report);
  } catch (e) {
    // A run that ended without a report (invalid inventory …) still tells Prometheus it failed.
    if (metricsFile !== undefined && !(e instanceof RunLockHeldError)) {
      const failed = {
        inventory: options.inventory,
        startedAt,
        durationMs: Date.now() - startedAt.getTime(),
        mode: options.mode,
        version: options.toolVersion,
      } as const;
      await writeMetrics(metricsFile, renderFailedRunMetrics(failed)).catch(() => undefined);
    }
    throw e;
  } finally {
    stopInterruptHandlers();
    io.outputClosed?.removeEventListener('abort', onOutputClosed);
    await pool.closeAll();
    lock.release();
  }
}

/**
 * On a terminal, apply asks first, as `terraform apply` does: the summary, then "yes" to go on.
 * Nothing to apply: nothing to ask. Without a terminal (cron, CI) the CLI never gets here.
 */
async function confirmed(plan: RunPlan, io: CliIO): Promise<boolean> {
  const applying = plan.hosts.filter(hostApplies).length + (plan.controller.some((p) => p.actions.some((a) => a.applies)) ? 1 : 0);
  if (applying === 0 || !io.ask) return true;
  const answer = await io.ask(`\n${renderSummaryLine(plan)}\nDo you want to apply these changes on ${applying} host(s)? Only 'yes' will be accepted: `);
  return answer.trim() === 'yes';
}

/**
 * TEST-ONLY hook, read here and nowhere else: RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS=N waits N ms
 * between plan and apply so that the fault suite (test/faults) can change a host behind the
 * plan's back and check that the action is refused (its precondition), not forced. Unset in real
 * use; the pause is announced as a warning so that a stray setting is visible.
 */
async function pauseBeforeApplyForTests(view: RunView): Promise<void> {
  const ms = Number(process.env.RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS ?? '');
  if (!Number.isInteger(ms) || ms <= 0) return;
  view.warning?.(`RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS is set (test only): pausing ${ms} ms before apply`);
  await new Promise((resolveWait) => setTimeout(resolveWait, ms));
}

async function writeMetrics(file: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(file, text);
  } catch (e) {
    throw new UsageError(`cannot write --metrics-file ${file}: ${(e as Error).message}`);
  }
}

/** The views of a run, chosen once: text or JSON on stdout, progress on the terminal (listr2) or as log lines on stderr. */
export function chooseViews(
  options: Pick<SessionOptions, 'json' | 'quiet' | 'verbose' | 'diff' | 'mode' | 'showPlan'>,
  io: CliIO,
  words: ReasonWords,
): RunView {
  // Without a terminal every event is one timestamped, colourless line (src/render/log-lines.ts).
  const logLine = logLineWriter({ write: io.stderr, clock: () => new Date() });
  // -vvv and more: plain lines, as Ansible's verbose output (a progress display would draw over them).
  const listr = io.isTTY && !options.json && !options.quiet && options.verbose < 3;
  const warnings: RunView = options.quiet ? {} : { warning: (m) => (listr ? io.stderr(`${m}\n`) : logLine(m)) };
  // A key pair made on the controller is a change even -q reports: a log line (stderr) unless
  // the terminal shows progress, and a line of the text output (stdout); --json has `generated`.
  const keyPairs: RunView = {
    keyPairGenerated: (pair) => {
      const line = generatedKeyPairLine(pair);
      if (!listr) logLine(line);
      if (!options.json && !options.quiet) io.stdout(`${line}\n`);
    },
  };
  // Where the plan text shows a host's error, progress says only that the host failed.
  const planShowsErrors = options.showPlan && !options.json;
  const progress = options.quiet
    ? quietLogHooks(logLine, words)
    : listr
      ? listrHooks()
      : logLineHooks({ writeLine: logLine, verbose: options.verbose, mode: options.mode, planShowsErrors });
  let shownInPlan: ReadonlySet<string> | undefined;
  const results: RunView = options.json
    ? { finished: (r: RunReport) => io.stdout(renderJsonReport(r, words)) }
    : options.quiet
      ? {}
      : {
          ...(options.showPlan
            ? {
                planned: (plan: RunPlan) => {
                  shownInPlan = hostsWithErrorShown(plan);
                  io.stdout(renderPlan(plan, { diff: options.diff, words, expiring: expiryWindow(plan) }));
                },
              }
            : {}),
          finished: (r: RunReport) => io.stdout(`\n${renderRecap(r, options.showPlan ? shownInPlan : undefined)}`),
        };
  // Progress first: its `planned` waits for the reading list to finish drawing before the plan prints.
  return combineViews(warnings, keyPairs, progress, results);
}
