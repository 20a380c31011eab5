/**
 * Prometheus in Kubernetes (pure): the manifests that hand the Incus metrics pair and targets to
 * a Prometheus run by prometheus-operator (kube-prometheus-stack, Big Bang with Istio mTLS):
 *
 *   --format prometheus-operator   a Secret (the pair) + a ScrapeConfig (monitoring.coreos.com/v1alpha1)
 *   --format servicemonitor        a Secret + a selector-less Service, its Endpoints and a
 *                                  ServiceMonitor (monitoring.coreos.com/v1)
 *
 * The same targets and labels as the prometheus.yml jobs (incusScrapeConfigs), scheme HTTPS, path
 * /1.0/metrics, and a tlsConfig that takes the client certificate and key from the Secret's keys;
 * with incus_server_name, serverName and the CA (from the Secret too), else insecureSkipVerify
 * and the same MITM warning. Output is stable — keys sorted, targets in order — so the manifests
 * diff cleanly in Git: after a rotation only the Secret's data and its fingerprint annotation
 * change. The Secret holds the private key: it is written to a 0600 file, never to stdout.
 */
import { stringify } from 'yaml';
import type { MetricsTarget } from './scrape-config.js';

export type KubernetesFormat = 'prometheus-operator' | 'servicemonitor';

export interface KubernetesOptions {
  format: KubernetesFormat;
  namespace: string;
  /** Labels the Prometheus resource selects ScrapeConfigs / ServiceMonitors on (e.g. release: kube-prometheus-stack). */
  labels: Record<string, string>;
  /** Name of the Secret holding the pair. */
  secretName: string;
  /** Name of the ScrapeConfig, or of the Service / EndpointSlice / ServiceMonitor. */
  name: string;
  /** job_name, as in prometheus.yml ("incus"). */
  jobName: string;
}

/** The metrics pair and the CA files of the targets, as read on the controller. */
export interface PairMaterial {
  certificatePem: string;
  /** Private key PEM: only ever in the Secret's file. */
  keyPem: string;
  fingerprint: string;
  /** CA certificate PEM by the tlsCaFile path targets name (incus_server_ca_file). */
  caFiles: ReadonlyMap<string, string>;
}

export interface ManifestFile {
  /** File name inside the output folder. */
  name: string;
  content: string;
  /** 0o600 for the Secret. */
  mode: number;
}

/** Kubernetes object names (DNS-1123 subdomain), label keys and label values. */
export const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
export const KUBERNETES_LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const KUBERNETES_LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** The default Secret name for a metrics certificate entry: incus-metrics-NAME, made a Kubernetes name. */
export function secretNameOf(entry: string): string {
  return `incus-metrics-${entry}`
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 253);
}

/** Annotation that names the pair's certificate (the one line that changes, with the data, after a rotation). */
export const FINGERPRINT_ANNOTATION = 'reconcile.incus.dev/certificate-fingerprint';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'reconcile' };

/** Secret keys: the kubernetes.io/tls pair, and one CA key per distinct CA file. */
const CERT_KEY = 'tls.crt';
const KEY_KEY = 'tls.key';

interface TlsGroup {
  serverName?: string;
  caKey?: string;
  targets: MetricsTarget[];
}

export function renderKubernetesManifests(
  targets: MetricsTarget[],
  pair: PairMaterial,
  options: KubernetesOptions,
): { files: ManifestFile[]; warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  const caKeys = new Map<string, string>();
  const groups = new Map<string, TlsGroup>();
  for (const t of targets) {
    let caKey: string | undefined;
    if (t.tlsServerName && t.tlsCaFile) {
      caKey = caKeys.get(t.tlsCaFile);
      if (!caKey) {
        caKey = caKeys.size === 0 ? 'ca.crt' : `ca-${caKeys.size + 1}.crt`;
        caKeys.set(t.tlsCaFile, caKey);
        if (!pair.caFiles.has(t.tlsCaFile)) errors.push(`${t.host}: incus_server_ca_file ${t.tlsCaFile} cannot be read here; the CA goes into the Secret`);
      }
    }
    const key = JSON.stringify([t.tlsServerName ?? null, caKey ?? null]);
    const g = groups.get(key) ?? { serverName: t.tlsServerName, caKey, targets: [] };
    g.targets.push(t);
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    if (g.serverName) continue;
    warnings.push(
      `${[...new Set(g.targets.map((t) => t.host))].join(', ')}: incus_server_name is not set, so Prometheus does not verify the Incus server certificate (insecureSkipVerify: true): ` +
        'anyone who can intercept the traffic can impersonate the server (MITM risk); the client certificate is still checked. ' +
        'Set incus_server_name (and incus_server_ca_file) to verify it.',
    );
  }

  const data: Record<string, string> = { [CERT_KEY]: base64(pair.certificatePem), [KEY_KEY]: base64(pair.keyPem) };
  for (const [file, key] of caKeys) data[key] = base64(pair.caFiles.get(file) ?? '');
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name: options.secretName,
      namespace: options.namespace,
      labels: { ...MANAGED_BY },
      annotations: { [FINGERPRINT_ANNOTATION]: pair.fingerprint },
    },
    data,
  };
  const files: ManifestFile[] = [{ name: 'secret.yaml', content: yaml(secret), mode: 0o600 }];
  const groupList = [...groups.values()];
  if (options.format === 'prometheus-operator') {
    const docs = groupList.map((g, i) => scrapeConfig(g, i, options));
    files.push({ name: 'scrapeconfig.yaml', content: docs.map(yaml).join('---\n'), mode: 0o644 });
  } else {
    const docs = serviceMonitorDocs(groupList, options, errors);
    files.push({ name: 'service.yaml', content: docs.services.map(yaml).join('---\n'), mode: 0o644 });
    files.push({ name: 'endpoints.yaml', content: docs.endpoints.map(yaml).join('---\n'), mode: 0o644 });
    files.push({ name: 'servicemonitor.yaml', content: yaml(docs.monitor), mode: 0o644 });
  }
  return { files, warnings, errors };
}

