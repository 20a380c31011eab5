import { TRUST_REASONS } from './reasons.js';
import { describe, expect, it } from 'vitest';
import { unreadableFile, type Inventory, type InventoryHost, type VarDefinition } from '../../inventory/model.js';
import { generateSelfSigned } from '../../pki/generate.js';
import type { DesiredContext } from '../types.js';
import { planTrust } from './plan.js';
import type { ObservedTrust } from './model.js';
import { desiredMetricsCertificates, formatDeployedRecord, metricsPairPhase, prometheusHosts, readMetricsCertificateSpecs } from './metrics-desired.js';

const FILE = '/inv/hosts.yaml';
const NOW = new Date('2030-01-01T00:00:00Z');

function varDef(value: unknown, line = 5): VarDefinition {
  const nested = new Map();
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      nested.set(`[${i}]`, { file: FILE, line: line + 1 + i * 10, column: 7 });
      if (item && typeof item === 'object')
        Object.keys(item).forEach((k, j) => nested.set(`[${i}].${k}`, { file: FILE, line: line + 1 + i * 10 + j, column: 9 }));
    });
  }
  return { value, location: { file: FILE, line, column: 5 }, valuePath: 'all.vars.incus_metrics_certificates', nested };
}

function host(name: string, vars: Record<string, unknown>, groups: string[] = ['all', 'incus']): InventoryHost {
  return { name, groups, vars: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, varDef(v)])) };
}

function inventoryOf(hosts: InventoryHost[]): Inventory {
  return { source: FILE, baseDir: '/inv', files: [FILE], hosts: new Map(hosts.map((h) => [h.name, h])), groups: new Map() };
}

function ctxWith(inventory: Inventory, files: Record<string, string>): DesiredContext {
  return { inventory, now: NOW, readInventoryFile: (rel) => (files[rel] === undefined ? undefined : Buffer.from(files[rel]!)) };
}

const ENTRY = { name: 'prometheus-metrics', certificate_file: 'pki/metrics.crt', key_file: 'pki/metrics.key' };

describe('readMetricsCertificateSpecs', () => {
  it('fills the defaults of the Terraform module', () => {
    const { specs, problems } = readMetricsCertificateSpecs(host('h1', { incus_metrics_certificates: [ENTRY] }));
    expect(problems).toEqual([]);
    expect(specs).toEqual([
      {
        name: 'prometheus-metrics',
        description: 'Metrics certificate for Prometheus scraping',
        certificateFile: 'pki/metrics.crt',
        keyFile: 'pki/metrics.key',
        commonName: 'metrics.local',
        validityDays: 3650,
        rotateBeforeDays: 30,
        restricted: false,
        projects: [],
        location: { file: FILE, line: 6, column: 7 },
        valuePath: 'all.vars.incus_metrics_certificates[0]',
      },
    ]);
  });

  it('names file:line:column and the value path of every problem at once', () => {
    const { specs, problems } = readMetricsCertificateSpecs(
      host('h1', { incus_metrics_certificates: [{ name: 'm', certificate_file: 'a.crt', validity_days: 0, rotate_before_days: 'soon', projects: ['p'] }] }),
    );
    expect(specs).toEqual([]);
    expect(problems.map((p) => `${p.location?.line}:${p.location?.column} ${p.severity} ${p.valuePath}: ${p.message}`)).toEqual([
      '6:7 error all.vars.incus_metrics_certificates[0]: key_file is required',
      '8:9 error all.vars.incus_metrics_certificates[0].validity_days: must be a whole number of days ≥ 1, got 0',
      '9:9 error all.vars.incus_metrics_certificates[0].rotate_before_days: must be a whole number of days ≥ 0, got "soon"',
      '10:9 warning all.vars.incus_metrics_certificates[0].projects: projects has no effect without restricted: true',
    ]);
  });

  it('refuses rotate_before_days that is not below validity_days, and duplicate names', () => {
    const { problems } = readMetricsCertificateSpecs(
      host('h1', {
        incus_metrics_certificates: [
          { ...ENTRY, validity_days: 10, rotate_before_days: 10 },
          { ...ENTRY, key_file: 'k2' },
        ],
      }),
    );
    expect(problems.map((p) => `${p.valuePath}: ${p.message}`)).toEqual([
      'all.vars.incus_metrics_certificates[0].rotate_before_days: must be less than validity_days (10), got 10: every new pair would be rotated at once',
      'all.vars.incus_metrics_certificates[1].name: "prometheus-metrics" is already used by all.vars.incus_metrics_certificates[0]',
    ]);
  });
});

