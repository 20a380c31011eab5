import { SCRAPE_REASONS } from './reasons.js';
import { describe, expect, it } from 'vitest';
import type { Inventory, InventoryHost, VarDefinition } from '../../inventory/model.js';
import { generateSelfSigned } from '../../pki/generate.js';
import type { DesiredContext } from '../types.js';
import { desiredScrape } from './desired.js';
import type { ObservedScrape, ScrapeFacts } from './model.js';
import { planScrape } from './plan.js';
import { redactSecretLine } from '../../render/redact.js';
import { unifiedDiff } from '../../render/unified-diff.js';

const FILE = '/inv/hosts.yaml';
const NOW = new Date('2030-01-01T00:00:00Z');
const def = (value: unknown, name: string): VarDefinition => ({
  value,
  location: { file: FILE, line: 3, column: 5 },
  valuePath: `all.vars.${name}`,
  nested: new Map(),
});
const host = (name: string, groups: string[], vars: Record<string, unknown>): InventoryHost => ({
  name,
  groups: ['all', ...groups],
  vars: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, def(v, k)])),
});
const metrics = [{ name: 'prom-metrics', certificate_file: 'pki/m.crt', key_file: 'pki/m.key' }];
const incus1 = host('incus1', ['incus'], { incus_metrics_certificates: metrics });
const prom1 = host('prom1', ['prometheus'], { incus_metrics_certificates: metrics, prometheus_reload_url: 'http://127.0.0.1:9099/-/reload' });
const groups = new Map(
  ['all', 'incus', 'prometheus'].map((g) => [g, { name: g, parents: [], children: [], hosts: [], vars: {}, fileVars: {}, depth: g === 'all' ? 0 : 1 }]),
);
const inventory: Inventory = { source: FILE, baseDir: '/inv', files: [FILE], hosts: new Map([incus1, prom1].map((h) => [h.name, h])), groups };
const facts: ScrapeFacts = {
  endpoints: [{ host: 'incus1', reachedAt: '127.0.0.9', serverName: 'incus1', httpsAddress: '127.0.0.9:8443', members: [] }],
  failures: [],
};
const ctx = (files: Record<string, string>): DesiredContext => ({
  inventory,
  now: NOW,
  observedRun: facts,
  readInventoryFile: (rel) => (files[rel] === undefined ? undefined : Buffer.from(files[rel]!)),
});
const planCtx = { now: NOW, prune: false, warnDays: 30 };
const summary = (p: ReturnType<typeof planScrape>) => p.actions.map((a) => `${a.action} ${a.kind} ${a.name} (${SCRAPE_REASONS[a.reason](a.detail)})`);

