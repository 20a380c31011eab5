/**
 * The incus_trust module: desired (incus_trusted_clients + incus_metrics_certificates) ×
 * observed (the host's trust store over its Incus API) → plan (plan.ts) → apply (apply.ts).
 * Its scope is the Incus cluster: members share one trust store, reconciled once. On the
 * controller it plans the metrics key pairs to generate or rotate (key-pairs.ts), which apply
 * makes first (metrics-keys.ts).
 */
import type { Inventory, InventoryHost } from '../../inventory/model.js';
import { INCUS_TRUST_SCHEMA } from './schema.js';
import type { ObservedCertificate, PlanContext, ReconcileModule } from '../types.js';
import type { DesiredTrust, ObservedTrust } from './model.js';
import { planTrust, type TrustPayload, type TrustPlan } from './plan.js';
import { applyTrust } from './apply.js';
import { desiredMetricsCertificates, inNamedGroup } from './metrics-desired.js';
import { applyKeyPairs, keyFileModeWarnings } from './metrics-keys.js';
import { planKeyPairs } from './key-pairs.js';
import { observeTrust } from './observe.js';
import { desiredTrustClients } from './desired.js';
import { TRUST_REASONS, type TrustReason } from './reasons.js';

/** Variables that make a host's trust store managed; a host with none of them is left alone. */
const TRUST_VARIABLES = ['incus_trusted_clients', 'incus_metrics_certificates', 'incus_trust_prune', 'incus_trust_protected'];

/**
 * The hosts whose trust store is managed: the group named by incus_trust_group (default
 * "incus", the group of the seed's layout) when the inventory has it, else every host that sets
 * the variables (an inventory of Incus servers only).
 */
function inTrustGroup(host: InventoryHost, inventory: Inventory): boolean {
  return inNamedGroup(host, inventory, 'incus_trust_group', 'incus');
}

/** An Incus/LXD server whose trust store the inventory may manage (watch follows its events even while it is down). */
export function isTrustHost(host: InventoryHost, inventory: Inventory): boolean {
  return inTrustGroup(host, inventory) && TRUST_VARIABLES.some((v) => host.vars[v] !== undefined);
}

/** The certificates the inventory keeps trusted: each entry's, and a previous one while previous_until is ahead. */
function managedFingerprints(desired: DesiredTrust): Set<string> {
  const out = new Set<string>();
  for (const d of desired.certificates) {
    if (d.state !== 'present') continue;
    if (d.certificate) out.add(d.certificate.fingerprint);
    if (d.previous?.kept && d.previous.certificate) out.add(d.previous.certificate.fingerprint);
  }
  return out;
}

/**
 * The plan observe made to decide whether to ask GET /1.0, for the engine's plan of the very same
 * values (a standalone server in sync, observed without it): planned once, not twice. Observe
 * returns a new object when it asked, so a kept plan is never one made without what it read.
 */
const firstPlans = new WeakMap<ObservedTrust, { desired: DesiredTrust; ctx: PlanContext; plan: TrustPlan }>();

export const incusTrust: ReconcileModule<DesiredTrust, ObservedTrust, TrustPayload, TrustReason> = {
  name: 'incus_trust',
  reasons: TRUST_REASONS,
  variables: TRUST_VARIABLES,
  schema: INCUS_TRUST_SCHEMA,
  // A metrics key file that others may read gets a warning on every run.
  observeRun: async (ctx) => ({ problems: keyFileModeWarnings(ctx.inventory, ctx.hosts) }),
  desired: (host, ctx) => {
    // A NAS or a router in the same inventory gets all.vars too: only the Incus group is managed.
    if (!inTrustGroup(host, ctx.inventory)) return { problems: [] };
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
  observe: (session, desired, ctx) =>
    observeTrust(session, {
      projects: namesProjects(desired),
      // What the daemon is and which API extensions it has matter only to a change.
      needsDaemon: (observed) => {
        const plan = planTrust(desired, observed, ctx);
        firstPlans.set(observed, { desired, ctx, plan });
        return plan.actions.some((a) => a.applies);
      },
    }),
  plan: (desired, observed, ctx) => {
    const first = firstPlans.get(observed);
    return first?.desired === desired && first.ctx === ctx ? first.plan : planTrust(desired, observed, ctx);
  },
  apply: applyTrust,
  planController: planKeyPairs,
  applyController: (plan, hooks, ctx) => applyKeyPairs(plan as Parameters<typeof applyKeyPairs>[0], hooks, ctx),
  trustedCertificates: (observed, desired): ObservedCertificate[] => {
    const managed = managedFingerprints(desired);
    return observed.certificates.map((c) => ({
      name: c.name,
      fingerprint: c.fingerprint,
      type: c.type,
      notAfter: c.notAfter,
      managed: managed.has(c.fingerprint),
    }));
  },
};

/** Whether an entry (or its previous certificate) names projects: only then is the host's project list needed. */
function namesProjects(desired: DesiredTrust): boolean {
  return desired.certificates.some((d) => d.state === 'present' && d.projects.length > 0);
}
