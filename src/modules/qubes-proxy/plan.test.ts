import { QUBES_REASONS } from './reasons.js';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { DesiredQubesProxy, ObservedQubesProxy } from './model.js';
import { planQubesProxy, type PolicyFileActionData } from './plan.js';
import { managedProxies, renderPolicy } from './policy.js';

const ctx = { now: new Date('2026-01-01T00:00:00Z'), prune: false, warnDays: 30 };
const PATH = '/etc/qubes/policy.d/30-prometheus-proxy.policy';

const desired = (over: Partial<DesiredQubesProxy> = {}): DesiredQubesProxy => ({
  proxies: ['sys-net'],
  targets: [{ target: 'work', ports: [9100] }],
  autostart: false,
  proxyAddresses: {},
  policyDir: '/etc/qubes/policy.d',
  policyFile: '30-prometheus-proxy.policy',
  policyPath: PATH,
  ...over,
});

/** dom0 after a successful apply of `d`: the rendered file, 0664 root:qubes, services on. */
const inSync = (d: DesiredQubesProxy): ObservedQubesProxy => ({
  policy: { path: d.policyPath, content: renderPolicy(d), mode: '664', owner: 'root', group: 'qubes' },
  services: d.proxies.map((vm) => ({ vm, enabled: true })),
});

