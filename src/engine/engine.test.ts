/**
 * The engine's own rules, with in-memory stages and a fixture module (test/fixtures/modules):
 * shared scopes planned once (covered), a failing host stops only its own actions, statuses and
 * exit codes, a plan that survives being saved and read back. The real daemons are in test/e2e.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { TransportError, UsageError } from '../errors.js';
import type { Inventory, InventoryHost } from '../inventory/model.js';
import type { ReconcileModule } from '../modules/types.js';
import type { HostSession } from '../transport/types.js';
import { parsePlan, serializePlan } from '../plan/saved-plan.js';
import type { RunPlan } from '../plan/types.js';
import { itemsModule } from '../../test/fixtures/modules/items-module.js';
import { applyPlan } from './apply-plan.js';
import { planRun, sessionPool, type PlanDeps, type PlanRequest } from './plan-run.js';
import { buildReport } from './report.js';

const reportSchema = JSON.parse(readFileSync(new URL('../../schema/report.schema.json', import.meta.url), 'utf8'));
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(reportSchema);
/** Every report these tests produce is also checked against schema/report.schema.json. */
function schemaErrors(report: unknown): string {
  return validateReport(report) ? '' : JSON.stringify(validateReport.errors);
}

function host(name: string, vars: Record<string, unknown>): InventoryHost {
  return {
    name,
    groups: ['all'],
    vars: Object.fromEntries(
      Object.entries(vars).map(([k, value]) => [k, { value, location: { file: 'i', line: 1, column: 1 }, valuePath: k, nested: new Map() }]),
    ),
  };
}

function deps(hosts: InventoryHost[], module: ReconcileModule<any, any, any, any>): PlanDeps {
  const inventory: Inventory = {
    source: 'inv',
    baseDir: '/inv',
    files: ['/inv/hosts.yaml'],
    sources: new Map([['/inv/hosts.yaml', 'all: {}\n']]),
    hosts: new Map(hosts.map((h) => [h.name, h])),
    groups: new Map(),
  };
  return {
    loadInventory: async () => inventory,
    validateInventory: () => [],
    loadPlaybook: async () => ({ plays: [{ name: 'all', hosts: 'all', reconcile: ['items' as never] }], problems: [] }),
    selectHosts: (inv, pattern) => ({ hosts: [...inv.hosts.keys()].filter((h) => pattern === 'all' || pattern.split(':').includes(h)), warnings: [] }),
    connectionSpec: (h) => ({ host: h.name, connection: 'local', address: h.name, port: 22, user: 'root', jumps: [], become: false, incusSocket: '' }),
    readInventoryFile: () => undefined,
    modules: { items: module },
  };
}

/** Sessions that know their scope; hosts in `down` refuse to connect. */
function pool(scopes: Record<string, string>, down: string[] = []) {
  return sessionPool(async (spec) => {
    if (down.includes(spec.host)) throw new TransportError(spec.host, 'connect', 'connection refused', true);
    return { spec, scope: scopes[spec.host], close: async () => undefined } as unknown as HostSession;
  });
}

const NOW = new Date('2026-01-01T00:00:00Z');
const request = (limit?: string): PlanRequest => ({
  inventoryPath: '/inv',
  playbookPath: 'site.yaml',
  limit,
  forks: 2,
  prune: false,
  warnDays: 30,
  transport: { connectTimeoutMs: 1, commandTimeoutMs: 1, knownHostsFiles: [], acceptNewHostKeys: false },
  now: () => NOW,
  toolVersion: 'test',
});

async function planAndApply(hosts: InventoryHost[], module: ReconcileModule<any, any, any, any>, scopes: Record<string, string>, down: string[] = []) {
  const p = pool(scopes, down);
  const plan = await planRun(request(), {}, deps(hosts, module), p);
  return applyPlan(plan, p, {}, { forks: 2, modules: { items: module }, now: () => NOW });
}

const statuses = (r: { hosts: { host: string; status: string; coveredBy?: string }[] }) =>
  r.hosts.map((h) => `${h.host} ${h.status}${h.coveredBy ? ` by ${h.coveredBy}` : ''}`);

