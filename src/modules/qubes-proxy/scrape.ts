/**
 * The Prometheus scrape jobs that reach Qubes VMs through prometheus-qubes-proxy: one job per
 * dom0, one static target per proxy VM × target VM × port. Prometheus connects to the proxy
 * (`__address__` = PROXY:8199) and asks for `/forward?target=VM&port=PORT`; the proxy
 * relays the exporter's reply over qrexec (main.go of prometheus-qubes-proxy).
 *
 * `target` and `port` differ per target, so they are set per target through the
 * `__param_target` / `__param_port` labels, which Prometheus turns into query parameters;
 * readable labels (vm, port, proxy, dom0) and `instance` = VM:PORT stay on every series.
 * Pure: plain objects, serialized by the scrape-config command.
 */
import type { Inventory } from '../../inventory/model.js';
import { desiredQubesProxy } from './desired.js';
import { PROXY_LISTEN_PORT, type DesiredQubesProxy } from './model.js';

export type QubesScrapeStaticConfig = {
  targets: string[];
  labels: Record<string, string>;
};

/** One Prometheus `scrape_configs` entry (the subset this job uses). */
export type QubesScrapeJob = {
  job_name: string;
  metrics_path: string;
  static_configs: QubesScrapeStaticConfig[];
};

export interface QubesScrapeJobs {
  jobs: QubesScrapeJob[];
  /** Targets given as @tag: cannot be listed statically: the proxy needs a VM name. */
  warnings: string[];
}

/** The VMs dom0 gives each tag (`qvm-ls --raw-list --tags TAG`), per dom0 host, as read this run. */
export type QubesTaggedVms = Record<string, Record<string, string[]>>;

/** The `@tag:NAME` targets of a dom0's qubes_prometheus_proxy: the tags dom0 is asked about. */
export function targetTags(desired: DesiredQubesProxy): string[] {
  return desired.targets.map((t) => /^@tag:(.+)$/.exec(t.target)?.[1]).filter((t): t is string => t !== undefined);
}

export function qubesProxyScrapeJobs(dom0s: { host: string; desired: DesiredQubesProxy }[], tagged: QubesTaggedVms = {}): QubesScrapeJobs {
  const jobs: QubesScrapeJob[] = [];
  const warnings: string[] = [];
  for (const { host, desired } of [...dom0s].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0))) {
    const staticConfigs: QubesScrapeStaticConfig[] = [];
    for (const proxy of desired.proxies) {
      const address = `${desired.proxyAddresses[proxy] ?? proxy}:${PROXY_LISTEN_PORT}`;
      for (const t of desired.targets) {
        // @tag:NAME is expanded into the VMs dom0 gives that tag now: a VM tagged later is a new target.
        const tag = /^@tag:(.+)$/.exec(t.target)?.[1];
        const vms = tag !== undefined ? tagged[host]?.[tag] : t.target.startsWith('@') ? undefined : [t.target];
        if (vms === undefined) {
          if (proxy === desired.proxies[0]) {
            warnings.push(
              `${host}: qubes_prometheus_proxy target ${t.target} is allowed by the policy but not scraped: ` +
                (tag !== undefined
                  ? 'its VMs are listed in dom0 only when a Prometheus host is reconciled in the same run'
                  : 'list its VMs by name to scrape them'),
            );
          }
          continue;
        }
        for (const vm of vms) {
          for (const port of t.ports) {
            staticConfigs.push({
              targets: [address],
              labels: {
                __param_target: vm,
                __param_port: String(port),
                instance: `${vm}:${port}`,
                vm,
                port: String(port),
                proxy,
                dom0: host,
                ...(tag !== undefined ? { tag } : {}),
              },
            });
          }
        }
      }
    }
    if (staticConfigs.length > 0) jobs.push({ job_name: `qubes-proxy-${host}`, metrics_path: '/forward', static_configs: staticConfigs });
  }
  return { jobs, warnings };
}

/**
 * Every dom0 of the inventory (optionally only `hosts`) with a valid qubes_prometheus_proxy,
 * for qubesProxyScrapeJobs. Invalid ones are left out: validation reports them.
 */
export function qubesDom0sOf(inventory: Inventory, hosts?: ReadonlySet<string>): { host: string; desired: DesiredQubesProxy }[] {
  const out: { host: string; desired: DesiredQubesProxy }[] = [];
  for (const h of inventory.hosts.values()) {
    if (hosts && !hosts.has(h.name)) continue;
    const { desired } = desiredQubesProxy(h, { inventory });
    if (desired) out.push({ host: h.name, desired });
  }
  return out;
}
