/**
 * Metrics of a real two-member Incus cluster (lab hosts: real sshd + incusd each) scraped by a
 * real Prometheus: the inventory names only the first member, yet every member is a target
 * (learned from the cluster's member list); the certificate is registered once, in the
 * cluster's shared trust store, and both members serve /1.0/metrics with it.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import { eventually, startPrometheus, type TestPrometheus } from './metrics-support.js';
import { reconcile, type TrustRow } from './trust-support.js';

let lab: Lab | undefined;
let prom: TestPrometheus | undefined;
let inventory: string;
let members: LabHost[] = [];

/** `incus admin init --preseed` on a lab host (its own INCUS_DIR), the preseed on stdin. */
function preseed(host: LabHost, yamlText: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('incus', ['admin', 'init', '--preseed'], { env: { ...process.env, INCUS_DIR: host.incusDir } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`preseed on ${host.name}: ${err}`))));
    p.stdin.end(yamlText);
  });
}

beforeAll(async () => {
  lab = await startLab({
    name: 'metrics-cluster',
    hosts: [
      { name: 'c1', https: true },
      { name: 'c2', https: true },
      { name: 'prom1', incus: false },
    ],
  });
  members = [lab.host('c1'), lab.host('c2')];
  const [c1, c2] = members as [LabHost, LabHost];
  await c1.incus(['cluster', 'enable', 'c1']);
  const token = (await c1.incus(['cluster', 'add', 'c2'])).trim().split('\n').pop()!.trim();
  await preseed(c2, stringify({ cluster: { enabled: true, server_name: 'c2', server_address: `${c2.address}:8443`, cluster_token: token } }));
  prom = await startPrometheus(lab.dir);
  await mkdir(join(lab.dir, 'pki'));
  inventory = join(lab.dir, 'hosts.yaml');
  await writeFile(
    inventory,
    stringify({
      all: {
        vars: { incus_metrics_certificates: [{ name: 'prometheus-metrics', certificate_file: 'pki/metrics.crt', key_file: 'pki/metrics.key' }] },
        children: {
          // Only the first member is named: the other one is found through the cluster.
          incus: { hosts: { c1: c1.inventoryVars() } },
          prometheus: {
            hosts: {
              prom1: {
                ...lab.host('prom1').inventoryVars(),
                prometheus_config_file: prom.configFile,
                prometheus_metrics_cert_dir: join(prom.dir, 'certs'),
                prometheus_key_owner: 'root',
                prometheus_reload_url: `${prom.url}/-/reload`,
                prometheus_global: { scrape_interval: '2s', scrape_timeout: '2s' },
              },
            },
          },
        },
      },
    }),
  );
}, 180_000);

afterAll(async () => {
  await prom?.stop();
  await lab?.stop();
}, 120_000);

describe('metrics of an Incus cluster', () => {
  it('every member is a target and is scraped up with the certificate registered once in the shared store', async () => {
    const r = await reconcile(['-i', inventory], { env: lab!.env });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const addresses = members.map((m) => `${m.address}:8443`);
    const targets = await eventually(
      'both cluster members up',
      () => prom!.targets(),
      (ts) => ts.length === 2 && ts.every((t) => t.health === 'up'),
    );
    expect(targets.map((t) => `${t.scrapeUrl} ${t.labels.incus_member} ${t.health}`).sort()).toEqual(
      [`https://${addresses[0]}/1.0/metrics c1 up`, `https://${addresses[1]}/1.0/metrics c2 up`].sort(),
    );
    // One metrics entry, seen identically from both members (one cluster database).
    for (const m of members) {
      const rows = (JSON.parse(await m.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[]).filter((x) => x.type === 'metrics');
      expect(rows.map((x) => x.name)).toEqual(['prometheus-metrics']);
    }

    const sc = await reconcile(['scrape-config', '-i', inventory], { env: lab!.env });
    expect(sc.exitCode, sc.stderr).toBe(0);
    expect(sc.stdout).toContain(`# targets: ${addresses.join(', ')}`);
  });
});
