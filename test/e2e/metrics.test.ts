/**
 * Metrics certificates end to end, against real daemons: two incusd (each its own INCUS_DIR,
 * HTTPS API on its own loopback address) and a real Prometheus (Debian package). reconcile
 * generates the pair, registers it as type metrics, deploys pair and prometheus.yml, reloads
 * Prometheus; Prometheus then scrapes /1.0/metrics of both daemons. Then a rotation of a
 * certificate that expires within rotate_before_days, with Prometheus watched all along.
 *
 * Every check reads the real state independently of reconcile: Prometheus's /api/v1/targets,
 * `incus config trust list`, the files and their modes, /1.0/metrics fetched with a pair.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseCertificatePem } from '../../src/pki/certificate.js';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { eventually, metricsStatus, startPrometheus, type PromTarget, type TestPrometheus } from './metrics-support.js';
import { makeTempDir, reconcile, startHosts, stopHosts, type TestIncus } from './trust-support.js';

const NAME = 'prometheus-metrics';
// 127.81.N.x: a /24 of its own per test process.
const NET = `127.81.${(process.pid % 250) + 1}`;
const ADDRESSES = [`${NET}.1:8443`, `${NET}.2:8443`];

let root: string;
let hosts: TestIncus[] = [];
let prom: TestPrometheus | undefined;
let inventory: string;
let playbook: string;

async function writeInventoryFile(entry: Record<string, unknown>): Promise<void> {
  const inv = {
    all: {
      vars: { incus_metrics_certificates: [{ name: NAME, certificate_file: 'pki/metrics.crt', key_file: 'pki/metrics.key', ...entry }] },
      children: {
        incus: { hosts: Object.fromEntries(hosts.map((h) => [h.name, h.inventoryVars()])) },
        prometheus: {
          hosts: {
            prom1: {
              ansible_connection: 'local',
              incus_socket: hosts[0]!.socket,
              prometheus_config_file: prom!.configFile,
              prometheus_metrics_cert_dir: join(prom!.dir, 'certs'),
              prometheus_key_owner: 'root',
              prometheus_reload_url: `${prom!.url}/-/reload`,
              prometheus_global: { scrape_interval: '1s', scrape_timeout: '1s' },
              prometheus_trust_wait_seconds: 30,
            },
          },
        },
      },
    },
  };
  await writeFile(inventory, stringify(inv));
}

const metricsTrust = async (h: TestIncus) => (await h.trust()).filter((r) => r.type === 'metrics').map((r) => `${r.name} ${r.fingerprint}`);
const pem = (f: string) => readFile(join(root, f), 'utf8');
const fingerprintOf = async (f: string) => parseCertificatePem(await pem(f)).fingerprint;
const health = (ts: PromTarget[]) => ts.map((t) => `${t.scrapeUrl} ${t.health}`).sort();

beforeAll(async () => {
  root = await makeTempDir('metrics');
  hosts = await startHosts(root, ['incus1', 'incus2']);
  await Promise.all(hosts.map((h, i) => h.incus(['config', 'set', 'core.https_address', ADDRESSES[i]!])));
  prom = await startPrometheus(root);
  inventory = join(root, 'hosts.yaml');
  playbook = join(root, 'site.yaml');
  await writeFile(
    playbook,
    stringify([
      { name: 'Incus trust stores', hosts: 'incus', reconcile: ['incus_trust'] },
      { name: 'Prometheus', hosts: 'prometheus', reconcile: ['prometheus_scrape'] },
    ]),
  );
  await mkdir(join(root, 'pki'));
  // 40 days, rotated 5 days before expiry: not due yet.
  await writeInventoryFile({ validity_days: 40, rotate_before_days: 5 });
}, 120_000);

afterAll(async () => {
  await prom?.stop();
  await stopHosts(hosts, root);
});

describe('metrics certificates end to end', () => {
  it('check mode says the pair would be generated and changes nothing', async () => {
    const r = await reconcile([playbook, '-i', inventory, '--check']);
    expect(r.stderr).not.toContain('PRIVATE KEY');
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain('(known after apply)');
    await expect(stat(join(root, 'pki/metrics.crt'))).rejects.toThrow(/ENOENT/);
    expect(await metricsTrust(hosts[0]!)).toEqual([]);
  });

  it('apply generates the pair, registers it on every Incus host, and Prometheus scrapes both targets up', async () => {
    const r = await reconcile([playbook, '-i', inventory]);
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const fp = await fingerprintOf('pki/metrics.crt');
    expect((await stat(join(root, 'pki/metrics.key'))).mode & 0o777).toBe(0o600);
    for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${fp}`]);

    // On the Prometheus host: the pair under its versioned name, the key 0600, a whole prometheus.yml.
    const certDir = join(prom!.dir, 'certs');
    const stem = `${NAME}-${fp.slice(0, 12)}`;
    expect((await readdir(certDir)).sort()).toEqual([`${stem}.crt`, `${stem}.key`]);
    expect((await stat(join(certDir, `${stem}.key`))).mode & 0o777).toBe(0o600);
    const config = await readFile(prom!.configFile, 'utf8');
    expect(config).toContain(`cert_file: ${join(certDir, `${stem}.crt`)}`);
    expect(config).toContain('insecure_skip_verify: true');

    const targets = await eventually('both Incus targets up', () => prom!.targets(), (ts) => ts.length === 2 && ts.every((t) => t.health === 'up'));
    expect(health(targets)).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`));

    // The same run again finds nothing to do.
    const again = await reconcile([playbook, '-i', inventory, '--check']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
  });

  it('a certificate that is not registered is refused by Incus (403); the registered one is served', async () => {
    const stranger = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 30, now: new Date(), type: 'metrics' });
    for (const a of ADDRESSES) {
      expect(await metricsStatus(a, stranger.certificatePem, stranger.privateKeyPem)).toBe(403);
      expect(await metricsStatus(a, await pem('pki/metrics.crt'), await pem('pki/metrics.key'))).toBe(200);
    }
  });

  it('scrape-config prints the jobs with fingerprint and paths, and warns about the MITM risk', async () => {
    const fp = await fingerprintOf('pki/metrics.crt');
    const r = await reconcile(['scrape-config', '-i', inventory]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`# certificate "${NAME}": fingerprint ${fp}`);
    expect(r.stdout).toContain('metrics_path: /1.0/metrics');
    for (const a of ADDRESSES) expect(r.stdout).toContain(`- ${a}`);
    expect(r.stderr).toMatch(/insecure_skip_verify: true.*MITM risk/);
    const json = JSON.parse((await reconcile(['scrape-config', '-i', inventory, '--json'])).stdout) as { certificate: { fingerprint: string }; targets: { address: string }[] };
    expect(json.certificate.fingerprint).toBe(fp);
    expect(json.targets.map((t) => t.address)).toEqual(ADDRESSES);
  });

  it('rotation of a certificate expiring within rotate_before_days: Prometheus stays up, then only the new certificate is trusted', async () => {
    const oldFp = await fingerprintOf('pki/metrics.crt');
    const oldPair = { cert: await pem('pki/metrics.crt'), key: await pem('pki/metrics.key') };
    // The 40-day certificate is now within rotate_before_days (50) of its expiry.
    await writeInventoryFile({ validity_days: 100, rotate_before_days: 50 });

    // Watch Prometheus all along: any scrape that fails shows as a target not up.
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const t of await prom!.targets()) if (t.health !== 'up') seen.push(`${t.scrapeUrl} ${t.health} ${t.lastError}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    try {
      const first = await reconcile([playbook, '-i', inventory]);
      expect(first.exitCode, first.stdout + first.stderr).toBe(0);
      const newFp = await fingerprintOf('pki/metrics.crt');
      expect(newFp).not.toBe(oldFp);
      expect(await fingerprintOf('pki/metrics.crt.previous')).toBe(oldFp);
      // Both trusted while Prometheus moves to the new pair.
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${newFp.slice(0, 12)}.crt`);
      expect((await readdir(join(prom!.dir, 'certs'))).sort()).toEqual([`${NAME}-${newFp.slice(0, 12)}.crt`, `${NAME}-${newFp.slice(0, 12)}.key`]);
      expect(await readFile(join(root, 'pki/metrics.crt.deployed'), 'utf8')).toBe(`prom1 ${newFp}\n`);

      // Next run: every Prometheus host has the new pair, so the old certificate goes.
      const second = await reconcile([playbook, '-i', inventory]);
      expect(second.exitCode, second.stdout + second.stderr).toBe(0);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${newFp}`]);
      // A few more scrapes with the new pair only.
      await new Promise((r) => setTimeout(r, 3000));
      expect(health(await prom!.targets())).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`));

      for (const a of ADDRESSES) {
        expect(await metricsStatus(a, oldPair.cert, oldPair.key)).toBe(403);
        expect(await metricsStatus(a, await pem('pki/metrics.crt'), await pem('pki/metrics.key'))).toBe(200);
      }
      const third = await reconcile([playbook, '-i', inventory, '--check']);
      expect(third.exitCode, third.stdout + third.stderr).toBe(0);
    } finally {
      watching = false;
      await watcher;
    }
    expect(seen).toEqual([]);
  });
});
