/**
 * The edge that makes and rotates metrics key pairs on the controller, beside the inventory:
 * the apply of the controller actions planned by key-pairs.ts (check mode never gets here).
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
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync, openSync, fsyncSync, closeSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TransportError, type Problem } from '../../errors.js';
import type { Inventory, InventoryHost } from '../../inventory/model.js';
import { daysLeft, parseCertificatePem } from '../../pki/certificate.js';
import { generateSelfSigned } from '../../pki/generate.js';
import { DEPLOYED_SUFFIX, formatDeployedRecord, inventoryPath, parseDeployedRecord, PREVIOUS_SUFFIX, readMetricsCertificateSpecs } from './metrics-desired.js';
import { CONTROLLER } from '../../plan/types.js';
import type { ApplyContext, ApplyHooks, ModulePlan } from '../types.js';
import { keyMatchesCertificate, NEXT_SUFFIX, sha256, type KeyPairPayload } from './key-pairs.js';
import type { TrustReason } from './reasons.js';

export { inventoryPath, keyMatchesCertificate, NEXT_SUFFIX };

/**
 * Applies the controller's key pair actions in order: each checks that the certificate file is
 * still as planned, then generates (or finishes installing) the pair and hands its certificate
 * to the host actions that wait for it.
 */
export async function applyKeyPairs(plan: ModulePlan<KeyPairPayload, TrustReason>, hooks: ApplyHooks, ctx: ApplyContext): Promise<void> {
  for (const action of plan.actions) {
    if (!action.applies || !action.payload) continue;
    hooks.actionStarted(action);
    const p = action.payload;
    const step = `${action.action === 'add' ? 'generate' : action.action === 'rotate' ? 'rotate' : 'finish installing'} metrics key pair ${p.name}`;
    try {
      const now = readText(p.certificatePath);
      const digest = now === undefined ? null : sha256(now);
      if (action.precondition && digest !== action.precondition.digest) {
        throw new TransportError(CONTROLLER, step, `${p.certificateFile} changed since the plan was made; nothing done — plan again`);
      }
      const made = await installPlannedPair(p, action.reason, ctx.now());
      const info = parseCertificatePem(made.certificatePem);
      ctx.resolveCertificate({ certificatePath: p.certificatePath, pem: info.pem, derBase64: info.derBase64, fingerprint: info.fingerprint });
      if (made.event)
        ctx.keyPairGenerated({
          name: p.name,
          event: made.event,
          certificateFile: p.certificatePath,
          keyFile: p.keyPath,
          keyMode: '0600',
          fingerprint: info.fingerprint,
        });
    } catch (e) {
      if (e instanceof TransportError) throw e;
      throw new TransportError(CONTROLLER, step, (e as Error).message);
    }
    hooks.actionApplied(action);
  }
}

/** Makes the planned pair; `event` is undefined when only an interrupted install's leftovers were cleared. */
async function installPlannedPair(
  p: KeyPairPayload,
  reason: TrustReason,
  now: Date,
): Promise<{ certificatePem: string; event?: 'generated' | 'rotation started' | 'install resumed' }> {
  if (reason === 'pair-install-interrupted') {
    if (resumeInstall(p.certificatePath, p.keyPath)) return { certificatePem: readFileSync(p.certificatePath, 'utf8'), event: 'install resumed' };
    // Cut before CERT.next was written: its KEY.next is gone now; a sound pair in place stays.
    const cert = readText(p.certificatePath);
    const key = readText(p.keyPath);
    if (cert !== undefined && key !== undefined && keyMatchesCertificate(key, cert) && daysLeft(parseCertificatePem(cert), now) >= p.rotateBeforeDays) {
      return { certificatePem: cert };
    }
  }
  const pair = await generateSelfSigned({ commonName: p.commonName, validityDays: p.validityDays, now, type: 'metrics' });
  installPair(p.certificatePath, p.keyPath, pair.certificatePem, pair.privateKeyPem);
  return { certificatePem: pair.certificatePem, event: reason === 'pair-missing' ? 'generated' : 'rotation started' };
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
  recordQueues.set(
    file,
    next.catch(() => undefined),
  );
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
