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

/** One Incus host h1 with the entry, and Prometheus hosts (group prometheus) that deploy it. */
function setup(entry: Record<string, unknown> = {}, prometheus: string[] = []): { inventory: Inventory; hosts: InventoryHost[] } {
  dir = mkdtempSync(join(tmpdir(), 'reconcile-keys-'));
  const value = [{ name: 'm', certificate_file: 'pki/m.crt', key_file: 'pki/m.key', ...entry }];
  const vars = {
    incus_metrics_certificates: { value, location: { file: 'x', line: 1, column: 1 }, valuePath: 'all.vars.incus_metrics_certificates', nested: new Map() },
  };
  const h: InventoryHost = { name: 'h1', groups: ['all'], vars };
  const proms: InventoryHost[] = prometheus.map((name) => ({ name, groups: ['all', 'prometheus'], vars }));
  const all = [h, ...proms];
  return { inventory: { source: dir, baseDir: dir, files: [], hosts: new Map(all.map((x) => [x.name, x])), groups: new Map() }, hosts: [h] };
}

function reader(inventory: Inventory) {
  return (rel: string) => {
    try {
      return readFileSync(join(inventory.baseDir, rel));
    } catch {
      return undefined;
    }
  };
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

  it('a key that does not belong to the certificate starts a rotation; a key that is not there is an error, nothing made', async () => {
    const { inventory, hosts } = setup();
    await prepareMetricsKeys(inventory, hosts, NOW);
    const old = fp('pki/m.crt');
    const stranger = await generateSelfSigned({ commonName: 'x', validityDays: 30, now: NOW, type: 'metrics' });
    writeFileSync(join(dir, 'pki/m.key'), stranger.privateKeyPem, { mode: 0o600 });
    const r = await prepareMetricsKeys(inventory, hosts, NOW);
    expect(r.events.map((e) => e.event)).toEqual(['rotation started']);
    expect(fp('pki/m.crt.previous')).toBe(old);

    // A second checkout without the key (keys stay out of Git): said, never "fixed" by a new pair.
    const current = read('pki/m.crt');
    rmSync(join(dir, 'pki/m.key'));
    const missing = planKeyPairs({ inventory, hosts, now: NOW, readInventoryFile: reader(inventory) })!;
    expect(missing.actions).toEqual([]);
    expect(missing.errors).toEqual([
      'metrics key pair "m": pki/m.crt is here but its key pki/m.key is not — this checkout lacks it (keys stay out of Git): copy it from where the pair was made; a new pair would retire the certificate Prometheus runs with. To replace the pair on purpose, move pki/m.crt away and run again',
    ]);
    expect(read('pki/m.crt')).toBe(current);
  });

  it('a rotation under way is never started over while a Prometheus host has not recorded the new pair (it may be down)', async () => {
    const { inventory, hosts } = setup({ validity_days: 40, rotate_before_days: 5 }, ['p1', 'p2']);
    await prepareMetricsKeys(inventory, hosts, NOW);
    const first = fp('pki/m.crt');
    // Due: the rotation starts; p1 records the new pair, p2 is down and does not.
    const due = new Date(NOW.getTime() + 36 * 86_400_000);
    expect((await prepareMetricsKeys(inventory, hosts, due)).events.map((e) => e.event)).toEqual(['rotation started']);
    const second = fp('pki/m.crt');
    writeFileSync(join(dir, 'pki/m.crt.deployed'), `p1 ${second}\n`);
    // Much later the new certificate is due too: the rotation waits for p2, CERT.previous stays the certificate p2 runs.
    const later = new Date(due.getTime() + 36 * 86_400_000);
    const plan = planKeyPairs({ inventory, hosts, now: later, readInventoryFile: reader(inventory) })!;
    expect(plan.actions).toEqual([]);
    expect(plan.warnings).toEqual([
      `metrics key pair "m": pki/m.crt expires ${parseCertificatePem(read('pki/m.crt')).notAfter.toISOString().slice(0, 10)}, but the rotation under way waits (p2 has not recorded the new pair yet); the next one starts once it is done`,
    ]);
    expect((await prepareMetricsKeys(inventory, hosts, later)).events).toEqual([]);
    expect([fp('pki/m.crt.previous'), fp('pki/m.crt')]).toEqual([first, second]);
    // Its key lost mid-rotation: an error, not a new rotation.
    const ownKey = read('pki/m.key');
    const other = await generateSelfSigned({ commonName: 'x', validityDays: 30, now: NOW, type: 'metrics' });
    writeFileSync(join(dir, 'pki/m.key'), other.privateKeyPem, { mode: 0o600 });
    expect(planKeyPairs({ inventory, hosts, now: due, readInventoryFile: reader(inventory) })!.errors).toEqual([
      'metrics key pair "m": a rotation is under way (p2 has not recorded the new pair yet) and pki/m.key does not belong to pki/m.crt: restore the key that belongs to it; a new pair now would retire the certificate those hosts still run',
    ]);
    // The key restored and p2 back on the new pair: the rotation is done, the next one may start.
    writeFileSync(join(dir, 'pki/m.key'), ownKey, { mode: 0o600 });
    writeFileSync(join(dir, 'pki/m.crt.deployed'), `p1 ${second}\np2 ${second}\n`);
    expect(planKeyPairs({ inventory, hosts, now: later, readInventoryFile: reader(inventory) })!.actions.map((a) => a.reason)).toEqual(['pair-due']);
  });
});
