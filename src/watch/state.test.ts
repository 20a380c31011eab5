import { describe, expect, it } from 'vitest';
import type { HostPlan, RunPlan } from '../plan/types.js';
import { parseDuration, parseListen } from '../cli/commands/watch.js';
import { emptyWatchState, mergePlans, renderWatchMetrics, sharedWith, statsOf } from './state.js';
import { eventMatters } from './watcher.js';

const host = (name: string, extra: Partial<HostPlan> = {}): HostPlan => ({ host: name, plans: [], covered: [], warnings: [], certificates: [], ...extra });
const plan = (hosts: HostPlan[], createdAt = '2026-11-29T00:00:00.000Z'): RunPlan => ({
  format: 'reconcile-plan',
  formatVersion: 1,
  tool: { name: 'reconcile', version: '0.1.0' },
  createdAt,
  inventory: { path: 'hosts.yaml', digest: 'd', files: [] },
  playbook: 'site.yaml',
  options: { prune: false, warnDays: 30 },
  controller: [],
  hosts,
});

describe('watch state', () => {
  it('a host re-planned replaces its plan; the others keep theirs; hosts gone from the inventory leave', () => {
    const current = plan([host('a'), host('b'), host('c')]);
    const fresh = plan([host('b', { warnings: ['new'] })]);
    const merged = mergePlans(current, fresh, new Set(['b']), new Set(['a', 'b']));
    expect(merged.hosts.map((h) => `${h.host}${h.warnings.length ? '*' : ''}`)).toEqual(['a', 'b*']);
    expect(mergePlans(current, fresh, 'all', new Set(['a', 'b', 'c'])).hosts.map((h) => h.host)).toEqual(['b']);
  });

  it('an event on a cluster member re-plans the whole cluster once: its owner and the members it covers', () => {
    const p = plan([
      host('c1'),
      host('c2', { covered: [{ module: 'incus_trust', by: 'c1' }] }),
      host('c3', { covered: [{ module: 'incus_trust', by: 'c1' }] }),
      host('s1'),
    ]);
    expect(sharedWith(p, 'c3')).toEqual(['c1', 'c2', 'c3']);
    expect(sharedWith(p, 'c1')).toEqual(['c1', 'c2', 'c3']);
    expect(sharedWith(p, 's1')).toEqual(['s1']);
    expect(sharedWith(undefined, 'x')).toEqual(['x']);
  });

  it("/metrics: the run's families for the current plan, then watch's own", () => {
    const state = emptyWatchState();
    expect(renderWatchMetrics(state, new Date())).not.toContain('reconcile_host_status');
    state.plan = plan([host('a', { failure: { step: 'connect', message: 'refused', unreachable: true } })]);
    statsOf(state, 'a').events = 3;
    state.eventToPlan = { sumSeconds: 0.25, count: 2, lastSeconds: 0.1 };
    state.inventory.ok = false;
    const text = renderWatchMetrics(state, new Date());
    expect(text).toContain('reconcile_host_status{inventory="hosts.yaml",host="a",status="unreachable"} 1');
    expect(text).toContain('reconcile_watch_events_total{host="a"} 3');
    expect(text).toContain(
      '# TYPE reconcile_watch_event_to_plan_seconds summary\nreconcile_watch_event_to_plan_seconds_sum 0.250000\nreconcile_watch_event_to_plan_seconds_count 2\n',
    );
    expect(text).toContain('reconcile_watch_inventory_ok 0');
  });

  it('only lifecycle events that can change a plan re-plan a host', () => {
    expect(eventMatters({ type: 'lifecycle', metadata: { action: 'certificate-created' } })).toBe(true);
    expect(eventMatters({ type: 'lifecycle', metadata: { action: 'config-updated' } })).toBe(true);
    expect(eventMatters({ type: 'lifecycle', metadata: { action: 'project-created' } })).toBe(false);
    expect(eventMatters({ type: 'logging', metadata: { action: 'certificate-created' } })).toBe(false);
  });

  it('reads --resync and --listen, refusing what it cannot', () => {
    expect(parseDuration('--resync', '15m')).toBe(900_000);
    expect(parseDuration('--resync', '90')).toBe(90_000);
    expect(parseDuration('--resync', '250ms')).toBe(250);
    expect(() => parseDuration('--resync', '15 minutes')).toThrow(
      'watch: --resync must be a duration such as 90s, 15m or 1h (at least 100ms), not "15 minutes"',
    );
    expect(parseListen('[::1]:9814')).toEqual({ host: '::1', port: 9814 });
    expect(() => parseListen('9814')).toThrow('watch: --listen must be ADDRESS:PORT');
  });
});