/** The SafeTLSConfig both CRDs take: the pair (and CA) from the Secret's keys. */
function tlsConfig(g: TlsGroup, secretName: string): Record<string, unknown> {
  const tls: Record<string, unknown> = {
    cert: { secret: { name: secretName, key: CERT_KEY } },
    keySecret: { name: secretName, key: KEY_KEY },
  };
  if (g.serverName) {
    tls.serverName = g.serverName;
    if (g.caKey) tls.ca = { secret: { name: secretName, key: g.caKey } };
  } else {
    tls.insecureSkipVerify = true;
  }
  return tls;
}

function scrapeConfig(g: TlsGroup, i: number, options: KubernetesOptions): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1alpha1',
    kind: 'ScrapeConfig',
    metadata: { name: i === 0 ? options.name : `${options.name}-${i + 1}`, namespace: options.namespace, labels: { ...MANAGED_BY, ...options.labels } },
    spec: {
      jobName: i === 0 ? options.jobName : `${options.jobName}-${i + 1}`,
      scheme: 'HTTPS',
      metricsPath: '/1.0/metrics',
      tlsConfig: tlsConfig(g, options.secretName),
      staticConfigs: g.targets.map((t) => ({ targets: [t.address], labels: { incus_host: t.host, incus_member: t.member } })),
    },
  };
}

/**
 * For operators without ScrapeConfig: a Service without selector (its endpoints are given, not
 * found), its Endpoints (core/v1: what the operator's default `endpoints` discovery role reads,
 * and what Kubernetes mirrors into EndpointSlices for the `endpointslice` role), and one
 * ServiceMonitor whose endpoints carry the scheme and tlsConfig. One Service per TLS setting.
 * The Incus member name travels as each address's hostname and is relabeled to incus_member.
 */
function serviceMonitorDocs(
  groups: TlsGroup[],
  options: KubernetesOptions,
  errors: string[],
): { services: Record<string, unknown>[]; endpoints: Record<string, unknown>[]; monitor: Record<string, unknown> } {
  const services: Record<string, unknown>[] = [];
  const endpointsDocs: Record<string, unknown>[] = [];
  const monitorEndpoints: Record<string, unknown>[] = [];
  const names: string[] = [];
  groups.forEach((g, i) => {
    const name = i === 0 ? options.name : `${options.name}-${i + 1}`;
    names.push(name);
    const byPort = new Map<number, MetricsTarget[]>();
    for (const t of g.targets) {
      const { host, port } = splitAddress(t.address);
      if (!isIp(host))
        errors.push(`${t.host}: ${t.address} is not an IP address; an Endpoints object lists IPs only (--format prometheus-operator takes names)`);
      byPort.set(port, [...(byPort.get(port) ?? []), t]);
    }
    const portName = (port: number) => `https-${port}`;
    const labels = { ...MANAGED_BY, 'app.kubernetes.io/name': name };
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: options.namespace, labels },
      spec: { clusterIP: 'None', ports: [...byPort.keys()].map((port) => ({ name: portName(port), port, targetPort: port, protocol: 'TCP' })) },
    });
    endpointsDocs.push({
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name, namespace: options.namespace, labels },
      subsets: [...byPort].map(([port, targets]) => ({
        addresses: targets.map((t) => ({ ip: splitAddress(t.address).host, hostname: hostnameLabel(t.member) })),
        ports: [{ name: portName(port), port, protocol: 'TCP' }],
      })),
    });
    for (const port of byPort.keys()) {
      monitorEndpoints.push({
        port: portName(port),
        scheme: 'https',
        path: '/1.0/metrics',
        tlsConfig: tlsConfig(g, options.secretName),
        // The member name, from whichever discovery role the Prometheus uses; `(.+)`: an absent label changes nothing.
        relabelings: [
          { sourceLabels: ['__meta_kubernetes_endpoint_hostname'], regex: '(.+)', targetLabel: 'incus_member', action: 'replace' },
          { sourceLabels: ['__meta_kubernetes_endpointslice_endpoint_hostname'], regex: '(.+)', targetLabel: 'incus_member', action: 'replace' },
        ],
      });
    }
  });
  const monitor = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: options.name, namespace: options.namespace, labels: { ...MANAGED_BY, ...options.labels } },
    spec: {
      jobLabel: 'app.kubernetes.io/name',
      selector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: names }] },
      endpoints: monitorEndpoints,
    },
  };
  return { services, endpoints: endpointsDocs, monitor };
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: address, port: 8443 };
}

/** An endpoint's hostname must be a DNS label: the member name made one. */
function hostnameLabel(member: string): string {
  const label = member
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return label || 'incus';
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** Sorted keys: the same inputs give the same bytes. */
function yaml(doc: Record<string, unknown>): string {
  return stringify(doc, { sortMapEntries: true, lineWidth: 0 });
}
