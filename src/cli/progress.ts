/**
 * Progress while a run goes: on a terminal, listr2 draws one line per host (connect/observe,
 * then apply); without one (cron, CI, pipes) every event is one plain line, fit for a log.
 * Both are RunViews (src/render/view.ts); the engine never prints.
 */
import { loadModule } from '../embedded.js';
import type { Listr as ListrClass } from 'listr2';
import { ACTION_SYMBOL, type Action, type HostFailure } from '../plan/types.js';
import { hostApplies } from '../engine/apply-plan.js';
import type { RunView } from '../render/view.js';

export interface LogLineOptions {
  /** Writes one whole line (the caller adds timestamps, or filters, as it needs). */
  writeLine(line: string): void;
  /** Number of -v: 1 also logs each action as it starts; 3 each host's connection settings and their sources. */
  verbose: number;
  /** The plan text (stdout) prints a read failure in full: the log line names only the step. */
  planShowsErrors?: boolean;
}

/** One line per event: `HOST: EVENT`, no colour, no cursor movement. */
export function logLineHooks(options: LogLineOptions & { mode: 'check' | 'apply' }): RunView {
  const line = options.writeLine;
  // Each failure is logged once: where it happened (reading, applying), not again in the host's last line.
  const failureLogged = new Set<string>();
  return {
    hostsSelected: (hosts) => line(`${options.mode === 'check' ? 'checking' : 'reconciling'} ${hosts.length} host(s): ${hosts.join(', ')}`),
    hostStep: (host, step) => line(`${host}: ${step === 'connect' ? 'connecting' : 'reading live state'}`),
    hostConnecting: (host, c) => {
      if (options.verbose < 3 || c.connection === 'local') return;
      if (c.api) {
        line(`${host}: https ${c.api.url}, client certificate ${c.api.clientCertFile}, server ${c.sources?.server ?? '?'} — route: ${c.sources?.route ?? '?'}`);
        return;
      }
      const route = c.proxyCommand !== undefined ? ` via ProxyCommand ${c.proxyCommand}` : c.jumps.map((j) => ` via ${j.user}@${j.address}:${j.port}`).join('');
      const from = Object.entries(c.sources ?? {})
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ');
      line(
        `${host}: ssh ${c.user}@${c.address}:${c.port}${route}, key ${c.privateKeyFile ?? '(agent or default keys)'}, become ${c.become ? 'yes' : 'no'} — ${from}`,
      );
    },
    hostApplyStarted: (host) => line(`${host}: applying`),
    actionStarted: (host, module, a) => {
      if (options.verbose >= 1) line(`${host}: ${module}: starting ${describe(a)}`);
    },
    actionApplied: (host, module, a) => line(`${host}: ${module}: applied ${describe(a)}`),
    hostApplyFinished: (host, failure) => {
      if (!failure) return;
      failureLogged.add(host);
      line(`${host}: failed: ${failure.step}: ${failure.message}`);
    },
    hostPlanned: (h) => {
      if (!h.failure) return;
      failureLogged.add(h.host);
      line(
        `${h.host}: ${h.failure.unreachable ? 'unreachable' : 'failed'}: ${h.failure.step}${options.planShowsErrors ? ' (see the plan)' : `: ${h.failure.message}`}`,
      );
    },
    hostFinished: (r) => {
      if (failureLogged.has(r.host)) return;
      const detail = r.error ? `: ${r.error.step}: ${r.error.message}` : r.coveredBy ? ` by ${r.coveredBy}` : '';
      line(`${r.host}: ${r.status}${detail}`);
    },
  };
}

export function describe(a: Action): string {
  return `${ACTION_SYMBOL[a.action]} ${a.action} ${a.kind} "${a.name}"`;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
  output(text: string): void;
  setOutput?: (text: string) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A host can fail before listr2 has started its task (and awaited this promise): without a
  // handler attached now, that rejection is "unhandled" and Node ends the process with a stack trace.
  promise.catch(() => undefined);
  const d: Deferred = { promise, resolve, reject, output: (t) => d.setOutput?.(t) };
  return d;
}

/**
 * listr2 per-host progress for a terminal. Two lists, so the plan text printed between them is
 * never drawn over: reading (connect + observe) until `planned`, then applying. Each host's line
 * stops as soon as that host is read (hostPlanned), not when the slowest one is.
 */
export function listrHooks(): RunView {
  // listr2 is loaded only when a terminal shows progress: cron and CI runs skip its import
  // (10-20 ms of every run's start-up, BENCHMARKS.md). Its CommonJS build loads synchronously.
  const { Listr } = loadModule<{ Listr: typeof ListrClass }>('listr2', import.meta.url);
  const reading = new Map<string, Deferred>();
  const applying = new Map<string, Deferred>();
  let readingRun: Promise<unknown> | undefined;
  let applyingRun: Promise<unknown> | undefined;
  let applyHosts: string[] = [];

  const start = (hosts: string[], title: (h: string) => string, into: Map<string, Deferred>) => {
    for (const h of hosts) into.set(h, deferred());
    const list = new Listr(
      hosts.map((h) => ({
        title: title(h),
        task: async (_: unknown, task: { output: string; title: string }) => {
          const d = into.get(h)!;
          d.setOutput = (t) => {
            task.output = t;
          };
          await d.promise;
        },
      })),
      // No signal handlers of listr2's own: Ctrl-C is the CLI's, the same on a terminal and in a pipe.
      { concurrent: true, exitOnError: false, registerSignalListeners: false, rendererOptions: { collapseErrors: false } } as never,
    );
    return list.run().catch(() => undefined);
  };

  return {
    hostsSelected: (hosts) => {
      readingRun = start(hosts, (h) => `${h}: read live state`, reading);
    },
    hostStep: (host, step) => reading.get(host)?.output(step === 'connect' ? 'connecting' : 'reading live state'),
    hostPlanned: (h) => {
      const d = reading.get(h.host);
      if (!d) return;
      // The plan printed next says why, in full.
      if (h.failure) d.reject(new Error(`${h.failure.unreachable ? 'unreachable' : 'failed'} at ${h.failure.step} (see the plan)`));
      else d.resolve();
    },
    planned: async () => {
      await readingRun;
    },
    applyStarting: (plan) => {
      applyHosts = [
        ...(plan.controller.some((p) => p.actions.some((a) => a.applies)) ? ['controller'] : []),
        ...plan.hosts.filter(hostApplies).map((h) => h.host),
      ];
      applyingRun = start(applyHosts, (h) => `${h}: apply`, applying);
    },
    actionApplied: (host, _module, a) => applying.get(host)?.output(`applied ${describe(a)}`),
    actionStarted: (host, _module, a) => applying.get(host)?.output(describe(a)),
    hostApplyFinished: (host: string, failure?: HostFailure) => {
      const d = applying.get(host);
      if (!d) return;
      if (failure) d.reject(new Error(`${failure.step}: ${failure.message}`));
      else d.resolve();
    },
    finished: async () => {
      await applyingRun;
    },
  };
}
