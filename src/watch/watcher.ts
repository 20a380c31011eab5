/**
 * `reconcile watch`: one long-running process that keeps the plan of every host current. It
 * holds one connection per host and each Incus/LXD server's lifecycle event stream; an event
 * about certificates (or the server's configuration) re-plans that host — a cluster once — at
 * once, and a full re-plan every `resync` catches what events miss. A host whose stream ends is
 * re-planned (unreachable, if it is) and its stream reopened with backoff. The inventory is read
 * again when its files change or on SIGHUP; an edit that does not load or validate keeps the last
 * good inventory. With `apply`, drift is applied as it appears — per host at most once per
 * `applyIntervalMs`, under the run lock, through the same applyPlan as a run.
 *
 * The plan itself is made by planRun (engine/plan-run.ts) exactly as a `--check` makes it; this
 * file only decides when, for which hosts, and keeps the results (state.ts).
 */
import { watch as watchFiles, type FSWatcher } from 'node:fs';
import http from 'node:http';
import { dirname, basename } from 'node:path';
import { InventoryError, TransportError, UsageError, formatProblem } from '../errors.js';
import { applyPlan, hostApplies } from '../engine/apply-plan.js';
import { defaultPlanDeps, reasonWords } from '../engine/inputs.js';
import { planRun, type PlanDeps, type PlanRequest, type SessionPool } from '../engine/plan-run.js';
import type { Inventory } from '../inventory/model.js';
import { isTrustHost } from '../modules/incus-trust/index.js';
import { MODULES } from '../modules/registry.js';
import { CONTROLLER, type RunPlan } from '../plan/types.js';
import { buildReport } from '../engine/report.js';
import { quietLines } from '../render/log-lines.js';
import { renderJsonReport } from '../render/json-report.js';
import type { DaemonEvent, EventSubscription, HostSession } from '../transport/types.js';
import { currentReport, emptyWatchState, mergePlans, renderWatchMetrics, sharedWith, statsOf, type WatchState } from './state.js';

export interface WatchOptions {
  request: PlanRequest;
  listen: { host: string; port: number };
  resyncMs: number;
  apply: boolean;
  /** --apply: the least time between two applies of one host. */
  applyIntervalMs: number;
  /** Takes the run lock for an apply; returns its release. */
  lock(): Promise<() => Promise<void>>;
  log(line: string): void;
  /** Connects to hosts (the transport). */
  pool: SessionPool;
}

/** Lifecycle actions that may change what a plan says: the trust store, and the configuration scrape targets come from. */
export function eventMatters(e: DaemonEvent): boolean {
  const action = e.metadata?.action ?? '';
  return e.type === 'lifecycle' && (action.startsWith('certificate-') || action === 'config-updated');
}

const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 30_000;

export interface RunningWatch {
  /** Stops everything; resolves when closed. */
  stop(): Promise<void>;
  /** Re-reads the inventory (SIGHUP). */
  reload(): void;
  readonly address: { host: string; port: number };
  readonly state: WatchState;
}

