/**
 * The engine's own rules, with in-memory stages: shared scopes planned once (covered), a failing
 * host stops only its own actions, statuses and exit codes. The real daemons are in test/e2e.
 */
import { describe, expect, it } from 'vitest';
import { TransportError, UsageError } from '../errors.js';
import type { Inventory, InventoryHost } from '../inventory/model.js';
import type { Action, ModulePlan, ReconcileModule } from '../modules/types.js';
import type { HostSession } from '../transport/types.js';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { runPlaybook, type EngineDeps, type RunRequest } from './run.js';

const reportSchema = JSON.parse(readFileSync(new URL('../../schema/report.schema.json', import.meta.url), 'utf8'));
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(reportSchema);
/** Every report these tests produce is also checked against schema/report.schema.json. */
function schemaErrors(report: unknown): string {
  return validateReport(report) ? '' : JSON.stringify(validateReport.errors);
}

/** A module whose desired state is a list of item names (host var `items`) in a scope (`scope`). */
function itemsModule(log: string[], failOn?: string): ReconcileModule<{ items: string[] }, { scope?: string }> {
  return {
    name: 'incus_trust',
    desired: (host) => (host.vars.items ? { desired: { items: host.vars.items.value as string[] }, problems: [] } : { problems: [] }),
    observe: async (session) => ({ scope: (session as unknown as { scope?: string }).scope }),
    plan: (desired, observed): ModulePlan => ({
      module: 'incus_trust',
      actions: desired.items.map((name): Action => ({ action: 'add', kind: 'item', name, reason: 'missing', applies: true })),
      errors: [],
      warnings: [],
      ...(observed.scope ? { scope: observed.scope } : {}),
    }),
    apply: async (session, plan, hooks) => {
      for (const a of plan.actions) {
        hooks.actionStarted(a);
        if (a.name === failOn) throw new TransportError(session.spec.host, `add item ${a.name}`, 'boom');
        log.push(`${session.spec.host} ${a.name}`);
        hooks.actionApplied(a);
      }
    },
  };
}

function host(name: string, vars: Record<string, unknown>): InventoryHost {
  return {
    name,
    groups: ['all'],
    vars: Object.fromEntries(Object.entries(vars).map(([k, value]) => [k, { value, location: { file: 'i', line: 1, column: 1 }, valuePath: k, nested: new Map() }])),
  };
}

function deps(hosts: InventoryHost[], module: ReconcileModule<any, any>, scopes: Record<string, string>, down: string[] = []): EngineDeps {
  const inventory: Inventory = { source: 'inv', baseDir: '.', files: [], hosts: new Map(hosts.map((h) => [h.name, h])), groups: new Map() };
  return {
    loadInventory: async () => inventory,
    validateInventory: () => [],
    loadPlaybook: async () => ({ plays: [{ name: 'all', hosts: 'all', reconcile: ['incus_trust'] }], problems: [] }),
    selectHosts: (inv, pattern) => ({ hosts: [...inv.hosts.keys()].filter((h) => pattern === 'all' || pattern.split(':').includes(h)), warnings: [] }),
    connectionSpec: (h) => ({ host: h.name, connection: 'local', address: h.name, port: 22, user: 'root', jumps: [], become: false, incusSocket: '' }),
    connect: async (spec) => {
      if (down.includes(spec.host)) throw new TransportError(spec.host, 'connect', 'connection refused', true);
      return { spec, scope: scopes[spec.host], close: async () => undefined } as unknown as HostSession;
    },
    readInventoryFile: () => undefined,
    modules: { incus_trust: module, qubes_prometheus_proxy: module, prometheus_scrape: module },
  };
}

const request = (check: boolean, limit?: string): RunRequest => ({
  inventoryPath: 'inv',
  playbookPath: 'site.yaml',
  check,
  limit,
  forks: 2,
  prune: false,
  warnDays: 30,
  transport: { connectTimeoutMs: 1, commandTimeoutMs: 1, knownHostsFiles: [], acceptNewHostKeys: false },
  now: () => new Date('2026-01-01T00:00:00Z'),
  toolVersion: 'test',
});

const statuses = (r: { hosts: { host: string; status: string; coveredBy?: string }[] }) =>
  r.hosts.map((h) => `${h.host} ${h.status}${h.coveredBy ? ` by ${h.coveredBy}` : ''}`);

