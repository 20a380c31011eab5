/**
 * Prometheus scrape configuration for the Incus metrics endpoints (pure).
 *
 * Every member of every Incus host or cluster is a target, at the address its daemon serves
 * the API on: core.metrics_address when set, else core.https_address (a wildcard listen
 * address is replaced by the address reconcile reached the host at). Prometheus scrapes
 * `https://TARGET/1.0/metrics` with the metrics client certificate (mTLS).
 *
 * Server verification: with `incus_server_name`, tls_config carries server_name and ca_file;
 * without it the server certificate is not verified (insecure_skip_verify: true), exactly as the
 * Terraform incus-metrics module does, and a warning names the MITM risk.
 *
 * Prometheus 2.42 has no scrape_config_files, so what reconcile deploys is a whole
 * prometheus.yml (renderPrometheusConfig): its own jobs plus `prometheus_extra_scrape_configs`
 * from the inventory, verbatim. `reconcile scrape-config` prints the scrape_configs list for
 * users who keep their own prometheus.yml and paste or template the jobs in.
 */
import { stringify } from 'yaml';

/** What one Incus host said about where it serves metrics (observed over its API). */
export interface MetricsEndpointObservation {
  /** Inventory host name. */
  host: string;
  /** The address reconcile reached the host at (ansible_host), for wildcard listen addresses. */
  reachedAt: string;
  /** Identity of a cluster (same on every member); undefined when standalone. */
  clusterId?: string;
  serverName: string;
  httpsAddress?: string;
  metricsAddress?: string;
  /** Cluster members with their API URL (standalone: empty). */
  members: { name: string; url: string }[];
  /** incus_server_name / incus_server_ca_file of the inventory host. */
  tlsServerName?: string;
  tlsCaFile?: string;
}

export interface MetricsTarget {
  /** host:port */
  address: string;
  /** Inventory host the target was learned from. */
  host: string;
  /** Incus server / cluster member name. */
  member: string;
  tlsServerName?: string;
  tlsCaFile?: string;
}

export const INCUS_DEFAULT_PORT = 8443;
export const DEFAULT_SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * Targets of every observed host, one per member; a cluster seen through several inventory
 * hosts is listed once. Warnings for hosts that serve no API on the network.
 */
export function metricsTargets(observations: MetricsEndpointObservation[]): { targets: MetricsTarget[]; warnings: string[] } {
  const targets: MetricsTarget[] = [];
  const warnings: string[] = [];
  const clusters = new Set<string>();
  const seen = new Set<string>();
  const push = (t: MetricsTarget) => {
    if (seen.has(t.address)) return;
    seen.add(t.address);
    targets.push(t);
  };
  for (const o of observations) {
    const tls = { tlsServerName: o.tlsServerName, tlsCaFile: o.tlsServerName ? (o.tlsCaFile ?? DEFAULT_SYSTEM_CA_FILE) : undefined };
    if (o.clusterId !== undefined && o.members.length > 0) {
      if (clusters.has(o.clusterId)) continue;
      clusters.add(o.clusterId);
      for (const m of o.members) {
        const address = addressOfUrl(m.url);
        if (address) push({ address, host: o.host, member: m.name, ...tls });
        else warnings.push(`${o.host}: cluster member ${m.name} has no usable API URL (${JSON.stringify(m.url)}); it is not scraped`);
      }
      continue;
    }
    const listen = o.metricsAddress || o.httpsAddress;
    if (!listen) {
      warnings.push(`${o.host}: neither core.metrics_address nor core.https_address is set, so Incus serves no metrics over the network; it is not scraped`);
      continue;
    }
    push({ address: targetAddress(listen, o.reachedAt), host: o.host, member: o.serverName, ...tls });
  }
  return { targets, warnings };
}

