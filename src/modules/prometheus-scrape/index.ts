/**
 * The prometheus_scrape module, for the hosts of the Prometheus group: deploys the Incus
 * metrics client pair and a whole prometheus.yml scraping every Incus member, then reloads
 * Prometheus. Its observeRun step reads where every Incus host of the inventory serves its
 * metrics, which desired() turns into targets; the key pairs it deploys are planned on the
 * controller like incus_trust's (one action per pair, whichever module plans it).
 */
import { PROMETHEUS_SCRAPE_SCHEMA } from './schema.js';
import type { InventoryHost } from '../../inventory/model.js';
import { planKeyPairs } from '../incus-trust/key-pairs.js';
import type { ReconcileModule } from '../types.js';
import { applyScrape } from './apply.js';
import { desiredScrape, isPrometheusHost } from './desired.js';
import type { DesiredScrape, ObservedScrape, ScrapeFacts, ScrapePayload } from './model.js';
import { observeScrape } from './observe.js';
import { planScrape } from './plan.js';
import { SCRAPE_REASONS, type ScrapeReason } from './reasons.js';
import { incusGroupOf, incusHostsToScrape, observeMetricsEndpointsOnce, observeQubesTags } from './targets.js';
import type { Inventory } from '../../inventory/model.js';

/** The Prometheus hosts among `hosts`, and the Incus hosts they scrape. */
function hostsInvolved(inventory: Inventory, hosts: InventoryHost[]): { prometheus: InventoryHost[]; incus: InventoryHost[] } {
  const prometheus = hosts.filter(isPrometheusHost);
  const incus = new Map<string, InventoryHost>();
  for (const h of prometheus) for (const i of incusHostsToScrape(inventory, incusGroupOf(h))) incus.set(i.name, i);
  return { prometheus, incus: [...incus.values()] };
}

export const prometheusScrape: ReconcileModule<DesiredScrape, ObservedScrape, ScrapePayload, ScrapeReason> = {
  name: 'prometheus_scrape',
  reasons: SCRAPE_REASONS,
  // On a host of the Prometheus group (prometheus_scrape_group, default "prometheus").
  variables: ['incus_metrics_certificates'],
  needsShell: true,
  schema: PROMETHEUS_SCRAPE_SCHEMA,
  desired: desiredScrape,
  observe: observeScrape,
  plan: planScrape,
  apply: (session, plan, hooks, ctx) => applyScrape(session, plan as Parameters<typeof applyScrape>[1], hooks, ctx),
  observeRun: async (ctx) => {
    const { prometheus, incus } = hostsInvolved(ctx.inventory, ctx.hosts);
    if (prometheus.length === 0) return { problems: [] };
    const facts: ScrapeFacts = await observeMetricsEndpointsOnce(incus, ctx);
    const tagged = await observeQubesTags(ctx);
    return { problems: [], facts: { ...facts, qubesTags: tagged.tags, qubesFailures: tagged.failures } };
  },
  // The pairs this host deploys are incus_trust's controller work (planned once, applied by incus_trust).
  planController: (ctx) => {
    const { prometheus, incus } = hostsInvolved(ctx.inventory, ctx.hosts);
    return planKeyPairs({ ...ctx, hosts: prometheus.length > 0 ? [...prometheus, ...incus] : [] });
  },
};