describe('planRun and applyPlan', () => {
  it('plans and applies a shared scope once, through its first member by name; the others are covered', async () => {
    const log: string[] = [];
    const hosts = [host('m2', { items: ['x'] }), host('m1', { items: ['x'] }), host('m3', { items: ['y'] }), host('solo', { items: ['z'] })];
    const report = await planAndApply(hosts, itemsModule(log), { m1: 'S', m2: 'S', m3: 'S' });
    expect(statuses(report)).toEqual(['m2 covered by m1', 'm1 changed', 'm3 covered by m1', 'solo changed']);
    expect(log.sort()).toEqual(['m1 x', 'solo z']);
    expect(schemaErrors(report)).toBe('');
    expect(report.hosts[2]!.warnings).toEqual(["items: shares its state with m1 (S) but its inventory variables differ; m1's were applied"]);
    expect(report.exitCode).toBe(0);
  });

  it('a covered member warns when the member reconciling the shared state failed', async () => {
    const hosts = [host('m1', { items: ['bad'] }), host('m2', { items: ['bad'] })];
    const report = await planAndApply(hosts, itemsModule([], 'bad'), { m1: 'S', m2: 'S' });
    expect(statuses(report)).toEqual(['m1 failed', 'm2 covered by m1']);
    expect(report.hosts[1]!.warnings).toEqual(['items: m1, through which this shared state is reconciled, failed; see its error']);
    expect(report.exitCode).toBe(1);
  });

  it('a failing host stops its own remaining actions only; the report says what was applied', async () => {
    const log: string[] = [];
    const hosts = [host('a', { items: ['1', '2', '3'] }), host('b', { items: ['1', 'bad', '3'] }), host('c', { items: ['1'] })];
    const report = await planAndApply(hosts, itemsModule(log, 'bad'), {}, ['c']);
    expect(statuses(report)).toEqual(['a changed', 'b failed', 'c unreachable']);
    expect(report.hosts[1]!.actions.map((a) => `${a.name} ${a.applied}`)).toEqual(['1 true', 'bad false', '3 false']);
    expect(report.hosts[1]!.error).toEqual({ step: 'add item bad', message: 'boom' });
    expect(report.hosts[2]!.error).toEqual({ step: 'connect', message: 'connection refused' });
    expect(log.sort()).toEqual(['a 1', 'a 2', 'a 3', 'b 1']);
    expect(report.summary.hosts).toEqual({ ok: 0, changed: 1, drift: 0, failed: 1, unreachable: 1, covered: 0 });
    expect(report.exitCode).toBe(1);
    expect(schemaErrors(report)).toBe('');
  });

  it('a plan applies nothing by itself and exits 2 on drift; --limit narrows the hosts', async () => {
    const log: string[] = [];
    const hosts = [host('a', { items: ['1'] }), host('b', { items: [] }), host('c', {})];
    const plan = await planRun(request(), {}, deps(hosts, itemsModule(log)), pool({}));
    const report = buildReport(plan, { mode: 'check', startedAt: NOW, finishedAt: NOW });
    expect(statuses(report)).toEqual(['a drift', 'b ok']);
    expect(log).toEqual([]);
    expect(report.exitCode).toBe(2);
    expect(schemaErrors(report)).toBe('');
    const limited = await planRun(request('b'), {}, deps(hosts, itemsModule(log)), pool({}));
    const limitedReport = buildReport(limited, { mode: 'check', startedAt: NOW, finishedAt: NOW });
    expect(statuses(limitedReport)).toEqual(['b ok']);
    expect(limitedReport.exitCode).toBe(0);
  });

  it('--check closes each connection once its host is read, with the other hosts still being read; a run that applies keeps them', async () => {
    const closed: string[] = [];
    const tracked = sessionPool(async (spec) => ({ spec, close: async () => void closed.push(spec.host) }) as unknown as HostSession);
    const hosts = [host('a', { items: ['x'] }), host('b', { items: ['y'] }), host('c', { items: ['z'] })];
    const plan = await planRun({ ...request(), closeAfterReading: true }, {}, deps(hosts, itemsModule([])), tracked);
    expect(plan.hosts.map((h) => h.host)).toEqual(['a', 'b', 'c']);
    expect(closed.sort()).toEqual(['a', 'b', 'c']);
    closed.length = 0;
    await planRun(request(), {}, deps(hosts, itemsModule([])), tracked);
    expect(closed).toEqual([]);
    await tracked.closeAll();
    expect(closed.sort()).toEqual(['a', 'b', 'c']);
  });

  it('a --limit that leaves no host is a usage error, not an empty success', async () => {
    const hosts = [host('a', { items: ['1'] })];
    await expect(planRun(request('typo'), {}, deps(hosts, itemsModule([])), pool({}))).rejects.toThrow(
      new UsageError('--limit "typo" leaves no host of the playbook\'s plays to reconcile'),
    );
  });

  it("a plan saved and read back applies the same, with its connection settings and the module's own payloads", async () => {
    const log: string[] = [];
    const module = itemsModule(log);
    const hosts = [host('a', { items: ['1', '2'] }), host('b', { items: ['3'] })];
    const plan = await planRun(request(), {}, deps(hosts, module), pool({}));
    const text = serializePlan(plan);
    const loaded: RunPlan = parsePlan(text, 'plan.json');
    expect(loaded).toEqual(plan);
    expect(loaded.inventory.files).toEqual([{ path: 'hosts.yaml', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(loaded.hosts[0]!.connection).toMatchObject({ host: 'a', connection: 'local' });
    const report = await applyPlan(loaded, pool({}), {}, { forks: 2, modules: { items: module }, now: () => NOW });
    expect(statuses(report)).toEqual(['a changed', 'b changed']);
    expect(log.sort()).toEqual(['a 1', 'a 2', 'b 3']);
  });

  it('apply refuses a module the plan names but this reconcile does not know, on that host only', async () => {
    const hosts = [host('a', { items: ['1'] })];
    const plan = await planRun(request(), {}, deps(hosts, itemsModule([])), pool({}));
    const report = await applyPlan(plan, pool({}), {}, { forks: 2, modules: {}, now: () => NOW });
    expect(report.hosts[0]!.error).toEqual({ step: 'apply', message: 'unknown module items in the plan' });
    expect(report.exitCode).toBe(1);
  });

  it('work done once: desired() once per host even though validation runs it too, and each inventory file read once per run', async () => {
    const calls: string[] = [];
    const reads: string[] = [];
    const base = itemsModule([]);
    const module: ReconcileModule<any, any, any, any> = {
      ...base,
      desired: (h, ctx) => {
        calls.push(h.name);
        ctx.readInventoryFile('certs/shared.crt');
        return base.desired(h, ctx);
      },
    };
    const hosts = [host('a', { items: ['1'] }), host('b', { items: ['2'] })];
    const d = deps(hosts, module);
    d.validateInventory = (inventory, now, readFile, modules) => {
      // As src/inventory/validate.ts does: every module's desired() on every host, for its rules.
      for (const h of inventory.hosts.values()) for (const m of Object.values(modules)) m.desired(h, { inventory, now, readInventoryFile: readFile });
      return [];
    };
    d.readInventoryFile = (_inv, rel) => {
      reads.push(rel);
      return Buffer.from('x');
    };
    const plan = await planRun(request(), {}, d, pool({}));
    expect(calls).toEqual(['a', 'b']);
    expect(reads).toEqual(['certs/shared.crt']);
    expect(plan.inventory.files.map((f) => f.path)).toEqual(['certs/shared.crt', 'hosts.yaml']);
  });

  it('a selection that gives no host anything to do is an error naming the plays, their hosts and what their modules need', async () => {
    const hosts = [host('a', { itmes: ['1'] }), host('b', {})];
    await expect(planRun(request(), {}, deps(hosts, itemsModule([])), pool({}))).rejects.toThrow(
      new UsageError(
        [
          'nothing to reconcile: no selected host sets anything the plays reconcile',
          '  play "all" (hosts: all) matched a, b',
          '    items needs items on a host',
          "  (a misspelled variable name is the usual cause: 'reconcile validate -i INVENTORY' names near misses)",
        ].join('\n'),
      ),
    );
  });
});
