import { describe, expect, it } from 'vitest';
import type { Inventory, InventoryHost, VarDefinition } from '../../inventory/model.js';
import { desiredScrape } from './desired.js';
import type { ScrapeFacts } from './model.js';

const FILE = '/inv/hosts.yaml';
const NOW = new Date('2030-01-01T00:00:00Z');
const def = (value: unknown, name: string): VarDefinition => ({
  value,
  location: { file: FILE, line: 3, column: 5 },
  valuePath: `all.vars.${name}`,
  nested: new Map(),
});
const host = (name: string, groups: string[], vars: Record<string, unknown>): InventoryHost => ({
  name,
  groups: ['all', ...groups],
  vars: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, def(v, k)])),
});
const metrics = [{ name: 'prom-metrics', certificate_file: 'pki/m.crt', key_file: 'pki/m.key' }];
const incus1 = host('incus1', ['incus'], { incus_metrics_certificates: metrics });
const prom1 = host('prom1', ['prometheus'], { incus_metrics_certificates: metrics });
const dom0 = host('dom0', ['qubes'], { qubes_prometheus_proxy: { proxy: 'sys-net', targets: [{ vm: 'vault', ports: [9100, 9256] }] } });
const groups = new Map(
  ['all', 'incus', 'prometheus', 'qubes'].map((g) => [
    g,
    { name: g, parents: [], children: [], hosts: [], vars: {}, fileVars: {}, depth: g === 'all' ? 0 : 1 },
  ]),
);
const inventoryOf = (hosts: InventoryHost[]): Inventory => ({
  source: FILE,
  baseDir: '/inv',
  files: [FILE],
  hosts: new Map(hosts.map((h) => [h.name, h])),
  groups,
});
const facts: ScrapeFacts = {
  endpoints: [{ host: 'incus1', reachedAt: '127.0.0.9', serverName: 'incus1', httpsAddress: '127.0.0.9:8443', members: [] }],
  failures: [],
};
const desiredText = (inventory: Inventory) =>
  desiredScrape(prom1, { inventory, now: NOW, observedRun: facts, readInventoryFile: () => undefined }).desired!.configText;

const HEADER = `# Managed by reconcile (prometheus_scrape): local changes are overwritten on the next run.
# Incus metrics certificate "prom-metrics": fingerprint (known after apply)
#   cert_file /etc/prometheus/incus-metrics/prom-metrics-(known after apply).crt
#   key_file  /etc/prometheus/incus-metrics/prom-metrics-(known after apply).key
`;
const INCUS_JOB = `scrape_configs:
  - job_name: incus
    scheme: https
    metrics_path: /1.0/metrics
    tls_config:
      cert_file: /etc/prometheus/incus-metrics/prom-metrics-(known after apply).crt
      key_file: /etc/prometheus/incus-metrics/prom-metrics-(known after apply).key
      insecure_skip_verify: true
    static_configs:
      - targets:
          - 127.0.0.9:8443
        labels:
          incus_host: incus1
          incus_member: incus1
`;

describe('the prometheus.yml prometheus_scrape deploys', () => {
  it('scrapes the Qubes VMs of every dom0 through prometheus-qubes-proxy, after the Incus job', () => {
    expect(desiredText(inventoryOf([incus1, prom1, dom0]))).toBe(
      HEADER +
        INCUS_JOB +
        `  - job_name: qubes-proxy-dom0
    metrics_path: /forward
    static_configs:
      - targets:
          - sys-net:8199
        labels:
          __param_target: vault
          __param_port: "9100"
          instance: vault:9100
          vm: vault
          port: "9100"
          proxy: sys-net
          dom0: dom0
      - targets:
          - sys-net:8199
        labels:
          __param_target: vault
          __param_port: "9256"
          instance: vault:9256
          vm: vault
          port: "9256"
          proxy: sys-net
          dom0: dom0
`,
    );
  });

  it('without a dom0 in the inventory: the Incus job only', () => {
    expect(desiredText(inventoryOf([incus1, prom1]))).toBe(HEADER + INCUS_JOB);
  });
});
