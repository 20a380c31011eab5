/**
 * What `reconcile watch` knows between events, as a value: the current plan of every host (each
 * host's latest plan merged into one RunPlan) and watch's own counters. Pure: the watcher
 * (watcher.ts) feeds it; /metrics, /plan and the log lines are rendered from it.
 */
import { buildReport, type RunReport } from '../engine/report.js';
import type { HostPlan, RunPlan } from '../plan/types.js';
import { escapeLabelValue, renderMetrics } from '../render/metrics-file.js';

export interface WatchHostStats {
  /** Lifecycle events seen from this host. */
  events: number;
  /** Event streams opened again after one ended. */
  reconnects: number;
  /** The event stream is open. */
  streaming: boolean;
  /** When this host was last read and planned without a failure. */
  lastPlanAt?: Date;
}

export interface WatchState {
  plan?: RunPlan;
  /** When `plan` was last changed. */
  plannedAt?: Date;
  hosts: Map<string, WatchHostStats>;
  /** From an event's arrival to the plan that includes it. */
  eventToPlan: { sumSeconds: number; count: number; lastSeconds?: number };
  inventory: { ok: boolean; reloads: number; rejected: number; lastError?: string };
  applies: Map<string, { ok: number; failed: number }>;
}

export function emptyWatchState(): WatchState {
  return { hosts: new Map(), eventToPlan: { sumSeconds: 0, count: 0 }, inventory: { ok: true, reloads: 0, rejected: 0 }, applies: new Map() };
}

export function statsOf(state: WatchState, host: string): WatchHostStats {
  let s = state.hosts.get(host);
  if (!s) {
    s = { events: 0, reconnects: 0, streaming: false };
    state.hosts.set(host, s);
  }
  return s;
}

/**
 * The current plan after `fresh` re-planned `replanned` hosts (all of them: `fresh` as it is).
 * Hosts of `fresh` replace theirs; the others keep their last plan; hosts that left the
 * inventory (absent from `keep`) are dropped. Order: `fresh`'s, then the kept ones by name.
 */
export function mergePlans(current: RunPlan | undefined, fresh: RunPlan, replanned: 'all' | ReadonlySet<string>, keep: ReadonlySet<string>): RunPlan {
  if (!current || replanned === 'all') return fresh;
  const freshHosts = new Set(fresh.hosts.map((h) => h.host));
  const kept = current.hosts.filter((h) => !freshHosts.has(h.host) && !replanned.has(h.host) && keep.has(h.host));
  const hosts: HostPlan[] = [...kept, ...fresh.hosts].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return { ...fresh, controller: fresh.controller.length > 0 ? fresh.controller : current.controller, hosts };
}

/** The hosts that share a trust store with `host` in the current plan (a cluster: its owner and the members it covers). */
export function sharedWith(plan: RunPlan | undefined, host: string): string[] {
  if (!plan) return [host];
  const me = plan.hosts.find((h) => h.host === host);
  const owner = me?.covered[0]?.by ?? host;
  const members = plan.hosts.filter((h) => h.host === owner || h.covered.some((c) => c.by === owner)).map((h) => h.host);
  return members.includes(host) ? members : [...members, host];
}

/** The current plan as the JSON report of a check (what /plan serves and /metrics is made of). */
export function currentReport(state: WatchState, now: Date): RunReport | undefined {
  if (!state.plan) return undefined;
  return buildReport(state.plan, { mode: 'check', startedAt: state.plannedAt ?? now, finishedAt: state.plannedAt ?? now });
}

/**
 * /metrics: the same families as --metrics-file (for the current plan), then watch's own.
 * Before the first plan, only watch's own.
 */
export function renderWatchMetrics(state: WatchState, now: Date): string {
  const report = currentReport(state, now);
  const lines: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
      lines.push(`${name}${l.length > 0 ? `{${l.join(',')}}` : ''} ${Number.isInteger(value) ? value : value.toFixed(6)}`);
    }
  };
  const hosts = [...state.hosts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  family(
    'reconcile_watch_events_total',
    'counter',
    'Lifecycle events received from a host.',
    hosts.map(([h, s]) => [{ host: h }, s.events]),
  );
  family(
    'reconcile_watch_reconnects_total',
    'counter',
    "Times a host's event stream was opened again after it ended.",
    hosts.map(([h, s]) => [{ host: h }, s.reconnects]),
  );
  family(
    'reconcile_watch_event_stream_up',
    'gauge',
    "1 while the host's event stream is open.",
    hosts.map(([h, s]) => [{ host: h }, s.streaming ? 1 : 0]),
  );
  family(
    'reconcile_watch_last_plan_timestamp_seconds',
    'gauge',
    'Unix time of the last plan of a host that read it without a failure.',
    hosts.filter(([, s]) => s.lastPlanAt).map(([h, s]) => [{ host: h }, s.lastPlanAt!.getTime() / 1000]),
  );
  // A summary without quantiles: rate(_sum)/rate(_count) is the mean time from an event to its plan.
  lines.push(
    '# HELP reconcile_watch_event_to_plan_seconds Time from an event to the plan that includes it.',
    '# TYPE reconcile_watch_event_to_plan_seconds summary',
    `reconcile_watch_event_to_plan_seconds_sum ${state.eventToPlan.sumSeconds.toFixed(6)}`,
    `reconcile_watch_event_to_plan_seconds_count ${state.eventToPlan.count}`,
  );
  if (state.eventToPlan.lastSeconds !== undefined) {
    family('reconcile_watch_event_to_plan_last_seconds', 'gauge', 'Time from the last event to its plan.', [[{}, state.eventToPlan.lastSeconds]]);
  }
  family('reconcile_watch_inventory_ok', 'gauge', '0 while the inventory on disk is refused (the last good one is in use).', [
    [{}, state.inventory.ok ? 1 : 0],
  ]);
  family('reconcile_watch_inventory_reloads_total', 'counter', 'Inventory reloads, by result.', [
    [{ result: 'ok' }, state.inventory.reloads],
    [{ result: 'rejected' }, state.inventory.rejected],
  ]);
  const applies = [...state.applies.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  family(
    'reconcile_watch_applies_total',
    'counter',
    'Applies of a host by --apply, by result.',
    applies.flatMap(([h, a]): [Record<string, string>, number][] => [
      [{ host: h, result: 'ok' }, a.ok],
      [{ host: h, result: 'failed' }, a.failed],
    ]),
  );
  const own = lines.join('\n') + '\n';
  return report ? renderMetrics(report) + own : own;
}
