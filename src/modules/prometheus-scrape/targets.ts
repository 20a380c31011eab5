/**
 * Where each Incus host serves its metrics, read over its Incus API (an edge): the server's
 * core.https_address / core.metrics_address and, for a cluster, every member's API URL.
 * Shared by the prometheus_scrape and prometheus_kubernetes modules (observeRun) and `reconcile scrape-config`.
 */
import { TransportError } from '../../errors.js';
import { DEFAULT_INCUS_METRICS_GROUP, INCUS_METRICS_GROUP_VARIABLE, incusGroupOf, incusHostsToScrape } from '../incus-trust/metrics-desired.js';
import type { InventoryHost } from '../../inventory/model.js';
import type { MetricsEndpointObservation } from '../../render/scrape-config.js';
import type { HostSession } from '../../transport/types.js';
import type { RunObserveContext } from '../types.js';
import { qubesDom0sOf, targetTags } from '../qubes-proxy/scrape.js';

/**
 * Inventory group of the Incus hosts that register the metrics certificate and are scraped
 * (when the group exists; without it, every host with incus_metrics_certificates registers it).
 */
export const INCUS_GROUP_VARIABLE = INCUS_METRICS_GROUP_VARIABLE;
export const DEFAULT_INCUS_GROUP = DEFAULT_INCUS_METRICS_GROUP;

interface ServerMetadata {
  environment?: { server_name?: string; server_clustered?: boolean; certificate_fingerprint?: string };
  config?: Record<string, string>;
}

interface MemberMetadata {
  server_name: string;
  url: string;
}

export { incusGroupOf, incusHostsToScrape };

export async function observeMetricsEndpoint(session: HostSession, host: InventoryHost): Promise<MetricsEndpointObservation> {
  const server = (await session.incus.request<ServerMetadata>('GET', '/1.0', 'read metrics address')).metadata;
  const env = server.environment ?? {};
  const clustered = env.server_clustered === true;
  let members: { name: string; url: string }[] = [];
  if (clustered) {
    const list = (await session.incus.request<MemberMetadata[]>('GET', '/1.0/cluster/members?recursion=1', 'read cluster members')).metadata;
    members = list.map((m) => ({ name: m.server_name, url: m.url }));
  }
  const str = (name: string): string | undefined => {
    const v = host.vars[name]?.value;
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  return {
    host: host.name,
    reachedAt: session.spec.address,
    clusterId: clustered ? env.certificate_fingerprint : undefined,
    serverName: env.server_name ?? host.name,
    httpsAddress: server.config?.['core.https_address'],
    metricsAddress: server.config?.['core.metrics_address'],
    members,
    tlsServerName: str('incus_server_name'),
    tlsCaFile: str('incus_server_ca_file'),
  };
}

/** observeMetricsEndpoints once per run for the same hosts, whichever module asks (prometheus_scrape, prometheus_kubernetes). */
export function observeMetricsEndpointsOnce(
  hosts: InventoryHost[],
  ctx: { session(host: InventoryHost): Promise<HostSession>; once<T>(key: string, read: () => Promise<T>): Promise<T> },
): ReturnType<typeof observeMetricsEndpoints> {
  const key = `metrics-endpoints:${hosts
    .map((h) => h.name)
    .sort()
    .join(',')}`;
  return ctx.once(key, () => observeMetricsEndpoints(hosts, ctx.session));
}

/** Observations of every host; a host that cannot be read is reported, not fatal to the others. */
export async function observeMetricsEndpoints(
  hosts: InventoryHost[],
  session: (host: InventoryHost) => Promise<HostSession>,
): Promise<{ endpoints: MetricsEndpointObservation[]; failures: { host: string; message: string }[] }> {
  const results = await Promise.all(
    hosts.map(async (h) => {
      try {
        return { endpoint: await observeMetricsEndpoint(await session(h), h) };
      } catch (e) {
        const message = e instanceof TransportError ? e.message : `${h.name}: ${(e as Error).message}`;
        return { failure: { host: h.name, message } };
      }
    }),
  );
  return {
    endpoints: results.flatMap((r) => (r.endpoint ? [r.endpoint] : [])),
    failures: results.flatMap((r) => (r.failure ? [r.failure] : [])),
  };
}

/**
 * The VMs each dom0 of the inventory gives the tags of its @tag: targets, read in dom0 with
 * `qvm-ls --raw-list --tags TAG`. A dom0 that cannot be read is a failure: the Prometheus hosts
 * are then not applied (a configuration without those VMs would drop their targets).
 */
export async function observeQubesTags(
  ctx: RunObserveContext,
): Promise<{ tags: Record<string, Record<string, string[]>>; failures: { host: string; message: string }[] }> {
  const tags: Record<string, Record<string, string[]>> = {};
  const failures: { host: string; message: string }[] = [];
  await Promise.all(
    qubesDom0sOf(ctx.inventory).map(async ({ host, desired }) => {
      const wanted = targetTags(desired);
      if (wanted.length === 0) return;
      try {
        const read = await ctx.once(`qubes-tags:${host}`, async () => {
          const session = await ctx.session(ctx.inventory.hosts.get(host)!);
          const out: Record<string, string[]> = {};
          for (const tag of wanted) {
            const r = await session.exec(['qvm-ls', '--raw-list', '--tags', tag], `list the VMs tagged ${tag}`);
            if (r.exitCode !== 0)
              throw new TransportError(host, `list the VMs tagged ${tag}`, `qvm-ls exited ${r.exitCode}: ${r.stderr.trim() || 'no message'}`);
            const names = r.stdout
              .toString('utf8')
              .split('\n')
              .map((l) => l.trim())
              .filter((l) => l !== '' && l !== 'dom0');
            // Qubes' own rule for VM names: anything else becomes no scrape target, and is said.
            const odd = names.find((n) => !/^[A-Za-z][A-Za-z0-9_.-]{0,30}$/.test(n));
            if (odd !== undefined) {
              throw new TransportError(host, `list the VMs tagged ${tag}`, `qvm-ls printed ${JSON.stringify(odd.slice(0, 60))}, which is not a Qubes VM name`);
            }
            out[tag] = [...new Set(names)].sort();
          }
          return out;
        });
        tags[host] = read;
      } catch (e) {
        failures.push({ host, message: e instanceof Error ? e.message : String(e) });
      }
    }),
  );
  return { tags, failures };
}