describe('runPlaybook', () => {
  it('plans and applies a shared scope once, through its first member by name; the others are covered', async () => {
    const log: string[] = [];
    const hosts = [host('m2', { items: ['x'] }), host('m1', { items: ['x'] }), host('m3', { items: ['y'] }), host('solo', { items: ['z'] })];
    const report = await runPlaybook(request(false), {}, deps(hosts, itemsModule(log), { m1: 'S', m2: 'S', m3: 'S' }));
    expect(statuses(report)).toEqual(['m2 covered by m1', 'm1 changed', 'm3 covered by m1', 'solo changed']);
    expect(log.sort()).toEqual(['m1 x', 'solo z']);
    expect(schemaErrors(report)).toBe('');
    expect(report.hosts[2]!.warnings).toEqual(["incus_trust: shares its state with m1 (S) but its inventory variables differ; m1's were applied"]);
    expect(report.exitCode).toBe(0);
  });

  it('a covered member warns when the member reconciling the shared state failed', async () => {
    const hosts = [host('m1', { items: ['bad'] }), host('m2', { items: ['bad'] })];
    const report = await runPlaybook(request(false), {}, deps(hosts, itemsModule([], 'bad'), { m1: 'S', m2: 'S' }));
    expect(statuses(report)).toEqual(['m1 failed', 'm2 covered by m1']);
    expect(report.hosts[1]!.warnings).toEqual(['incus_trust: m1, through which this shared state is reconciled, failed; see its error']);
    expect(report.exitCode).toBe(1);
  });

  it('a failing host stops its own remaining actions only; the report says what was applied', async () => {
    const log: string[] = [];
    const hosts = [host('a', { items: ['1', '2', '3'] }), host('b', { items: ['1', 'bad', '3'] }), host('c', { items: ['1'] })];
    const report = await runPlaybook(request(false), {}, deps(hosts, itemsModule(log, 'bad'), {}, ['c']));
    expect(statuses(report)).toEqual(['a changed', 'b failed', 'c unreachable']);
    expect(report.hosts[1]!.actions.map((a) => `${a.name} ${a.applied}`)).toEqual(['1 true', 'bad false', '3 false']);
    expect(report.hosts[1]!.error).toEqual({ step: 'add item bad', message: 'boom' });
    expect(report.hosts[2]!.error).toEqual({ step: 'connect', message: 'connection refused' });
    expect(log.sort()).toEqual(['a 1', 'a 2', 'a 3', 'b 1']);
    expect(report.summary.hosts).toEqual({ ok: 0, changed: 1, drift: 0, failed: 1, unreachable: 1, covered: 0 });
    expect(report.exitCode).toBe(1);
    expect(schemaErrors(report)).toBe('');
  });

  it('check mode applies nothing and exits 2 on drift; --limit narrows the hosts', async () => {
    const log: string[] = [];
    const hosts = [host('a', { items: ['1'] }), host('b', { items: [] }), host('c', {})];
    const report = await runPlaybook(request(true), {}, deps(hosts, itemsModule(log), {}));
    expect(statuses(report)).toEqual(['a drift', 'b ok']);
    expect(log).toEqual([]);
    expect(report.exitCode).toBe(2);
    expect(schemaErrors(report)).toBe('');
    const limited = await runPlaybook(request(true, 'b'), {}, deps(hosts, itemsModule(log), {}));
    expect(statuses(limited)).toEqual(['b ok']);
    expect(limited.exitCode).toBe(0);
  });

  it('a --limit that leaves no host is a usage error, not an empty success', async () => {
    const hosts = [host('a', { items: ['1'] })];
    await expect(runPlaybook(request(true, 'typo'), {}, deps(hosts, itemsModule([]), {}))).rejects.toThrow(
      new UsageError('--limit "typo" leaves no host of the playbook\'s plays to reconcile'),
    );
  });

  it('key pairs a prepare step generated reach the hook once each, and the report\'s generated list (schema-valid)', async () => {
    const pair = { name: 'prom', event: 'generated' as const, certificateFile: '/inv/m.crt', keyFile: '/inv/m.key', keyMode: '0600' as const, fingerprint: 'a'.repeat(64) };
    const module = { ...itemsModule([]), prepare: async () => ({ problems: [], generated: [pair, pair] }) };
    const seen: string[] = [];
    const report = await runPlaybook(request(false), { keyPairGenerated: (p) => seen.push(`${p.module} ${p.name} ${p.fingerprint.slice(0, 4)}`) }, deps([host('a', { items: ['1'] })], module, {}));
    expect(seen).toEqual(['incus_trust prom aaaa']);
    expect(report.generated).toEqual([{ module: 'incus_trust', ...pair }]);
    expect(schemaErrors(report)).toBe('');
    expect(schemaErrors({ ...report, generated: [{ ...pair, module: 'incus_trust', privateKeyPem: 'x' }] })).not.toBe('');
  });
});
