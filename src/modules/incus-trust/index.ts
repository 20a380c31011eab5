/**
 * The incus_trust module: desired (incus_trusted_clients + incus_metrics_certificates) ×
 * observed (the host's trust store over its Incus API) → plan (plan.ts) → apply (apply.ts).
 * Its scope is the Incus cluster: members share one trust store, reconciled once.
 */
import type { ObservedCertificate, ReconcileModule } from '../types.js';
import type { DesiredTrust, ObservedTrust } from './model.js';
import { planTrust } from './plan.js';
import { applyTrust } from './apply.js';
import { desiredTrustStandIn, observeTrustStandIn } from './standin.js';

export const incusTrust: ReconcileModule<DesiredTrust, ObservedTrust> = {
  name: 'incus_trust',
  desired: (host, ctx) => desiredTrustStandIn(host, ctx),
  observe: (session) => observeTrustStandIn(session),
  plan: planTrust,
  apply: applyTrust,
  trustedCertificates: (observed): ObservedCertificate[] =>
    observed.certificates.map((c) => ({ name: c.name, fingerprint: c.fingerprint, type: c.type, notAfter: c.notAfter })),
};