describe('desiredMetricsCertificates and the trust planner', () => {
  const h = host('h1', { incus_metrics_certificates: [ENTRY] });
  const prom = host('prom1', {}, ['all', 'prometheus']);
  const inventory = inventoryOf([h, prom]);

  const observedWith = (certs: { name: string; fingerprint: string }[]): ObservedTrust => ({
    server: { clustered: false, members: [] },
    projects: ['default'],
    certificates: certs.map((c) => ({
      ...c,
      type: 'metrics',
      restricted: false,
      projects: [],
      description: 'Metrics certificate for Prometheus scraping',
      certificate: '',
    })),
  });
  const plan = (files: Record<string, string>, live: { name: string; fingerprint: string }[]) => {
    const { certificates, problems } = desiredMetricsCertificates(h, ctxWith(inventory, files));
    expect(problems).toEqual([]);
    return planTrust({ certificates, prune: false, protected: [] }, observedWith(live), { now: NOW, prune: false, warnDays: 30 }).actions.map(
      (a) => `${a.action} ${a.name} ${a.fingerprint} (${TRUST_REASONS[a.reason](a.detail)})`,
    );
  };

  it('with an incus group, only its hosts register the certificate (a Prometheus host reads the same variable)', () => {
    const withGroups: Inventory = {
      ...inventory,
      groups: new Map([['incus', { name: 'incus', parents: ['all'], children: [], hosts: ['h1'], vars: {}, fileVars: {}, depth: 1 }]]),
    };
    const promWithVar = host('prom1', { incus_metrics_certificates: [ENTRY] }, ['all', 'prometheus']);
    expect(desiredMetricsCertificates(promWithVar, ctxWith(withGroups, {})).certificates).toEqual([]);
    expect(desiredMetricsCertificates(h, ctxWith(withGroups, {})).certificates.map((c) => c.name)).toEqual(['prometheus-metrics']);
  });

  it('a certificate or key "file" that is a device or a FIFO is an error, never a missing pair to generate over it', () => {
    const read = (rel: string) => (rel === ENTRY.key_file ? unreadableFile('is a device, not a file') : undefined);
    const { certificates, problems } = desiredMetricsCertificates(h, { inventory, now: NOW, readInventoryFile: read });
    expect(problems.map((p) => `${p.valuePath}: ${p.message}`)).toEqual([
      'all.vars.incus_metrics_certificates[0].key_file: pki/metrics.key is a device, not a file',
    ]);
    expect(certificates.map((c) => c.name)).toEqual(['prometheus-metrics']);
  });

  it('a missing pair is added with its fingerprint known after apply', () => {
    expect(plan({}, [])).toEqual(['add prometheus-metrics (known after apply) (missing (key pair to be generated))']);
  });

  it('rotation: due → both kept while Prometheus hosts lack the new pair → the previous one removed once they have it', async () => {
    const old = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 20, now: NOW, type: 'metrics' });
    const fresh = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 3650, now: NOW, type: 'metrics' });
    const oldFp = old.info.fingerprint;
    const newFp = fresh.info.fingerprint;
    // Check mode before the rotation: the expiring one stays, a new one is to be generated.
    expect(plan({ 'pki/metrics.crt': old.certificatePem }, [{ name: 'prometheus-metrics', fingerprint: oldFp }])).toEqual([
      'add prometheus-metrics (known after apply) (missing (key pair to be generated); rotation: pki/metrics.crt expires 2030-01-21, within rotate_before_days (30); the current one stays trusted until every Prometheus host runs the new pair)',
    ]);
    const rotating = { 'pki/metrics.crt': fresh.certificatePem, 'pki/metrics.crt.previous': old.certificatePem };
    expect(plan(rotating, [{ name: 'prometheus-metrics', fingerprint: oldFp }])).toEqual([
      `add prometheus-metrics ${newFp} (missing; rotation: the previous certificate stays trusted until prom1 runs the new pair)`,
    ]);
    // New one trusted, Prometheus not yet on it: nothing to do, the old one stays.
    const both = [
      { name: 'prometheus-metrics', fingerprint: oldFp },
      { name: 'prometheus-metrics', fingerprint: newFp },
    ];
    expect(plan(rotating, both)).toEqual([]);
    const deployed = { ...rotating, 'pki/metrics.crt.deployed': formatDeployedRecord(new Map([['prom1', newFp]])) };
    expect(plan(deployed, both)).toEqual([`remove prometheus-metrics ${oldFp} (superseded: the inventory gives this name another certificate)`]);
    expect(plan(deployed, [{ name: 'prometheus-metrics', fingerprint: newFp }])).toEqual([]);
    // An Incus host that missed the whole rotation gets the new one before losing the old one.
    expect(plan(deployed, [{ name: 'prometheus-metrics', fingerprint: oldFp }])).toEqual([`rotate prometheus-metrics ${newFp} (new certificate)`]);
  });

  it('metricsPairPhase: a record naming another certificate keeps the rotation waiting', async () => {
    const a = await generateSelfSigned({ commonName: 'm', validityDays: 100, now: NOW, type: 'metrics' });
    const b = await generateSelfSigned({ commonName: 'm', validityDays: 100, now: NOW, type: 'metrics' });
    const phase = metricsPairPhase(
      { rotateBeforeDays: 30 },
      { certificate: b.info, previous: a.info, deployed: new Map([['prom1', a.info.fingerprint]]) },
      ['prom1', 'prom2'],
      NOW,
    );
    expect(phase.phase).toBe('rotating');
    expect(phase.phase === 'rotating' && phase.waitingFor).toEqual(['prom1', 'prom2']);
  });
});

