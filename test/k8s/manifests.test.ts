/**
 * The Kubernetes manifests of `scrape-config --format prometheus-operator|servicemonitor`, checked
 * against prometheus-operator's real CRDs and the Kubernetes API shapes (k8s-schemas.ts); the
 * checker is shown to refuse a wrong field. Stable output, and a rotation that changes only the
 * Secret's data and its fingerprint annotation.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { FINGERPRINT_ANNOTATION, renderKubernetesManifests, type KubernetesOptions, type PairMaterial } from '../../src/render/kubernetes.js';
import type { MetricsTarget } from '../../src/render/scrape-config.js';
import { manifestErrors } from './k8s-schemas.js';

const NOW = new Date('2026-11-01T00:00:00Z');

async function pair(): Promise<PairMaterial> {
  const p = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 3650, now: NOW, type: 'metrics' });
  return {
    certificatePem: p.certificatePem,
    keyPem: p.privateKeyPem,
    fingerprint: p.info.fingerprint,
    caFiles: new Map([['/etc/incus/ca.crt', p.certificatePem]]),
  };
}

const insecure: MetricsTarget[] = [
  { address: '10.0.0.1:8443', host: 'incus-a', member: 'incus-a' },
  { address: '10.0.0.2:8443', host: 'incus-b', member: 'node2' },
];
const verified: MetricsTarget[] = [
  { address: '10.0.0.3:9443', host: 'incus-c', member: 'c', tlsServerName: 'incus-c.example', tlsCaFile: '/etc/incus/ca.crt' },
];

const options = (format: KubernetesOptions['format']): KubernetesOptions => ({
  format,
  namespace: 'monitoring',
  labels: { release: 'kube-prometheus-stack' },
  secretName: 'incus-metrics-prometheus',
  name: 'incus-metrics',
  jobName: 'incus',
});

const docsOf = (text: string) => parseAllDocuments(text).map((d) => d.toJSON() as Record<string, any>);

describe('Kubernetes manifests', () => {
  it('prometheus-operator: a kubernetes.io/tls Secret (0600) and ScrapeConfigs valid against the CRD, with the prometheus.yml targets and labels', async () => {
    const p = await pair();
    const r = renderKubernetesManifests([...insecure, ...verified], p, options('prometheus-operator'));
    expect(r.errors).toEqual([]);
    expect(r.files.map((f) => [f.name, f.mode.toString(8)])).toEqual([
      ['secret.yaml', '600'],
      ['scrapeconfig.yaml', '644'],
    ]);
    const all = r.files.flatMap((f) => docsOf(f.content));
    for (const d of all) expect(manifestErrors(d)).toEqual([]);
    const [secret, first, second] = all;
    expect(secret!.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret!.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(Buffer.from(secret!.data['tls.key'], 'base64').toString()).toBe(p.keyPem);
    expect(secret!.metadata.annotations[FINGERPRINT_ANNOTATION]).toBe(p.fingerprint);
    expect(first!.spec).toEqual({
      jobName: 'incus',
      scheme: 'HTTPS',
      metricsPath: '/1.0/metrics',
      tlsConfig: {
        cert: { secret: { name: 'incus-metrics-prometheus', key: 'tls.crt' } },
        keySecret: { name: 'incus-metrics-prometheus', key: 'tls.key' },
        insecureSkipVerify: true,
      },
      staticConfigs: [
        { targets: ['10.0.0.1:8443'], labels: { incus_host: 'incus-a', incus_member: 'incus-a' } },
        { targets: ['10.0.0.2:8443'], labels: { incus_host: 'incus-b', incus_member: 'node2' } },
      ],
    });
    expect(first!.metadata).toEqual({
      name: 'incus-metrics',
      namespace: 'monitoring',
      labels: { 'app.kubernetes.io/managed-by': 'reconcile', release: 'kube-prometheus-stack' },
    });
    expect(second!.spec.tlsConfig).toEqual({
      cert: { secret: { name: 'incus-metrics-prometheus', key: 'tls.crt' } },
      keySecret: { name: 'incus-metrics-prometheus', key: 'tls.key' },
      serverName: 'incus-c.example',
      ca: { secret: { name: 'incus-metrics-prometheus', key: 'ca.crt' } },
    });
    expect(r.warnings).toEqual([expect.stringMatching(/^incus-a, incus-b: incus_server_name is not set, .*MITM risk/)]);
  });

  it('servicemonitor: Secret, selector-less Service, Endpoints and a ServiceMonitor valid against the CRD', async () => {
    const r = renderKubernetesManifests([...insecure, ...verified], await pair(), options('servicemonitor'));
    expect(r.errors).toEqual([]);
    expect(r.files.map((f) => f.name)).toEqual(['secret.yaml', 'service.yaml', 'endpoints.yaml', 'servicemonitor.yaml']);
    const all = r.files.flatMap((f) => docsOf(f.content));
    for (const d of all) expect(manifestErrors(d)).toEqual([]);
    const services = all.filter((d) => d.kind === 'Service');
    expect(services.map((s) => [s.metadata.name, s.spec.selector, s.spec.clusterIP, s.spec.ports.map((p: { port: number }) => p.port)])).toEqual([
      ['incus-metrics', undefined, 'None', [8443]],
      ['incus-metrics-2', undefined, 'None', [9443]],
    ]);
    const endpoints = all.filter((d) => d.kind === 'Endpoints');
    expect(endpoints[0]!.subsets).toEqual([
      {
        addresses: [
          { ip: '10.0.0.1', hostname: 'incus-a' },
          { ip: '10.0.0.2', hostname: 'node2' },
        ],
        ports: [{ name: 'https-8443', port: 8443, protocol: 'TCP' }],
      },
    ]);
    const monitor = all.find((d) => d.kind === 'ServiceMonitor')!;
    expect(monitor.spec.selector).toEqual({
      matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['incus-metrics', 'incus-metrics-2'] }],
    });
    expect(
      monitor.spec.endpoints.map((e: Record<string, any>) => [e.port, e.scheme, e.path, e.tlsConfig.insecureSkipVerify ?? e.tlsConfig.serverName]),
    ).toEqual([
      ['https-8443', 'https', '/1.0/metrics', true],
      ['https-9443', 'https', '/1.0/metrics', 'incus-c.example'],
    ]);
  });

  it('the check refuses a wrong field, a wrong value and a bad name (it can fail)', async () => {
    const r = renderKubernetesManifests(insecure, await pair(), options('prometheus-operator'));
    const [secret, scrape] = r.files.flatMap((f) => docsOf(f.content));
    const typo = structuredClone(scrape!);
    typo.spec.tlsConfig.keySecrets = typo.spec.tlsConfig.keySecret;
    delete typo.spec.tlsConfig.keySecret;
    expect(manifestErrors(typo)).toEqual(['monitoring.coreos.com/v1alpha1 ScrapeConfig/spec/tlsConfig must NOT have additional properties (keySecrets)']);
    const scheme = structuredClone(scrape!);
    scheme.spec.scheme = 'SPDY';
    expect(manifestErrors(scheme)).toEqual(['monitoring.coreos.com/v1alpha1 ScrapeConfig/spec/scheme must be equal to one of the allowed values']);
    const name = structuredClone(secret!);
    name.metadata.name = 'Incus_Metrics';
    expect(manifestErrors(name)[0]).toMatch(/^v1 Secret\/metadata\/name must match pattern/);
    const monitorTypo = docsOf(renderKubernetesManifests(insecure, await pair(), options('servicemonitor')).files[3]!.content)[0]!;
    monitorTypo.spec.endpoints[0].paths = '/1.0/metrics';
    expect(manifestErrors(monitorTypo)).toEqual(['monitoring.coreos.com/v1 ServiceMonitor/spec/endpoints/0 must NOT have additional properties (paths)']);
  });

  it('stable: the same inputs give the same bytes; a rotation changes only the Secret data and its fingerprint annotation', async () => {
    const a = await pair();
    const b = await pair();
    for (const format of ['prometheus-operator', 'servicemonitor'] as const) {
      const once = renderKubernetesManifests(insecure, a, options(format)).files;
      expect(renderKubernetesManifests([...insecure], a, options(format)).files).toEqual(once);
      const rotated = renderKubernetesManifests(insecure, b, options(format)).files;
      for (const [i, f] of once.entries()) {
        if (f.name !== 'secret.yaml') {
          expect(rotated[i]!.content).toBe(f.content);
          continue;
        }
        const before = f.content.split('\n');
        const after = rotated[i]!.content.split('\n');
        expect(after).toHaveLength(before.length);
        const changed = before.map((l, j) => [l, after[j]!] as const).filter(([x, y]) => x !== y);
        expect(changed.map(([x]) => x.trim().split(':')[0])).toEqual(['tls.crt', 'tls.key', 'reconcile.incus.dev/certificate-fingerprint']);
      }
    }
  });

  it('an Endpoints object takes IPs only: a target named by host name is an error for servicemonitor, fine for a ScrapeConfig', async () => {
    const named: MetricsTarget[] = [{ address: 'incus.example:8443', host: 'incus', member: 'incus' }];
    expect(renderKubernetesManifests(named, await pair(), options('servicemonitor')).errors).toEqual([
      'incus: incus.example:8443 is not an IP address; an Endpoints object lists IPs only (--format prometheus-operator takes names)',
    ]);
    expect(renderKubernetesManifests(named, await pair(), options('prometheus-operator')).errors).toEqual([]);
  });
});
