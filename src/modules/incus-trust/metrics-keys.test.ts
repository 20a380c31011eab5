import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Inventory, InventoryHost } from '../../inventory/model.js';
import { parseCertificatePem } from '../../pki/certificate.js';
import { generateSelfSigned } from '../../pki/generate.js';
import type { GeneratedKeyPair } from '../../engine/report.js';
import { keyMatchesCertificate, planKeyPairs } from './key-pairs.js';
import { applyKeyPairs } from './metrics-keys.js';

/** Plans the controller's key pair work (pure), then applies it, as a run does. */
async function prepareMetricsKeys(inventory: Inventory, hosts: InventoryHost[], now: Date) {
  const readInventoryFile = (rel: string) => {
    try {
      return readFileSync(join(inventory.baseDir, rel));
    } catch {
      return undefined;
    }
  };
  const plan = planKeyPairs({ inventory, hosts, now, readInventoryFile });
  const events: Omit<GeneratedKeyPair, 'module'>[] = [];
  const made = new Map<string, unknown>();
  if (!plan) return { plan, events, problems: [] as unknown[] };
  await applyKeyPairs(
    plan as Parameters<typeof applyKeyPairs>[0],
    { actionStarted: () => undefined, actionApplied: () => undefined },
    {
      now: () => now,
      certificate: () => undefined,
      resolveCertificate: (c) => void made.set(c.certificatePath, c),
      keyPairGenerated: (p) => void events.push(p),
    },
  );
  return { plan, events, problems: [] as unknown[] };
}

const NOW = new Date('2030-01-01T00:00:00Z');
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function setup(entry: Record<string, unknown> = {}): { inventory: Inventory; hosts: InventoryHost[] } {
  dir = mkdtempSync(join(tmpdir(), 'reconcile-keys-'));
  const value = [{ name: 'm', certificate_file: 'pki/m.crt', key_file: 'pki/m.key', ...entry }];
  const h: InventoryHost = {
    name: 'h1',
    groups: ['all'],
    vars: {
      incus_metrics_certificates: { value, location: { file: 'x', line: 1, column: 1 }, valuePath: 'all.vars.incus_metrics_certificates', nested: new Map() },
    },
  };
  return { inventory: { source: dir, baseDir: dir, files: [], hosts: new Map([['h1', h]]), groups: new Map() }, hosts: [h] };
}
const read = (f: string) => readFileSync(join(dir, f), 'utf8');
const fp = (f: string) => parseCertificatePem(read(f)).fingerprint;

describe('planKeyPairs, then applyKeyPairs', () => {
  it('planning writes nothing: the pair to generate is an action with its reason, the precondition says the file is absent', async () => {
    const { inventory, hosts } = setup();
    const plan = planKeyPairs({ inventory, hosts, now: NOW, readInventoryFile: () => undefined })!;
    expect(plan.actions.map((a) => [a.action, a.kind, a.name, a.reason, a.precondition])).toEqual([
      ['add', 'metrics key pair', 'm', 'pair-missing', { subject: 'pki/m.crt', digest: null }],
    ]);
    expect(existsSync(join(dir, 'pki'))).toBe(false);
    expect(JSON.stringify(plan)).not.toContain('PRIVATE KEY');
  });

  it('generates a missing pair: key 0600, ECDSA P-384, CN and validity from the entry; a second run does nothing', async () => {
    const { inventory, hosts } = setup({ common_name: 'prom.example', validity_days: 90 });
    const r = await prepareMetricsKeys(inventory, hosts, NOW);
    expect(r.problems).toEqual([]);
    expect(r.events.map((e) => e.event)).toEqual(['generated']);
    expect(statSync(join(dir, 'pki/m.key')).mode & 0o777).toBe(0o600);
    const info = parseCertificatePem(read('pki/m.crt'));
    expect([info.subject, info.publicKeyAlgorithm, info.notAfter.toISOString()]).toEqual(['CN=prom.example', 'ECDSA P-384', '2030-04-01T00:00:00.000Z']);
    expect(keyMatchesCertificate(read('pki/m.key'), read('pki/m.crt'))).toBe(true);
    expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
    expect((await prepareMetricsKeys(inventory, hosts, NOW)).events).toEqual([]);
  });

  it('starts a rotation within rotate_before_days, keeping the old certificate as .previous', async () => {
    const { inventory, hosts } = setup({ rotate_before_days: 30 });
    await prepareMetricsKeys(inventory, hosts, NOW);
    const first = fp('pki/m.crt');
    const later = new Date(NOW.getTime() + (3650 - 29) * 86_400_000);
    const r = await prepareMetricsKeys(inventory, hosts, later);
    expect(r.events.map((e) => e.event)).toEqual(['rotation started']);
    expect(fp('pki/m.crt.previous')).toBe(first);
    expect(fp('pki/m.crt')).not.toBe(first);
    expect(keyMatchesCertificate(read('pki/m.key'), read('pki/m.crt'))).toBe(true);
    expect(existsSync(join(dir, 'pki/m.crt.next')) || existsSync(join(dir, 'pki/m.key.next'))).toBe(false);
  });

  it('resumes an install interrupted after the key was renamed, and restarts one cut before CERT.next', async () => {
    const { inventory, hosts } = setup();
    await prepareMetricsKeys(inventory, hosts, NOW);
    const old = read('pki/m.crt');
    // Interrupted: new key in place, new certificate still in CERT.next, CERT.previous written.
    const next = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 3650, now: NOW, type: 'metrics' });
    writeFileSync(join(dir, 'pki/m.crt.previous'), old);
    writeFileSync(join(dir, 'pki/m.key'), next.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'pki/m.crt.next'), next.certificatePem);
    const r = await prepareMetricsKeys(inventory, hosts, NOW);
    expect(r.events.map((e) => e.event)).toEqual(['install resumed']);
    expect(fp('pki/m.crt')).toBe(next.info.fingerprint);
    expect(read('pki/m.crt.previous')).toBe(old);
    // Cut before CERT.next: the orphan KEY.next is discarded, the pair in place stays.
    writeFileSync(join(dir, 'pki/m.key.next'), 'partial');
    expect((await prepareMetricsKeys(inventory, hosts, NOW)).events).toEqual([]);
    expect(existsSync(join(dir, 'pki/m.key.next'))).toBe(false);
  });

  it('a key that does not belong to the certificate starts a rotation', async () => {
    const { inventory, hosts } = setup();
    await prepareMetricsKeys(inventory, hosts, NOW);
    const old = fp('pki/m.crt');
    rmSync(join(dir, 'pki/m.key'));
    const r = await prepareMetricsKeys(inventory, hosts, NOW);
    expect(r.events.map((e) => e.event)).toEqual(['rotation started']);
    expect(fp('pki/m.crt.previous')).toBe(old);
  });
});
