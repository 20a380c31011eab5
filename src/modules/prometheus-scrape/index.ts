/**
 * The prometheus_scrape module, for the hosts of the Prometheus group: deploys the Incus
 * metrics client pair and a whole prometheus.yml scraping every Incus member, then reloads
 * Prometheus. Its prepare step generates missing pairs (apply mode) and reads where every
 * Incus host of the inventory serves its metrics, which desired() turns into targets.
 */
import type { InventoryHost } from '../../inventory/model.js';
import { generatedKeyPairs, prepareMetricsKeys } from '../incus-trust/metrics-keys.js';
import type { ReconcileModule } from '../types.js';
import { applyScrape } from './apply.js';
import { desiredScrape, isPrometheusHost } from './desired.js';
import type { DesiredScrape, ObservedScrape, ScrapeFacts } from './model.js';
import { observeScrape } from './observe.js';
import { planScrape } from './plan.js';
import { incusGroupOf, incusHostsToScrape, observeMetricsEndpoints } from './targets.js';

export const prometheusScrape: ReconcileModule<DesiredScrape, ObservedScrape> = {
  name: 'prometheus_scrape',
  desired: desiredScrape,
  observe: observeScrape,
  plan: planScrape,
  apply: applyScrape,
  prepare: async (ctx) => {
    const promHosts = ctx.hosts.filter(isPrometheusHost);
    if (promHosts.length === 0) return { problems: [] };
    const incusHosts = new Map<string, InventoryHost>();
    for (const h of promHosts) for (const i of incusHostsToScrape(ctx.inventory, incusGroupOf(h))) incusHosts.set(i.name, i);
    const keys = ctx.check ? { events: [], problems: [] } : await prepareMetricsKeys(ctx.inventory, [...promHosts, ...incusHosts.values()], ctx.now);
    const facts: ScrapeFacts = await observeMetricsEndpoints([...incusHosts.values()], ctx.session);
    return { problems: keys.problems, facts, generated: generatedKeyPairs(keys.events) };
  },
};