/** `[::]:8443`, `:8443`, `0.0.0.0:8443` → reachedAt:8443; `10.0.0.1` → 10.0.0.1:8443. */
export function targetAddress(listen: string, reachedAt: string): string {
  const m = /^(?:\[([^\]]*)\]|([^:]*))(?::(\d+))?$/.exec(listen.trim());
  if (!m) return listen.trim();
  const hostPart = m[1] ?? m[2] ?? '';
  const port = m[3] ?? String(INCUS_DEFAULT_PORT);
  const wildcard = hostPart === '' || hostPart === '0.0.0.0' || hostPart === '::';
  const host = wildcard ? reachedAt : hostPart;
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function addressOfUrl(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || INCUS_DEFAULT_PORT}`;
  } catch {
    return undefined;
  }
}

export interface IncusScrapeOptions {
  /** job_name of the (first) job; Terraform users look for "incus". */
  jobName: string;
  /** Client certificate and key paths as Prometheus sees them (on the Prometheus host). */
  certFile: string;
  keyFile: string;
  scrapeInterval?: string;
}

/** One Prometheus scrape_config object (plain data, rendered by renderScrapeConfigs). */
export type ScrapeConfig = Record<string, unknown>;

/**
 * The scrape_configs for the targets: one job when every target has the same TLS settings,
 * else one job per setting (`JOB`, `JOB-2`, …). Each target carries labels naming its
 * inventory host and Incus member.
 */
export function incusScrapeConfigs(targets: MetricsTarget[], options: IncusScrapeOptions): { configs: ScrapeConfig[]; warnings: string[] } {
  const groups = new Map<string, MetricsTarget[]>();
  for (const t of targets) {
    const key = JSON.stringify([t.tlsServerName ?? null, t.tlsCaFile ?? null]);
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const warnings: string[] = [];
  const configs: ScrapeConfig[] = [];
  let n = 0;
  for (const group of groups.values()) {
    n += 1;
    const first = group[0]!;
    const tls: Record<string, unknown> = { cert_file: options.certFile, key_file: options.keyFile };
    if (first.tlsServerName) {
      tls.server_name = first.tlsServerName;
      tls.ca_file = first.tlsCaFile ?? DEFAULT_SYSTEM_CA_FILE;
    } else {
      tls.insecure_skip_verify = true;
      const hosts = [...new Set(group.map((t) => t.host))].join(', ');
      warnings.push(
        `${hosts}: incus_server_name is not set, so Prometheus does not verify the Incus server certificate (insecure_skip_verify: true): ` +
          'anyone who can intercept the traffic can impersonate the server (MITM risk); the client certificate is still checked. ' +
          'Set incus_server_name (and incus_server_ca_file) to verify it.',
      );
    }
    const config: ScrapeConfig = { job_name: n === 1 ? options.jobName : `${options.jobName}-${n}` };
    if (options.scrapeInterval) config.scrape_interval = options.scrapeInterval;
    config.scheme = 'https';
    config.metrics_path = '/1.0/metrics';
    config.tls_config = tls;
    config.static_configs = group.map((t) => ({ targets: [t.address], labels: { incus_host: t.host, incus_member: t.member } }));
    configs.push(config);
  }
  return { configs, warnings };
}

/** `scrape_configs:` YAML with a comment header (`# ` lines, without key material). */
export function renderScrapeConfigs(configs: ScrapeConfig[], header: string[] = []): string {
  const body = stringify({ scrape_configs: configs }, { lineWidth: 0 });
  return commentLines(header) + body;
}

export interface PrometheusConfigOptions {
  /** `global:` of prometheus.yml (e.g. scrape_interval). */
  global?: Record<string, unknown>;
  /** Jobs reconcile generates (Incus, Qubes proxy). */
  configs: ScrapeConfig[];
  /** prometheus_extra_scrape_configs from the inventory, appended verbatim. */
  extra?: ScrapeConfig[];
  /** Other top-level keys kept verbatim (rule_files, alerting …) from prometheus_config_extra. */
  otherTopLevel?: Record<string, unknown>;
}

/** A whole prometheus.yml: what the prometheus_scrape module deploys. */
export function renderPrometheusConfig(options: PrometheusConfigOptions, header: string[] = []): string {
  const doc: Record<string, unknown> = {};
  if (options.global && Object.keys(options.global).length > 0) doc.global = options.global;
  for (const [k, v] of Object.entries(options.otherTopLevel ?? {})) {
    if (k !== 'global' && k !== 'scrape_configs') doc[k] = v;
  }
  doc.scrape_configs = [...options.configs, ...(options.extra ?? [])];
  return commentLines(header) + stringify(doc, { lineWidth: 0 });
}

function commentLines(lines: string[]): string {
  return lines.map((l) => (l === '' ? '#\n' : `# ${l}\n`)).join('');
}
