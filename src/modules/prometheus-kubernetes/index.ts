/**
 * The prometheus_kubernetes module: the manifests that hand the Incus metrics pair and targets to
 * a Prometheus run by prometheus-operator, written on the controller by a normal run
 * (`prometheus_kubernetes` in the inventory; `reconcile scrape-config --format …` writes the same
 * on demand). Controller work only: no host is connected to for it, beyond reading where each
 * Incus host serves its metrics. desired.ts → plan.ts (pure) → apply.ts.
 */
import { PROMETHEUS_KUBERNETES_SCHEMA } from './schema.js';
import type { ReconcileModule } from '../types.js';
import { observeMetricsEndpointsOnce } from '../prometheus-scrape/targets.js';
import { incusGroupOf, incusHostsToScrape } from '../incus-trust/metrics-desired.js';
import { inventoryWide, readKubernetesSpec } from './desired.js';
import { planManifests, type ManifestPayload } from './plan.js';
import { applyManifests } from './apply.js';
import { KUBERNETES_REASONS, type KubernetesReason } from './reasons.js';

export const prometheusKubernetes: ReconcileModule<never, never, ManifestPayload, KubernetesReason> = {
  name: 'prometheus_kubernetes',
  reasons: KUBERNETES_REASONS,
  variables: ['prometheus_kubernetes'],
  schema: PROMETHEUS_KUBERNETES_SCHEMA,
  // Nothing on any host: the variable's problems are reported (validation), the work is the controller's.
  desired: (host) => ({ problems: readKubernetesSpec(host).problems }),
  observe: async () => {
    throw new Error('prometheus_kubernetes observes no host');
  },
  plan: () => ({ module: 'prometheus_kubernetes', actions: [], errors: [], warnings: [] }),
  apply: async () => undefined,
  observeRun: async (ctx) => {
    const wide = inventoryWide(ctx.inventory);
    if (!readKubernetesSpec(wide).spec) return { problems: [] };
    return { problems: [], facts: await observeMetricsEndpointsOnce(incusHostsToScrape(ctx.inventory, incusGroupOf(wide)), ctx) };
  },
  planController: planManifests,
  applyController: (plan, hooks, ctx) => applyManifests(plan as Parameters<typeof applyManifests>[0], hooks, ctx),
};
