/**
 * The edge that makes and rotates metrics key pairs on the controller, beside the inventory.
 * It runs before desired() (the module's prepare step), in apply mode only: check mode
 * changes nothing and the plan says "(key pair to be generated)".
 *
 * Files beside certificate_file (CERT) and key_file (KEY) — the whole state, no state file:
 *   KEY.next, CERT.next  a new pair being installed (KEY.next written first, 0600)
 *   CERT.previous        the certificate being retired (see metrics-desired.ts)
 *   CERT.deployed        `HOST FINGERPRINT` per Prometheus host (recordDeployment)
 *
 * Installing a new pair: write KEY.next, write CERT.next, copy CERT to CERT.previous, rename
 * KEY.next → KEY, rename CERT.next → CERT. Every write is temporary file + rename, so a run
 * interrupted anywhere leaves a state the next run finishes (resumeInstall) or restarts.
 * Private keys are never printed, logged nor put in a plan.
 */
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync, openSync, fsyncSync, closeSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Problem } from '../../errors.js';
import type { Inventory, InventoryHost } from '../../inventory/model.js';
import { daysLeft, parseCertificatePem } from '../../pki/certificate.js';
import { generateSelfSigned } from '../../pki/generate.js';
import {
  DEPLOYED_SUFFIX,
  formatDeployedRecord,
  parseDeployedRecord,
  PREVIOUS_SUFFIX,
  readMetricsCertificateSpecs,
  type MetricsCertificateSpec,
} from './metrics-desired.js';
import type { PrepareResult } from '../types.js';

export const NEXT_SUFFIX = '.next';

/** What prepare did to one pair, for messages (never key material). */
export interface KeyPairEvent {
  name: string;
  certificateFile: string;
  event: 'generated' | 'rotation started' | 'install resumed';
  fingerprint: string;
  /** Absolute paths on the controller. */
  certificatePath: string;
  keyPath: string;
}

/** What the user is told about the pairs prepare made (PrepareResult.generated). */
export function generatedKeyPairs(events: KeyPairEvent[]): NonNullable<PrepareResult['generated']> {
  return events.map((e) => ({ name: e.name, event: e.event, certificateFile: e.certificatePath, keyFile: e.keyPath, keyMode: '0600', fingerprint: e.fingerprint }));
}

/** Resolves a path of the inventory (relative to its folder). */
export function inventoryPath(inventory: Pick<Inventory, 'baseDir'>, file: string): string {
  return isAbsolute(file) ? file : resolve(inventory.baseDir, file);
}

/**
 * Apply mode: for every metrics entry of `hosts` (each pair once), finishes an interrupted
 * install, generates a missing pair, and starts a rotation when the certificate expires within
 * rotate_before_days or the key does not belong to it. Problems name the entry's location.
 */
export async function prepareMetricsKeys(
  inventory: Inventory,
  hosts: InventoryHost[],
  now: Date,
): Promise<{ events: KeyPairEvent[]; problems: Problem[] }> {
  const events: KeyPairEvent[] = [];
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const host of hosts) {
    const { specs } = readMetricsCertificateSpecs(host); // problems are desired()'s to report
    for (const spec of specs) {
      const certPath = inventoryPath(inventory, spec.certificateFile);
      if (seen.has(certPath)) continue;
      seen.add(certPath);
      try {
        const event = await ensurePair(spec, certPath, inventoryPath(inventory, spec.keyFile), now);
        if (event) events.push(event);
      } catch (e) {
        problems.push({
          severity: 'error',
          location: spec.location,
          valuePath: `${spec.valuePath}.certificate_file`,
          message: `cannot prepare the key pair of "${spec.name}": ${(e as Error).message}`,
        });
      }
    }
  }
  return { events, problems };
}

/**
 * A warning for every existing metrics key_file that group or others may read: whoever reads it
 * can scrape every host that trusts its certificate. Read in check and apply mode alike.
 */
export function keyFileModeWarnings(inventory: Inventory, hosts: InventoryHost[]): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const host of hosts) {
    for (const spec of readMetricsCertificateSpecs(host).specs) {
      const keyPath = inventoryPath(inventory, spec.keyFile);
      if (seen.has(keyPath)) continue;
      seen.add(keyPath);
      let mode: number;
      try {
        mode = statSync(keyPath).mode & 0o777;
      } catch {
        continue; // missing: generated (0600) in apply mode
      }
      if ((mode & 0o077) === 0) continue;
      problems.push({
        severity: 'warning',
        location: spec.location,
        valuePath: `${spec.valuePath}.key_file`,
        message: `private key ${spec.keyFile} can be read by others than its owner (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${spec.keyFile}`,
      });
    }
  }
  return problems;
}