describe('prometheus_scrape plan', () => {
  it('check mode before the pair exists: says what would be generated and deployed', () => {
    const d = desiredScrape(prom1, ctx({}));
    expect(d.problems).toEqual([]);
    const plan = planScrape(d.desired!, { pairFiles: [], promtool: true }, planCtx);
    expect(summary(plan)).toEqual([
      'add prometheus metrics pair /etc/prometheus/incus-metrics/prom-metrics-(known after apply).crt (key pair to be generated)',
      'add prometheus config /etc/prometheus/prometheus.yml (missing)',
      'update deployment record /inv/pki/m.crt.deployed (records that prom1 runs with this certificate, so that the previous one can be removed from Incus)',
    ]);
    expect(plan.warnings[0]).toMatch(/^incus1: incus_server_name is not set.*MITM risk/);
  });

  it('deployed and recorded: nothing to do; a new certificate is a rotation that removes the old files after the reload', async () => {
    const a = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 100, now: NOW, type: 'metrics' });
    const fa = a.info.fingerprint;
    const d = desiredScrape(prom1, ctx({ 'pki/m.crt': a.certificatePem, 'pki/m.crt.deployed': `prom1 ${fa}\n` })).desired!;
    expect(d.configText).toContain(`cert_file: /etc/prometheus/incus-metrics/prom-metrics-${fa.slice(0, 12)}.crt`);
    expect(d.configText).toContain('- 127.0.0.9:8443');
    const inSync: ObservedScrape = {
      configText: d.configText,
      certificateFingerprint: fa,
      key: { mode: '600', owner: 'prometheus', group: 'prometheus' },
      pairFiles: [d.pair!.certPath, d.pair!.keyPath],
      promtool: true,
    };
    expect(summary(planScrape(d, inSync, planCtx))).toEqual([]);
    expect(summary(planScrape(d, { ...inSync, reloadConfigSuccess: true }, planCtx))).toEqual([]);
    expect(summary(planScrape(d, { ...inSync, reloadConfigSuccess: false }, planCtx))).toEqual([
      'update prometheus config /etc/prometheus/prometheus.yml (Prometheus refused it at its last reload)',
    ]);
    // The file is right but Prometheus runs another configuration (a reload that failed): reload again.
    expect(summary(planScrape(d, { ...inSync, loadedConfig: 'scrape_configs: []\n' }, planCtx))).toEqual([
      'update prometheus config /etc/prometheus/prometheus.yml (Prometheus has not loaded it (a reload failed or was cut short): written and reloaded again)',
    ]);
    expect(summary(planScrape(d, { ...inSync, loadedConfig: `tls_config:\n  cert_file: ${d.pair!.certPath}\n` }, planCtx))).toEqual([]);
    expect(summary(planScrape(d, { ...inSync, key: { mode: '644', owner: 'root', group: 'root' } }, planCtx))).toEqual([
      `update prometheus metrics key ${d.pair!.keyPath} (mode or owner differ)`,
    ]);

    // Check mode once it is due (100 days, rotated 150 days before): a new pair is to be generated.
    const dueEntry = [{ ...metrics[0], rotate_before_days: 150, validity_days: 300 }];
    const promDue = host('prom1', ['prometheus'], { incus_metrics_certificates: dueEntry });
    const dDue = desiredScrape(promDue, ctx({ 'pki/m.crt': a.certificatePem, 'pki/m.crt.deployed': `prom1 ${fa}\n` })).desired!;
    expect(summary(planScrape(dDue, inSync, planCtx))[0]).toBe(
      'rotate prometheus metrics pair /etc/prometheus/incus-metrics/prom-metrics-(known after apply).crt (key pair to be generated)',
    );

    const b = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 100, now: NOW, type: 'metrics' });
    const d2 = desiredScrape(
      prom1,
      ctx({ 'pki/m.crt': b.certificatePem, 'pki/m.crt.previous': a.certificatePem, 'pki/m.crt.deployed': `prom1 ${fa}\n` }),
    ).desired!;
    const plan = planScrape(d2, { ...inSync, certificateFingerprint: undefined, key: undefined }, planCtx);
    expect(summary(plan)).toEqual([
      `rotate prometheus metrics pair ${d2.pair!.certPath} (new certificate; the old pair stays until Prometheus reloaded)`,
      'update prometheus config /etc/prometheus/prometheus.yml (content differs)',
      `remove prometheus metrics pair ${d.pair!.certPath} (no longer used (removed after Prometheus reloaded))`,
      `remove prometheus metrics pair ${d.pair!.keyPath} (no longer used (removed after Prometheus reloaded))`,
      'update deployment record /inv/pki/m.crt.deployed (records that prom1 runs with this certificate, so that the previous one can be removed from Incus)',
    ]);
    expect(JSON.stringify(plan)).not.toContain('PRIVATE KEY');
  });

  it('hosts outside the Prometheus group, or without a metrics certificate, have nothing to reconcile (a play may select all)', () => {
    expect(desiredScrape(incus1, ctx({}))).toEqual({ problems: [] });
    const lonely = host('prom2', ['prometheus'], {});
    const alone: Inventory = { ...inventory, hosts: new Map([['prom2', lonely]]) };
    expect(desiredScrape(lonely, { ...ctx({}), inventory: alone })).toEqual({ problems: [] });
  });

  it("an Incus host that cannot be read fails this host's plan instead of dropping its target", () => {
    const d = desiredScrape(prom1, {
      ...ctx({}),
      observedRun: { endpoints: [], failures: [{ host: 'incus1', message: 'incus1: connect: refused' }] },
    }).desired!;
    expect(planScrape(d, { pairFiles: [], promtool: true }, planCtx).errors).toEqual(['cannot read the metrics endpoint of incus1: connect: refused']);
  });
});

describe('the configuration diff', () => {
  it('is a unified diff that never shows a password or a token, from the host nor from the inventory', () => {
    const before = 'scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: prom\n      password: hunter2\n    bearer_token: "abc.def"\n';
    const after =
      'scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: prom\n      password: s3cret\n    authorization:\n      credentials: xyz\n      credentials_file: /etc/prometheus/token\n';
    const diff = unifiedDiff(before, after, { fromLabel: 'prometheus.yml', toLabel: 'prometheus.yml (planned)', show: redactSecretLine });
    expect(diff).toBe(
      [
        '--- prometheus.yml',
        '+++ prometheus.yml (planned)',
        '@@ -2,5 +2,7 @@',
        '   - job_name: node',
        '     basic_auth:',
        '       username: prom',
        '-      password: (redacted)',
        '-    bearer_token: (redacted)',
        '+      password: (redacted)',
        '+    authorization:',
        '+      credentials: (redacted)',
        '+      credentials_file: /etc/prometheus/token',
        '',
      ].join('\n'),
    );
    for (const secret of ['hunter2', 'abc.def', 's3cret', 'xyz']) expect(diff).not.toContain(secret);
  });
});
