/**
 * Writes the planned manifests on the controller (an edge): each file atomically (temporary file,
 * then rename) after checking it is still what the plan read; the Secret rendered here, from the
 * pair on disk (or the one this apply just generated), with mode 0600 — its content never was in
 * the plan nor goes anywhere else.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { TransportError } from '../../errors.js';
import { parseCertificatePem } from '../../pki/certificate.js';
import { CONTROLLER } from '../../plan/types.js';
import { renderKubernetesManifests } from '../../render/kubernetes.js';
import { keyMatchesCertificate } from '../incus-trust/key-pairs.js';
import { recordDeployment, writeAtomic } from '../incus-trust/metrics-keys.js';
import { KUBERNETES_DEPLOYMENT } from '../incus-trust/metrics-desired.js';
import type { ApplyContext, ApplyHooks, ModulePlan } from '../types.js';
import type { ManifestPayload } from './plan.js';
import type { KubernetesReason } from './reasons.js';

export async function applyManifests(plan: ModulePlan<ManifestPayload, KubernetesReason>, hooks: ApplyHooks, ctx: ApplyContext): Promise<void> {
  for (const action of plan.actions) {
    if (!action.applies || !action.payload) continue;
    hooks.actionStarted(action);
    const p = action.payload;
    if (p.op === 'record') {
      await record(p, ctx);
      hooks.actionApplied(action);
      continue;
    }
    const step = `write ${p.path}`;
    try {
      const now = readOrUndefined(p.path);
      const digest = now === undefined ? null : createHash('sha256').update(now).digest('hex');
      if (action.precondition && digest !== action.precondition.digest) {
        throw new TransportError(CONTROLLER, step, `${p.path} changed since the plan was made; left as it is — plan again`);
      }
      mkdirSync(dirname(p.path), { recursive: true });
      if (p.op === 'manifest') writeAtomic(p.path, p.content, p.mode);
      else writeAtomic(p.path, secretText(p, ctx), 0o600);
    } catch (e) {
      if (e instanceof TransportError) throw e;
      throw new TransportError(CONTROLLER, step, (e as Error).message);
    }
    hooks.actionApplied(action);
  }
}

async function record(p: Extract<ManifestPayload, { op: 'record' }>, ctx: ApplyContext): Promise<void> {
  const fingerprint = p.fingerprint ?? ctx.certificate(p.certificatePath)?.fingerprint;
  const step = `record deployment in ${p.certificatePath}.deployed`;
  if (!fingerprint) throw new TransportError(CONTROLLER, step, 'the metrics pair was not generated: see the error above');
  try {
    await recordDeployment(p.certificatePath, KUBERNETES_DEPLOYMENT, fingerprint);
  } catch (e) {
    throw new TransportError(CONTROLLER, step, (e as Error).message);
  }
}

function secretText(p: Extract<ManifestPayload, { op: 'secret' }>, ctx: ApplyContext): string {
  const made = ctx.certificate(p.certificatePath);
  const certificatePem = made?.pem ?? readFileSync(p.certificatePath, 'utf8');
  const keyPem = readFileSync(p.keyPath, 'utf8');
  if (!keyMatchesCertificate(keyPem, certificatePem)) throw new Error(`${p.keyPath} is not the key of ${p.certificatePath}`);
  const fingerprint = made?.fingerprint ?? parseCertificatePem(certificatePem).fingerprint;
  const caFiles = new Map(p.caFiles.map((c) => [c.name, readFileSync(c.path, 'utf8')]));
  const rendered = renderKubernetesManifests(p.targets, { certificatePem, keyPem, fingerprint, caFiles }, p.options);
  return rendered.files.find((f) => f.name === 'secret.yaml')!.content;
}

function readOrUndefined(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
