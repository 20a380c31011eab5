/**
 * Every kind of thing reconcile knows how to reconcile. Adding a kind = a folder under
 * src/modules/ implementing ReconcileModule, plus one line here.
 */
import type { ModuleName, ReconcileModule } from './types.js';
import { incusTrust } from './incus-trust/index.js';
import { qubesPrometheusProxy } from './qubes-proxy/index.js';
import { prometheusScrape } from './prometheus-scrape/index.js';
import { prometheusKubernetes } from './prometheus-kubernetes/index.js';

export const MODULES: Record<ModuleName, ReconcileModule<any, any>> = {
  incus_trust: incusTrust,
  qubes_prometheus_proxy: qubesPrometheusProxy,
  prometheus_scrape: prometheusScrape,
  prometheus_kubernetes: prometheusKubernetes,
};

export const MODULE_NAMES = Object.keys(MODULES) as ModuleName[];
