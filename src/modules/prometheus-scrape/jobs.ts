/**
 * Every scrape job reconcile generates (pure): the Incus metrics jobs, then one
 * prometheus-qubes-proxy job per dom0 of the inventory. `reconcile scrape-config` prints them;
 * the prometheus_scrape module deploys them in a whole prometheus.yml — the same list.
 */
import type { Inventory } from '../../inventory/model.js';
import { incusScrapeConfigs, type IncusScrapeOptions, type MetricsTarget, type ScrapeConfig } from '../../render/scrape-config.js';
import { qubesDom0sOf, qubesProxyScrapeJobs, type QubesTaggedVms } from '../qubes-proxy/scrape.js';

export interface GeneratedScrapeJobs {
  configs: ScrapeConfig[];
  warnings: string[];
}

/**
 * `incus` undefined: no Incus job (no metrics pair or no target). `dom0Hosts`: only these
 * dom0s (scrape-config --limit); undefined: every dom0 with a valid qubes_prometheus_proxy.
 * `tagged`: the VMs of each dom0's @tag: targets, as read in dom0 (else those are not scraped).
 */
export function generatedScrapeJobs(
  inventory: Inventory,
  incus: { targets: MetricsTarget[]; options: IncusScrapeOptions } | undefined,
  dom0Hosts?: ReadonlySet<string>,
  tagged?: QubesTaggedVms,
): GeneratedScrapeJobs {
  const configs: ScrapeConfig[] = [];
  const warnings: string[] = [];
  if (incus && incus.targets.length > 0) {
    const r = incusScrapeConfigs(incus.targets, incus.options);
    configs.push(...r.configs);
    warnings.push(...r.warnings);
  }
  const qubes = qubesProxyScrapeJobs(qubesDom0sOf(inventory, dom0Hosts), tagged);
  configs.push(...qubes.jobs);
  warnings.push(...qubes.warnings);
  return { configs, warnings };
}
