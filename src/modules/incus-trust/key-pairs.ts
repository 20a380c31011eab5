/**
 * The controller's plan for metrics key pairs (pure, over the files read beside the inventory):
 * which pair must be generated, rotated or finished before the hosts can be reconciled. Apply
 * (metrics-keys.ts) does it, first of all, and hands the new certificates to the host actions
 * that wait for them ("known after apply"). `--check` therefore writes nothing anywhere.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import type { Inventory } from '../../inventory/model.js';
import { CertificateParseError, daysLeft, parseCertificatePem } from '../../pki/certificate.js';
import type { Action, ControllerPlanContext, ModulePlan } from '../types.js';
import { inventoryPath, readMetricsCertificateSpecs, type MetricsCertificateSpec } from './metrics-desired.js';
import { KNOWN_AFTER_APPLY } from './plan.js';
import type { TrustReason } from './reasons.js';

export const KEY_PAIR_KIND = 'metrics key pair';
export const NEXT_SUFFIX = '.next';

/** What apply needs to make one pair; paths are absolute on the controller. Never key material. */
export interface KeyPairPayload {
  op: 'key-pair';
  name: string;
  certificateFile: string;
  certificatePath: string;
  keyPath: string;
  commonName: string;
  validityDays: number;
  rotateBeforeDays: number;
}

export type KeyPairAction = Action<KeyPairPayload, TrustReason>;

/** Every metrics entry the hosts read (each pair once), and what its files say must happen. */
export function planKeyPairs(ctx: ControllerPlanContext): ModulePlan<KeyPairPayload, TrustReason> | undefined {
  const actions: KeyPairAction[] = [];
  const seen = new Set<string>();
  for (const host of ctx.hosts) {
    for (const spec of readMetricsCertificateSpecs(host).specs) {
      const certificatePath = inventoryPath(ctx.inventory, spec.certificateFile);
      if (seen.has(certificatePath)) continue;
      seen.add(certificatePath);
      const action = planKeyPair(spec, ctx.inventory, ctx.readInventoryFile, ctx.now);
      if (action) actions.push(action);
    }
  }
  return seen.size > 0 ? { module: 'incus_trust', actions, errors: [], warnings: [] } : undefined;
}

function planKeyPair(
  spec: MetricsCertificateSpec,
  inventory: Pick<Inventory, 'baseDir'>,
  read: (rel: string) => Buffer | undefined,
  now: Date,
): KeyPairAction | undefined {
  const certBytes = read(spec.certificateFile);
  const payload: KeyPairPayload = {
    op: 'key-pair',
    name: spec.name,
    certificateFile: spec.certificateFile,
    certificatePath: inventoryPath(inventory, spec.certificateFile),
    keyPath: inventoryPath(inventory, spec.keyFile),
    commonName: spec.commonName,
    validityDays: spec.validityDays,
    rotateBeforeDays: spec.rotateBeforeDays,
  };
  const base = {
    kind: KEY_PAIR_KIND,
    name: spec.name,
    fingerprint: KNOWN_AFTER_APPLY,
    after: {
      certificate: spec.certificateFile,
      key: spec.keyFile,
      keyMode: '0600',
      algorithm: 'ECDSA P-384',
      commonName: spec.commonName,
      validityDays: spec.validityDays,
    },
    applies: true,
    // The certificate file as read: apply refuses when someone else wrote it since.
    precondition: { subject: spec.certificateFile, digest: certBytes ? sha256(certBytes) : null },
    payload,
  };
  if (read(spec.certificateFile + NEXT_SUFFIX) || read(spec.keyFile + NEXT_SUFFIX)) return { ...base, action: 'update', reason: 'pair-install-interrupted' };
  if (!certBytes) return { ...base, action: 'add', reason: 'pair-missing' };
  let current;
  try {
    current = parseCertificatePem(certBytes.toString('utf8'));
  } catch (e) {
    if (e instanceof CertificateParseError) return undefined; // desired() reports it with file:line
    throw e;
  }
  if (daysLeft(current, now) < spec.rotateBeforeDays) {
    return { ...base, action: 'rotate', reason: 'pair-due', detail: current.notAfter.toISOString().slice(0, 10) };
  }
  const key = read(spec.keyFile);
  if (!key || !keyMatchesCertificate(key.toString('utf8'), current.pem)) return { ...base, action: 'rotate', reason: 'pair-key-mismatch' };
  return undefined;
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

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