export async function startWatch(options: WatchOptions): Promise<RunningWatch> {
  const { request, log, pool } = options;
  const state = emptyWatchState();
  const baseDeps = defaultPlanDeps();
  let inventory: Inventory = await baseDeps.loadInventory(request.inventoryPaths ?? request.inventoryPath);
  // Every plan reads the inventory held here: it changes only when a reload validated.
  const depsFor = (inv: Inventory): PlanDeps => ({ ...baseDeps, loadInventory: async () => inv });
  let stopped = false;
  const words = reasonWords();

  // --- planning: one at a time; hosts that asked meanwhile are planned together right after.
  let planning: Promise<void> | undefined;
  let pendingAll = false;
  const pendingHosts = new Set<string>();
  /** When the oldest event not yet planned arrived, per host. */
  const eventSince = new Map<string, number>();
  const lastApply = new Map<string, number>();

  const schedule = (hosts: 'all' | string[]): Promise<void> => {
    if (hosts === 'all') pendingAll = true;
    else for (const h of hosts) pendingHosts.add(h);
    planning ??= (async () => {
      try {
        while (!stopped && (pendingAll || pendingHosts.size > 0)) {
          const all = pendingAll;
          const names = [...pendingHosts];
          pendingAll = false;
          pendingHosts.clear();
          // A long-running process: whatever one plan meets is logged, never the end of watch.
          await planNow(all ? 'all' : names).catch((e: unknown) => log(`plan failed: ${describeError(e)}`));
        }
      } finally {
        planning = undefined;
      }
    })();
    return planning;
  };

  /**
   * Plans `hosts` now. An inventory that does not validate is thrown when `checking` one (the
   * start, a reload); later (a certificate file beside it removed) it is logged and the last
   * plan kept.
   */
  async function planNow(hosts: 'all' | string[], inv: Inventory = inventory, checking = false): Promise<RunPlan | undefined> {
    const started = Date.now();
    // Hosts come from event streams, which are opened only for hosts the run's --limit selects.
    const limited = hosts === 'all' ? request : { ...request, limit: hosts.join(':') };
    let fresh: RunPlan;
    try {
      fresh = await planRun(limited, {}, depsFor(inv), pool);
    } catch (e) {
      if (e instanceof InventoryError && checking) throw e;
      if (e instanceof InventoryError) state.inventory.ok = false;
      log(`plan failed, the last plan is kept: ${describeError(e)}`);
      return undefined;
    }
    // Stopping: a plan that was under way when SIGTERM came is dropped, not reported.
    if (stopped) return undefined;
    if (checking || !state.inventory.lastError) state.inventory.ok = true;
    const now = new Date();
    state.plan = mergePlans(state.plan, fresh, hosts === 'all' ? 'all' : new Set(hosts), new Set(inv.hosts.keys()));
    state.plannedAt = now;
    for (const h of fresh.hosts) {
      const stats = statsOf(state, h.host);
      if (h.failure) {
        // The next plan connects again (the host may be back by then).
        pool.forget?.(h.host);
        continue;
      }
      stats.lastPlanAt = now;
      const since = eventSince.get(h.host);
      if (since !== undefined) {
        const seconds = (now.getTime() - since) / 1000;
        state.eventToPlan.sumSeconds += seconds;
        state.eventToPlan.count += 1;
        state.eventToPlan.lastSeconds = seconds;
        eventSince.delete(h.host);
      }
    }
    for (const line of planLines(fresh, words)) log(line);
    log(`planned ${hosts === 'all' ? `all ${fresh.hosts.length} hosts` : hosts.join(', ')} in ${Date.now() - started} ms`);
    if (options.apply) await applyDrift(fresh).catch((e: unknown) => log(`apply failed: ${describeError(e)}`));
    return fresh;
  }

  async function applyDrift(fresh: RunPlan): Promise<void> {
    const now = Date.now();
    const due = fresh.hosts.filter((h) => hostApplies(h) && now - (lastApply.get(h.host) ?? 0) >= options.applyIntervalMs);
    const waiting = fresh.hosts.filter((h) => hostApplies(h) && !due.includes(h));
    for (const h of waiting) log(`${h.host}: drift, applied again no sooner than ${options.applyIntervalMs / 1000} s after the last apply`);
    if (due.length === 0) return;
    for (const h of due) lastApply.set(h.host, now);
    const release = await options.lock();
    let report;
    try {
      report = await applyPlan({ ...fresh, hosts: due }, pool, {}, { forks: request.forks, modules: MODULES, now: () => new Date() });
    } finally {
      await release();
    }
    for (const h of report.hosts) {
      if (h.host === CONTROLLER) continue;
      const a = state.applies.get(h.host) ?? { ok: 0, failed: 0 };
      if (h.error) a.failed += 1;
      else a.ok += 1;
      state.applies.set(h.host, a);
      const applied = h.actions.filter((x) => x.applied).length;
      log(`${h.host}: applied ${applied} action(s)${h.error ? `, then failed: ${h.error.step}: ${h.error.message}` : ''}`);
    }
    // What the hosts look like now (an apply's own events would re-plan them too; this does not wait for them).
    void schedule(due.map((h) => h.host));
  }

  // --- event streams, one per host that has one; reopened with backoff when they end.
  const streams = new Map<string, { sub?: EventSubscription; timer?: NodeJS.Timeout; backoffMs: number; opening: boolean }>();
  /** Incus/LXD servers of the current plan: hosts with an incus_trust plan (theirs or covered), and failed ones incus_trust would manage. */
  const streamHosts = (): string[] =>
    (state.plan?.hosts ?? [])
      .filter((h) => {
        if (!h.failure) return h.plans.some((p) => p.module === 'incus_trust') || h.covered.some((c) => c.module === 'incus_trust');
        const host = inventory.hosts.get(h.host);
        return host !== undefined && isTrustHost(host, inventory);
      })
      .map((h) => h.host);

  async function openStream(name: string): Promise<void> {
    const entry = streams.get(name) ?? { backoffMs: RECONNECT_FIRST_MS, opening: false };
    streams.set(name, entry);
    if (entry.opening || entry.sub || stopped) return;
    entry.opening = true;
    const stats = statsOf(state, name);
    try {
      const host = inventory.hosts.get(name);
      if (!host) return;
      const session: HostSession = await pool.session(await baseDeps.connectionSpec(host, inventory, request.transport));
      if (!session.events) {
        log(`${name}: no event stream (reached through \`incus query\`): re-planned every resync only`);
        return;
      }
      entry.sub = await session.events(
        'lifecycle',
        (e) => {
          if (stopped) return;
          stats.events += 1;
          if (!eventMatters(e)) return;
          const hosts = sharedWith(state.plan, name);
          for (const h of hosts) if (!eventSince.has(h)) eventSince.set(h, Date.now());
          log(`${name}: event ${e.metadata?.action ?? e.type}${e.metadata?.source ? ` ${e.metadata.source}` : ''}: re-planning ${hosts.join(', ')}`);
          void schedule(hosts);
        },
        (why) => {
          entry.sub = undefined;
          stats.streaming = false;
          if (stopped) return;
          log(`${name}: event stream ended (${why}): re-planning it and reconnecting`);
          pool.forget?.(name);
          void schedule([name]);
          retry(name, entry);
        },
      );
      stats.streaming = true;
      // What happened before the stream was open (since the plan that found the host, or while it
      // was closed) is read now: from here on, events cover it.
      void schedule([name]);
      entry.backoffMs = RECONNECT_FIRST_MS;
    } catch (e) {
      pool.forget?.(name);
      log(`${name}: cannot open the event stream: ${e instanceof TransportError ? e.message.replace(`${e.host}: `, '') : (e as Error).message}`);
      retry(name, entry);
    } finally {
      entry.opening = false;
    }
  }

  function retry(name: string, entry: { timer?: NodeJS.Timeout; backoffMs: number }): void {
    if (stopped || entry.timer) return;
    const wait = entry.backoffMs;
    entry.backoffMs = Math.min(entry.backoffMs * 2, RECONNECT_MAX_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      statsOf(state, name).reconnects += 1;
      void openStream(name);
    }, wait);
  }

  function syncStreams(): void {
    const wanted = new Set(streamHosts());
    for (const [name, entry] of streams) {
      if (wanted.has(name)) continue;
      entry.sub?.close();
      if (entry.timer) clearTimeout(entry.timer);
      streams.delete(name);
    }
    for (const name of wanted) if (!streams.has(name)) void openStream(name);
  }

  // --- the inventory: re-read when a file of it changes, or on SIGHUP.
  let watchers: FSWatcher[] = [];
  let reloadTimer: NodeJS.Timeout | undefined;
  const watchInventoryFiles = () => {
    for (const w of watchers) w.close();
    const names = new Map<string, Set<string>>();
    for (const f of inventory.files) {
      const set = names.get(dirname(f)) ?? new Set<string>();
      set.add(basename(f));
      names.set(dirname(f), set);
    }
    // Folders, not files: editors replace a file by renaming a new one over it.
    watchers = [...names.entries()].flatMap(([dir, files]) => {
      try {
        return [watchFiles(dir, (_event, file) => file && files.has(String(file)) && reloadSoon())];
      } catch {
        return [];
      }
    });
  };
  const reloadSoon = () => {
    if (reloadTimer) clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => void reload(), 200);
  };

  async function reload(): Promise<void> {
    let next: Inventory;
    try {
      next = await baseDeps.loadInventory(request.inventoryPaths ?? request.inventoryPath);
      await planning;
      await planNow('all', next, true);
    } catch (e) {
      state.inventory.ok = false;
      state.inventory.rejected += 1;
      const why = describeError(e);
      state.inventory.lastError = why;
      log(`the inventory on disk is refused, the last good one stays in use: ${why}`);
      return;
    }
    inventory = next;
    state.inventory.ok = true;
    state.inventory.reloads += 1;
    state.inventory.lastError = undefined;
    log(`inventory reloaded: ${inventory.hosts.size} hosts`);
    watchInventoryFiles();
    syncStreams();
  }

  // --- /metrics, /healthz, /plan
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const now = new Date();
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(renderWatchMetrics(state, now));
    } else if (path === '/healthz') {
      const ok = state.plan !== undefined;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'no plan yet\n');
    } else if (path === '/plan') {
      const report = currentReport(state, now);
      if (!report) res.writeHead(503, { 'content-type': 'text/plain' }).end('no plan yet\n');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(renderJsonReport(report, words));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('/metrics, /healthz, /plan\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new UsageError(`watch: cannot listen on ${options.listen.host}:${options.listen.port}: ${e.code ?? e.message}`)),
    );
    server.listen(options.listen.port, options.listen.host, resolve);
  });
  const bound = server.address() as { address: string; port: number };
  log(`serving /metrics, /healthz and /plan on http://${bound.address}:${bound.port}`);

  // --- start: the first full plan (it fails on an invalid inventory, as a run does), then the streams.
  try {
    await planNow('all', inventory, true);
  } catch (e) {
    await new Promise<void>((r) => server.close(() => r()));
    throw e;
  }
  syncStreams();
  watchInventoryFiles();
  const resync = setInterval(() => {
    log('resync: re-planning every host');
    void schedule('all');
  }, options.resyncMs);

  return {
    state,
    address: { host: bound.address, port: bound.port },
    reload: () => void reload(),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(resync);
      if (reloadTimer) clearTimeout(reloadTimer);
      for (const w of watchers) w.close();
      for (const entry of streams.values()) {
        entry.sub?.close();
        if (entry.timer) clearTimeout(entry.timer);
      }
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      await planning?.catch(() => undefined);
      await pool.closeAll();
    },
  };
}

function describeError(e: unknown): string {
  if (e instanceof InventoryError)
    return e.problems
      .filter((p) => p.severity === 'error')
      .map((p) => formatProblem(p))
      .join('; ');
  return e instanceof Error ? e.message : String(e);
}

/**
 * The log lines of a plan: for each host what `-q` says (drift, failures; the same words), and
 * "in sync" or "covered by" where `-q` says nothing.
 */
function planLines(plan: RunPlan, words: ReturnType<typeof reasonWords>): string[] {
  const at = new Date(plan.createdAt);
  return buildReport(plan, { mode: 'check', startedAt: at, finishedAt: at })
    .hosts.filter((h) => h.host !== CONTROLLER)
    .flatMap((h) => {
      const lines = quietLines(h, words);
      if (lines.length > 0) return lines;
      return [h.status === 'covered' ? `${h.host}: covered by ${h.coveredBy ?? '?'}` : `${h.host}: in sync`];
    });
}