async function ensurePair(spec: MetricsCertificateSpec, certPath: string, keyPath: string, now: Date): Promise<KeyPairEvent | undefined> {
  const resumed = resumeInstall(certPath, keyPath);
  const certText = readText(certPath);
  const keyText = readText(keyPath);
  const base = { name: spec.name, certificateFile: spec.certificateFile, certificatePath: certPath, keyPath };
  if (certText === undefined) {
    const pair = await generateSelfSigned({ commonName: spec.commonName, validityDays: spec.validityDays, now, type: 'metrics' });
    installPair(certPath, keyPath, pair.certificatePem, pair.privateKeyPem);
    return { ...base, event: 'generated', fingerprint: pair.info.fingerprint };
  }
  const current = parseCertificatePem(certText);
  const due = daysLeft(current, now) < spec.rotateBeforeDays;
  const keyFits = keyText !== undefined && keyMatchesCertificate(keyText, certText);
  if (!due && keyFits) {
    return resumed ? { ...base, event: 'install resumed', fingerprint: current.fingerprint } : undefined;
  }
  const pair = await generateSelfSigned({ commonName: spec.commonName, validityDays: spec.validityDays, now, type: 'metrics' });
  installPair(certPath, keyPath, pair.certificatePem, pair.privateKeyPem);
  return { ...base, event: 'rotation started', fingerprint: pair.info.fingerprint };
}

/** Writes the new pair in the order the header gives, keeping the current certificate as CERT.previous. */
function installPair(certPath: string, keyPath: string, certificatePem: string, privateKeyPem: string): void {
  mkdirSync(dirname(certPath), { recursive: true });
  mkdirSync(dirname(keyPath), { recursive: true });
  writeAtomic(keyPath + NEXT_SUFFIX, privateKeyPem, 0o600);
  writeAtomic(certPath + NEXT_SUFFIX, certificatePem, 0o644);
  resumeInstall(certPath, keyPath);
}

/**
 * Finishes an install that a previous run began. Returns true when there was one.
 * - CERT.next present: the new pair is complete (KEY.next, if still there, was written first).
 * - only KEY.next present: generation was cut short; it is discarded and the pair regenerated.
 */
export function resumeInstall(certPath: string, keyPath: string): boolean {
  const nextCert = certPath + NEXT_SUFFIX;
  const nextKey = keyPath + NEXT_SUFFIX;
  if (!existsSync(nextCert)) {
    if (existsSync(nextKey)) rmSync(nextKey, { force: true });
    return false;
  }
  const nextCertText = readFileSync(nextCert, 'utf8');
  const current = readText(certPath);
  if (current !== undefined && parseCertificatePem(current).fingerprint !== parseCertificatePem(nextCertText).fingerprint) {
    // Idempotent: CERT is still the old certificate until the last rename below.
    writeAtomic(certPath + PREVIOUS_SUFFIX, current, 0o644);
  }
  if (existsSync(nextKey)) {
    renameSync(nextKey, keyPath);
  } else if (!keyMatchesCertificate(readText(keyPath) ?? '', nextCertText)) {
    // Neither KEY.next nor a matching KEY: the new pair cannot be completed; start over.
    rmSync(nextCert, { force: true });
    return false;
  }
  renameSync(nextCert, certPath);
  return true;
}

/** True when the PEM private key is the one of the certificate (compares public keys). */
export function keyMatchesCertificate(keyPem: string, certificatePem: string): boolean {
  try {
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    const fromCert = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
    return Buffer.compare(fromKey, fromCert) === 0;
  } catch {
    return false;
  }
}

const recordQueues = new Map<string, Promise<void>>();

/**
 * Records that `host` runs with the certificate `fingerprint` (CERT.deployed), once its
 * Prometheus has the pair and was reloaded. Serialized per file: Prometheus hosts apply concurrently.
 */
export function recordDeployment(certPath: string, host: string, fingerprint: string): Promise<void> {
  const file = certPath + DEPLOYED_SUFFIX;
  const previous = recordQueues.get(file) ?? Promise.resolve();
  const next = previous.then(() => {
    const record = parseDeployedRecord(readText(file));
    record.set(host, fingerprint);
    writeAtomic(file, formatDeployedRecord(record), 0o644);
  });
  recordQueues.set(file, next.catch(() => undefined));
  return next;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Temporary file in the same folder (created with its final mode), fsync, rename. */
export function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
