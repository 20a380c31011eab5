import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { InventoryHost, VarDefinition } from '../../inventory/model.js';
import type { SourceLocation } from '../../errors.js';
import { desiredQubesProxy, qubeNameProblem } from './desired.js';
import { renderPolicy } from './policy.js';
import { checkPolicySyntax } from './policy-syntax.js';
import type { DesiredQubesProxy } from './model.js';

const at = (line: number, column = 5): SourceLocation => ({ file: 'inventory.yaml', line, column });

/** A dom0 host whose qubes_prometheus_proxy is `value`, with positions for the given sub-paths. */
function dom0(value: unknown, nested: Record<string, SourceLocation> = {}, extra: Record<string, VarDefinition> = {}): InventoryHost {
  return {
    name: 'dom0',
    groups: ['all', 'qubes'],
    vars: {
      qubes_prometheus_proxy: {
        value,
        location: at(3, 5),
        valuePath: 'all.children.qubes.hosts.dom0.qubes_prometheus_proxy',
        nested: new Map(Object.entries(nested)),
      },
      ...extra,
    },
  };
}

describe('desired', () => {
  test('a host without the variable has nothing to reconcile', () => {
    expect(desiredQubesProxy({ name: 'web', groups: ['all'], vars: {} })).toEqual({ problems: [] });
  });

  test('defaults, sorting and merged ports', () => {
    const r = desiredQubesProxy(
      dom0({
        proxy: 'sys-net',
        targets: [
          { vm: 'work', ports: [9101, 9100] },
          { vm: '@tag:monitored', port: 9100 },
          { vm: 'work', port: 9100 },
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.desired).toEqual({
      proxies: ['sys-net'],
      targets: [
        { target: '@tag:monitored', ports: [9100] },
        { target: 'work', ports: [9100, 9101] },
      ],
      autostart: false,
      proxyAddresses: {},
      policyDir: '/etc/qubes/policy.d',
      policyFile: '30-prometheus-proxy.policy',
      policyPath: '/etc/qubes/policy.d/30-prometheus-proxy.policy',
    });
  });

  test('every problem at once, each with file:line:column and value path', () => {
    const host = dom0(
      {
        proxy: ['sys-net', '1bad'],
        targets: [
          { vm: 'work', ports: [80, 9100] },
          { vm: '@anyvm', port: 9100 },
          { vm: 'my.vm', port: 9100 },
          { vm: 'work-dm', port: 70000 },
        ],
        autostart: 'yes',
        policy_file: '30-Prometheus.policy',
        colour: 'red',
      },
      {
        '.proxy[1]': at(4, 23),
        '.targets[0].ports[0]': at(6, 31),
        '.targets[1].vm': at(7, 13),
        '.targets[2].vm': at(8, 13),
        '.targets[3].vm': at(9, 13),
        '.targets[3]': at(9, 11),
        '.autostart': at(10, 16),
        '.policy_file': at(11, 18),
        'key:.colour': at(12, 5),
      },
      { qubes_policy_dir: { value: 'relative/dir', location: at(14, 23), valuePath: 'all.children.qubes.hosts.dom0.qubes_policy_dir', nested: new Map() } },
    );
    const r = desiredQubesProxy(host);
    expect(r.desired).toBeUndefined();
    const lines = r.problems.map(
      (p) => `${p.location!.line}:${p.location!.column} ${p.valuePath!.replace('all.children.qubes.hosts.dom0.', '')}: ${p.message}`,
    );
    expect(lines).toEqual([
      '12:5 qubes_prometheus_proxy.colour: unknown key "colour" (known: proxy, targets, autostart, policy_file, proxy_addresses)',
      '4:23 qubes_prometheus_proxy.proxy[1]: VM name "1bad" must start with a letter',
      '6:31 qubes_prometheus_proxy.targets[0].ports[0]: 80 is not a port in 1025–65535 (prometheus-qubes-proxy refuses others)',
      '7:13 qubes_prometheus_proxy.targets[1].vm: "@anyvm": only VM names and "@tag:NAME" can be scraped through the proxy',
      '8:13 qubes_prometheus_proxy.targets[2].vm: VM name "my.vm" holds a ".": prometheus-qubes-proxy would call "my" instead',
      '9:13 qubes_prometheus_proxy.targets[3].vm: VM name "work-dm" cannot end with "-dm" (reserved for device-model domains)',
      '9:11 qubes_prometheus_proxy.targets[3].port: 70000 is not a port in 1025–65535 (prometheus-qubes-proxy refuses others)',
      '10:16 qubes_prometheus_proxy.autostart: must be true or false',
      '11:18 qubes_prometheus_proxy.policy_file: policy file name "30-Prometheus.policy" may only hold 0-9, a-z, "_", "." and "-" (qrexec denies every call otherwise)',
      '14:23 qubes_policy_dir: must be an absolute folder path, e.g. /etc/qubes/policy.d',
    ]);
    expect(r.problems.every((p) => p.location?.file === 'inventory.yaml' && p.severity === 'error')).toBe(true);
  });

  test('Qubes VM name rules (qubes-core-admin validate_name)', () => {
    expect(qubeNameProblem('sys-net')).toBeUndefined();
    expect(qubeNameProblem('a'.repeat(31))).toBeUndefined();
    expect(qubeNameProblem('a'.repeat(32))).toMatch(/longer than 31/);
    expect(qubeNameProblem('none')).toMatch(/reserved/);
    expect(qubeNameProblem('default')).toMatch(/reserved/);
    expect(qubeNameProblem('my vm')).toMatch(/may only hold/);
    expect(qubeNameProblem('')).toMatch(/empty/);
  });

  test('policy file must end in .policy and not start with a dot', () => {
    for (const [name, why] of [
      ['prometheus.conf', /must end in ".policy"/],
      ['.hidden.policy', /ignored by qrexec/],
    ] as const) {
      const r = desiredQubesProxy(dom0({ proxy: 'sys-net', targets: [{ vm: 'work', port: 9100 }], policy_file: name }));
      expect(r.problems.map((p) => p.message)).toEqual([expect.stringMatching(why)]);
    }
  });
});

const desired = (over: Partial<DesiredQubesProxy> = {}): DesiredQubesProxy => ({
  proxies: ['sys-net'],
  targets: [{ target: 'work', ports: [9100] }],
  autostart: false,
  proxyAddresses: {},
  policyDir: '/etc/qubes/policy.d',
  policyFile: '30-prometheus-proxy.policy',
  policyPath: '/etc/qubes/policy.d/30-prometheus-proxy.policy',
  ...over,
});

describe('renderPolicy', () => {
  test('the whole file: header, one line per proxy × target × port, discovery, closing deny', () => {
    const text = renderPolicy(
      desired({
        proxies: ['sys-net', 'sys-firewall'],
        targets: [
          { target: 'work', ports: [9100, 10000] },
          { target: '@tag:monitored', ports: [9100] },
        ],
        autostart: true,
      }),
    );
    expect(text).toBe(
      [
        '# Managed by reconcile (qubes_prometheus_proxy): edits here are replaced on its next apply.',
        '# Lets prometheus-qubes-proxy reach the exporters listed in the inventory, and nothing else.',
        '# Format: SERVICE +ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE] (argument = exporter port).',
        '',
        'ruddo.PrometheusProxy +9100 sys-firewall @tag:monitored allow autostart=yes',
        'ruddo.PrometheusProxy +9100 sys-firewall work allow autostart=yes',
        'ruddo.PrometheusProxy +10000 sys-firewall work allow autostart=yes',
        'ruddo.PrometheusProxy +9100 sys-net @tag:monitored allow autostart=yes',
        'ruddo.PrometheusProxy +9100 sys-net work allow autostart=yes',
        'ruddo.PrometheusProxy +10000 sys-net work allow autostart=yes',
        '',
        'ruddo.PrometheusDiscover * sys-firewall @adminvm allow',
        'ruddo.PrometheusDiscover * sys-net @adminvm allow',
        '',
        'ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no',
        '',
      ].join('\n'),
    );
    expect(checkPolicySyntax(text)).toEqual([]);
  });

  test('stable: the order of the inventory does not change a byte', () => {
    const vm = fc.constantFrom('work', 'personal', 'vault', '@tag:mon', 'sys-usb');
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ target: vm, ports: fc.uniqueArray(fc.integer({ min: 1025, max: 65535 }), { minLength: 1, maxLength: 3 }) }), {
          selector: (t) => t.target,
          minLength: 1,
          maxLength: 5,
        }),
        (targets) => {
          const a = renderPolicy(desired({ targets }));
          const b = renderPolicy(desired({ targets: [...targets].reverse().map((t) => ({ ...t, ports: [...t.ports].reverse() })) }));
          expect(a).toBe(b);
          expect(checkPolicySyntax(a)).toEqual([]);
        },
      ),
    );
  });
});

