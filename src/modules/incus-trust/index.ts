/**
 * The incus_trust module: desired (incus_trusted_clients + incus_metrics_certificates) ×
 * observed (the host's trust store over its Incus API) → plan (plan.ts) → apply (apply.ts).
 * Its scope is the Incus cluster: members share one trust store, reconciled once.
 */
import type { ObservedCertificate, ReconcileModule } from '../types.js';
import type { DesiredTrust, ObservedTrust } from './model.js';
import { planTrust } from './plan.js';
import { applyTrust } from './apply.js';
import { desiredMetricsCertificates } from './metrics-desired.js';
import { generatedKeyPairs, keyFileModeWarnings, prepareMetricsKeys } from './metrics-keys.js';
import { observeTrust } from './observe.js';
import { desiredTrustClients } from './desired.js';

/** Variables that make a host's trust store managed; a host with none of them is left alone. */
const TRUST_VARIABLES = ['incus_trusted_clients', 'incus_metrics_certificates', 'incus_trust_prune', 'incus_trust_protected'];

export const incusTrust: ReconcileModule<DesiredTrust, ObservedTrust> = {
  name: 'incus_trust',
  // Apply mode: generate missing metrics key pairs and start due rotations before desired() reads them.
  prepare: async (ctx) => {
    // Both modes: a metrics key file that others may read gets a warning on every run.
    const modeWarnings = keyFileModeWarnings(ctx.inventory, ctx.hosts);
    if (ctx.check) return { problems: modeWarnings };
    const { events, problems } = await prepareMetricsKeys(ctx.inventory, ctx.hosts, ctx.now);
    return { problems: [...modeWarnings, ...problems], facts: events, generated: generatedKeyPairs(events) };
  },
  desired: (host, ctx) => {
    const metrics = desiredMetricsCertificates(host, ctx);
    // incus_metrics_certificates alone does not make a host managed when it does not register them (a Prometheus host).
    if (!TRUST_VARIABLES.some((v) => host.vars[v] !== undefined && (v !== 'incus_metrics_certificates' || metrics.registers))) {
      return { problems: metrics.problems };
    }
    const clients = desiredTrustClients(host, ctx);
    return {
      desired: { certificates: [...clients.certificates, ...metrics.certificates], prune: clients.prune, protected: clients.protected },
      problems: [...clients.problems, ...metrics.problems],
    };
  },
  observe: (session) => observeTrust(session),
  plan: planTrust,
  apply: applyTrust,
  trustedCertificates: (observed): ObservedCertificate[] =>
    observed.certificates.map((c) => ({ name: c.name, fingerprint: c.fingerprint, type: c.type, notAfter: c.notAfter })),
};