describe('prometheusHosts', () => {
  it('only the Prometheus hosts that deploy an entry hold up its rotation', () => {
    const two = [ENTRY, { ...ENTRY, name: 'other', certificate_file: 'o.crt', key_file: 'o.key' }];
    const incus = host('h1', { incus_metrics_certificates: two });
    const promA = host('promA', {}, ['all', 'prometheus']);
    const promB = host('promB', { prometheus_metrics_certificate: 'other' }, ['all', 'prometheus']);
    const groups = new Map([['incus', { name: 'incus', parents: ['all'], children: [], hosts: ['h1'], vars: {}, fileVars: {}, depth: 1 }]]);
    const inv: Inventory = { ...inventoryOf([incus, promA, promB]), groups };
    expect(prometheusHosts(inv, 'prometheus-metrics')).toEqual(['promA']);
    expect(prometheusHosts(inv, 'other')).toEqual(['promB']);
  });
});

describe('prometheus_kubernetes in a rotation', () => {
  it('the Kubernetes manifests count as one more Prometheus: the previous certificate stays until they hold the new pair', () => {
    const incus = host('incus1', { incus_metrics_certificates: [ENTRY] });
    const inventory = inventoryOf([incus]);
    inventory.groups.set('all', {
      name: 'all',
      parents: [],
      children: ['incus'],
      hosts: [],
      vars: { prometheus_kubernetes: varDef({ out_dir: 'k8s' }) },
      fileVars: {},
      depth: 0,
    });
    inventory.groups.set('incus', { name: 'incus', parents: ['all'], children: [], hosts: ['incus1'], vars: {}, fileVars: {}, depth: 1 });
    expect(prometheusHosts(inventory, 'prometheus-metrics')).toEqual(['kubernetes']);
    expect(prometheusHosts(inventory, 'other')).toEqual([]);
  });
});
