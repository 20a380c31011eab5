/**
 * The qubes_prometheus_proxy module: on a Qubes dom0, the qrexec policy that lets
 * prometheus-qubes-proxy reach the listed VMs' exporters (and nothing else), and the Qubes
 * service that starts the proxy in each proxy VM. desired.ts → observe.ts → plan.ts →
 * apply.ts; scrape.ts gives the matching Prometheus jobs to `reconcile scrape-config`.
 */
import { QUBES_PROMETHEUS_PROXY_SCHEMA } from './schema.js';
import type { ReconcileModule } from '../types.js';
import type { DesiredQubesProxy, ObservedQubesProxy } from './model.js';
import { desiredQubesProxy } from './desired.js';
import { observeQubesProxy } from './observe.js';
import { planQubesProxy } from './plan.js';
import { applyQubesProxy } from './apply.js';
import { QUBES_REASONS, type QubesReason } from './reasons.js';
import type { QubesPayload } from './plan.js';

export const qubesPrometheusProxy: ReconcileModule<DesiredQubesProxy, ObservedQubesProxy, QubesPayload, QubesReason> = {
  name: 'qubes_prometheus_proxy',
  reasons: QUBES_REASONS,
  variables: ['qubes_prometheus_proxy'],
  needsShell: true,
  schema: QUBES_PROMETHEUS_PROXY_SCHEMA,
  desired: (host, ctx) => desiredQubesProxy(host, ctx),
  observe: observeQubesProxy,
  plan: planQubesProxy,
  apply: applyQubesProxy,
};
