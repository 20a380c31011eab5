/**
 * The controller's plan for metrics key pairs (pure, over the files read beside the inventory):
 * which pair must be generated, rotated or finished before the hosts can be reconciled. Apply
 * (metrics-keys.ts) does it, first of all, and hands the new certificates to the host actions
 * that wait for them ("known after apply"). `--check` therefore writes nothing anywhere.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import type { Inventory } from '../../inventory/model.js';
import { CertificateParseError, daysLeft, parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import type { Action, ControllerPlanContext, ModulePlan } from '../types.js';
import {
  DEPLOYED_SUFFIX,
  inventoryPath,
  metricsPairPhase,
  parseDeployedRecord,
  PREVIOUS_SUFFIX,
  prometheusHosts,
  readMetricsCertificateSpecs,
  type MetricsCertificateSpec,
} from './metrics-desired.js';
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
  const plan: ModulePlan<KeyPairPayload, TrustReason> = { module: 'incus_trust', actions: [], errors: [], warnings: [] };
  const seen = new Set<string>();
  for (const host of ctx.hosts) {
    for (const spec of readMetricsCertificateSpecs(host).specs) {
      const certificatePath = inventoryPath(ctx.inventory, spec.certificateFile);
      if (seen.has(certificatePath)) continue;
      seen.add(certificatePath);
      const outcome = planKeyPair(spec, ctx.inventory, ctx.readInventoryFile, ctx.now);
      if (outcome?.action) plan.actions.push(outcome.action);
      if (outcome?.error) plan.errors.push(outcome.error);
      if (outcome?.warning) plan.warnings.push(outcome.warning);
    }
  }
  return seen.size > 0 ? plan : undefined;
}

/**
 * What one pair needs. A rotation under way (CERT.previous still trusted because a Prometheus
 * host has not recorded the new pair: it may be down) is never started over: that would
 * overwrite CERT.previous and retire the certificate that host still runs. A key missing beside
 * its certificate (a checkout without it: keys stay out of Git) is an error, never a reason to
 * make a new pair that retires the one Prometheus runs with.
 */
function planKeyPair(
  spec: MetricsCertificateSpec,
  inventory: Inventory,
  read: (rel: string) => Buffer | undefined,
  now: Date,
): { action?: KeyPairAction; error?: string; warning?: string } | undefined {
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
  if (read(spec.certificateFile + NEXT_SUFFIX) || read(spec.keyFile + NEXT_SUFFIX))
    return { action: { ...base, action: 'update', reason: 'pair-install-interrupted' } };
  if (!certBytes) return { action: { ...base, action: 'add', reason: 'pair-missing' } };
  const current = parsed(certBytes);
  if (!current) return undefined; // desired() reports it with file:line
  const name = `metrics key pair "${spec.name}"`;
  const key = read(spec.keyFile);
  if (!key || key.length === 0) {
    return {
      error:
        `${name}: ${spec.certificateFile} is here but its key ${spec.keyFile} is not — this checkout lacks it (keys stay out of Git): ` +
        `copy it from where the pair was made; a new pair would retire the certificate Prometheus runs with. To replace the pair on purpose, move ${spec.certificateFile} away and run again`,
    };
  }
  const keyMatches = keyMatchesCertificate(key.toString('utf8'), current.pem);
  const due = daysLeft(current, now) < spec.rotateBeforeDays;
  const previousBytes = read(spec.certificateFile + PREVIOUS_SUFFIX);
  const deployed = parseDeployedRecord(read(spec.certificateFile + DEPLOYED_SUFFIX)?.toString('utf8'));
  const phase = metricsPairPhase(
    spec,
    { certificate: current, previous: previousBytes ? parsed(previousBytes) : undefined, deployed },
    prometheusHosts(inventory, spec.name),
    now,
  );
  if (phase.phase === 'rotating') {
    const waiting = `${phase.waitingFor.join(', ')} ${phase.waitingFor.length === 1 ? 'has' : 'have'} not recorded the new pair yet`;
    if (!keyMatches) {
      return {
        error: `${name}: a rotation is under way (${waiting}) and ${spec.keyFile} does not belong to ${spec.certificateFile}: restore the key that belongs to it; a new pair now would retire the certificate those hosts still run`,
      };
    }
    if (due)
      return {
        warning: `${name}: ${spec.certificateFile} expires ${current.notAfter.toISOString().slice(0, 10)}, but the rotation under way waits (${waiting}); the next one starts once it is done`,
      };
    return undefined;
  }
  if (due) return { action: { ...base, action: 'rotate', reason: 'pair-due', detail: current.notAfter.toISOString().slice(0, 10) } };
  if (!keyMatches) return { action: { ...base, action: 'rotate', reason: 'pair-key-mismatch' } };
  return undefined;
}

function parsed(bytes: Buffer): CertificateInfo | undefined {
  try {
    return parseCertificatePem(bytes.toString('utf8'));
  } catch (e) {
    if (e instanceof CertificateParseError) return undefined;
    throw e;
  }
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