describe('planQubesProxy', () => {
  test('a fresh dom0: add the file and enable the service', () => {
    const plan = planQubesProxy(desired(), { policy: { path: PATH }, services: [{ vm: 'sys-net' }] }, ctx);
    expect(plan.errors).toEqual([]);
    expect(plan.actions.map((a) => `${a.action} ${a.kind} ${a.name} (${QUBES_REASONS[a.reason](a.detail)})`)).toEqual([
      `add qubes policy file ${PATH} (not on dom0)`,
      'add qubes service sys-net: prometheus-qubes-proxy (not enabled in the VM)',
    ]);
    expect((plan.actions[0]!.payload as PolicyFileActionData).exists).toBe(false);
    expect(plan.actions[0]!.diff).toMatch(/^--- \/dev\/null\n\+\+\+ .* \(planned\)\n@@ -0,0 \+1,9 @@\n/);
  });

  test('a proxy VM the inventory dropped: the policy loses its lines, then its service is disabled', () => {
    const before = desired({ proxies: ['sys-firewall', 'sys-net'] });
    expect(managedProxies(renderPolicy(before))).toEqual(['sys-firewall', 'sys-net']);
    expect(managedProxies('# a file someone else wrote\nruddo.PrometheusDiscover * x @adminvm allow\n')).toEqual([]);
    const observed: ObservedQubesProxy = { ...inSync(before), services: [{ vm: 'sys-net', enabled: true }], retired: [{ vm: 'sys-firewall', enabled: true }] };
    const plan = planQubesProxy(desired(), observed, ctx);
    expect(plan.actions.map((a) => `${a.action} ${a.kind} ${a.name} (${QUBES_REASONS[a.reason](a.detail)})`)).toEqual([
      `update qubes policy file ${PATH} (content differs from the inventory)`,
      'remove qubes service sys-firewall: prometheus-qubes-proxy (no longer a proxy VM in the inventory: its proxy service is disabled)',
    ]);
    expect(plan.actions[1]!.payload).toEqual({ type: 'proxy-service', vm: 'sys-firewall', enable: false });
    // Off already, or gone from dom0: nothing to do (a gone one is said).
    expect(
      planQubesProxy(desired(), { ...observed, policy: inSync(desired()).policy, retired: [{ vm: 'sys-firewall', enabled: false }] }, ctx).actions,
    ).toEqual([]);
    expect(
      planQubesProxy(desired(), { ...observed, policy: inSync(desired()).policy, retired: [{ vm: 'old', error: 'no such domain' }] }, ctx).warnings,
    ).toEqual(['old was a proxy VM of this dom0 and is no longer in the inventory, but its service could not be read (no such domain)']);
  });

  test('in sync: nothing to do', () => {
    expect(planQubesProxy(desired(), inSync(desired()), ctx)).toEqual({ module: 'qubes_prometheus_proxy', actions: [], errors: [], warnings: [] });
  });

  test('a hand edit is planned back, with its diff; mode and owner drift alone is an update without diff', () => {
    const observed = inSync(desired());
    observed.policy.content = observed.policy.content!.replace(
      '\n\nruddo.PrometheusDiscover',
      '\nruddo.PrometheusProxy +22 sys-net work allow\n\nruddo.PrometheusDiscover',
    );
    const edited = planQubesProxy(desired(), observed, ctx);
    expect(edited.actions).toHaveLength(1);
    expect(edited.actions[0]!.changes).toEqual([{ field: 'rules', before: 4, after: 3 }]);
    expect(edited.actions[0]!.diff).toContain('\n-ruddo.PrometheusProxy +22 sys-net work allow\n');

    const loose = inSync(desired());
    loose.policy = { ...loose.policy, mode: '666', group: 'root' };
    const fixed = planQubesProxy(desired(), loose, ctx);
    expect(fixed.actions.map((a) => [a.action, QUBES_REASONS[a.reason](a.detail), a.changes, a.diff])).toEqual([
      [
        'update',
        'mode and owner differ',
        [
          { field: 'mode', before: '0666', after: '0664' },
          { field: 'owner', before: 'root:root', after: 'root:qubes' },
        ],
        undefined,
      ],
    ]);
  });

  test('a disabled service is turned on; an unknown proxy VM is a plan error', () => {
    const plan = planQubesProxy(
      desired({ proxies: ['sys-net', 'sys-nett'] }),
      {
        ...inSync(desired({ proxies: ['sys-net', 'sys-nett'] })),
        services: [
          { vm: 'sys-net', enabled: false },
          { vm: 'sys-nett', error: "read Qubes services of sys-nett: qvm-service: error: no such domain: 'sys-nett'" },
        ],
      },
      ctx,
    );
    expect(plan.actions.map((a) => [a.action, a.name, a.changes])).toEqual([
      ['update', 'sys-net: prometheus-qubes-proxy', [{ field: 'enabled', before: false, after: true }]],
    ]);
    expect(plan.errors).toEqual(["read Qubes services of sys-nett: qvm-service: error: no such domain: 'sys-nett'"]);
  });

  test('property: after applying any plan, planning again gives no action', () => {
    const vm = fc.constantFrom('work', 'personal', 'vault', '@tag:mon');
    const desiredArb = fc.record({
      proxies: fc.uniqueArray(fc.constantFrom('sys-net', 'sys-firewall', 'monitoring'), { minLength: 1, maxLength: 3 }).map((p) => p.sort()),
      targets: fc.uniqueArray(
        fc.record({
          target: vm,
          ports: fc.uniqueArray(fc.integer({ min: 1025, max: 65535 }), { minLength: 1, maxLength: 3 }).map((p) => p.sort((a, b) => a - b)),
        }),
        {
          selector: (t) => t.target,
          minLength: 1,
          maxLength: 4,
        },
      ),
      autostart: fc.boolean(),
    });
    const observedArb = fc.record({
      content: fc.option(fc.string(), { nil: undefined }),
      mode: fc.constantFrom('664', '600', '644'),
      group: fc.constantFrom('qubes', 'root'),
      enabled: fc.constantFrom(true, false, undefined),
    });
    fc.assert(
      fc.property(desiredArb, observedArb, (partial, o) => {
        const d = desired(partial);
        const before: ObservedQubesProxy = {
          policy: o.content === undefined ? { path: PATH } : { path: PATH, content: o.content, mode: o.mode, owner: 'root', group: o.group },
          services: d.proxies.map((p) => ({ vm: p, enabled: o.enabled })),
        };
        const plan = planQubesProxy(d, before, ctx);
        expect(plan.errors).toEqual([]);
        // Applying: the file as planned (0664 root:qubes), every planned service on.
        const file = plan.actions.find((a) => a.kind === 'qubes policy file');
        const after: ObservedQubesProxy = {
          policy: file ? { path: PATH, content: (file.payload as PolicyFileActionData).content, mode: '664', owner: 'root', group: 'qubes' } : before.policy,
          services: before.services.map((s) => (plan.actions.some((a) => a.name === `${s.vm}: prometheus-qubes-proxy`) ? { vm: s.vm, enabled: true } : s)),
        };
        expect(planQubesProxy(d, after, ctx).actions).toEqual([]);
      }),
    );
  });
});