describe('checkPolicySyntax', () => {
  test.each([
    ['ruddo.PrometheusProxy +9100 sys-net work', 'wrong number of fields: 4 (SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...])'],
    ['ruddo.PrometheusProxy 9100 sys-net work allow', 'argument "9100" does not start with +'],
    ['ruddo.Prometheus$Proxy +9100 sys-net work allow', 'service "ruddo.Prometheus$Proxy" contains invalid characters'],
    ['* +9100 sys-net work allow', 'only * argument allowed for * service'],
    ['ruddo.PrometheusProxy +9100 @anyvmx work allow', 'invalid source token: "@anyvmx"'],
    ['ruddo.PrometheusProxy +9100 sys-net @tag: allow', 'invalid empty @tag: token in target: "@tag:"'],
    ['ruddo.PrometheusProxy +9100 sys-net work permit', 'invalid action: permit (allow, deny or ask)'],
    ['ruddo.PrometheusProxy +9100 sys-net work allow autostart', 'invalid action parameter syntax: "autostart" (PARAM=VALUE)'],
    ['ruddo.PrometheusProxy +9100 sys-net work allow autostart=maybe', 'autostart= must be yes or no, got "maybe"'],
    ['ruddo.PrometheusProxy * @anyvm @anyvm deny autostart=no', 'invalid parameter for action deny: autostart'],
    ['ruddo.PrometheusProxy +9100 sys-net work allow notify=no notify=yes', 'parameter given twice: notify'],
    ['ruddo.PrometheusProxy +9100 sys-net @default allow', 'allow action for @default rule must specify target= option'],
    ['!include', '!include takes 1 parameter(s), got 0'],
  ])('%s', (line, message) => {
    expect(checkPolicySyntax(`# comment\n\n${line}\n`)).toEqual([{ line: 3, message }]);
  });
});
