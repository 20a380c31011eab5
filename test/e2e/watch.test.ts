/**
 * `reconcile watch` (#14) on three lab hosts (two over SSH, one over HTTPS only), scraped by a
 * real Prometheus: a certificate added by hand with the incus client is drift for that host in
 * Prometheus within seconds; incusd restarted: watch reconnects and re-plans; the host's SSH
 * sessions killed and sshd down: unreachable in /metrics, back when sshd is; a broken inventory
 * edit keeps the last good plan; with --apply (and pruning on) the hand-made certificate is
 * removed again and the store is exact. SIGTERM stops it with exit 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import { eventually, freePort, startPrometheus, type TestPrometheus } from './metrics-support.js';
import { client, makeCert, makeTempDir, reconcile, REPO, type GeneratedCert } from './trust-support.js';

let lab: Lab;
let root: string;
let prom: TestPrometheus;
let certs: Record<string, GeneratedCert>;
let inventory: string;

interface Watch {
  process: ChildProcess;
  url: string;
  log: () => string;
  stop(): Promise<number | null>;
}

async function startWatch(extra: string[] = []): Promise<Watch> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(REPO, 'bin/reconcile.js'), 'watch', '-i', inventory, '--listen', `127.0.0.1:${port}`, '--resync', '10m', ...extra],
    {
      env: lab.env,
      cwd: REPO,
    },
  );
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  child.stdout!.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    'watch serves /healthz',
    () =>
      fetch(`${url}/healthz`).then(
        (r) => r.status,
        () => 0,
      ),
    (s) => s === 200,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${log}`);
  });
  return {
    process: child,
    url,
    log: () => log,
    stop: () =>
      new Promise((resolve) => {
        child.once('close', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

const metrics = (w: Watch) => fetch(`${w.url}/metrics`).then((r) => r.text());
/** The value of one series in a /metrics text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
async function promQuery(q: string): Promise<number | undefined> {
  const body = (await (await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: { value: [number, string] }[] } };
  const r = body.data.result[0];
  return r ? Number(r.value[1]) : undefined;
}

async function storeOf(h: LabHost): Promise<string[]> {
  const rows = JSON.parse(await h.incus(['config', 'trust', 'list', '--format', 'json'])) as { name: string; type: string }[];
  return rows.map((r) => r.name).sort();
}

async function writeInv(text?: string): Promise<void> {
  await writeFile(
    inventory,
    text ??
      stringify({
        all: {
          vars: { incus_trusted_clients: [client('alice', certs.alice!)], incus_trust_prune: true },
          children: { incus: { hosts: Object.fromEntries(lab.hosts.map((h) => [h.name, h.inventoryVars()])) } },
        },
      }),
  );
}

beforeAll(async () => {
  root = await makeTempDir('watch');
  lab = await startLab({ name: 'watch', hosts: [{ name: 'a' }, { name: 'b' }, { name: 'c', ssh: false }] });
  certs = { alice: await makeCert(root, 'alice'), hand: await makeCert(root, 'hand') };
  inventory = join(root, 'hosts.yaml');
  await writeInv();
  // Converged first, as a user would have it before running watch from systemd.
  const first = await reconcile(['-i', inventory], { env: lab.env });
  expect(first.exitCode, first.stdout + first.stderr).toBe(0);
  prom = await startPrometheus(root);
}, 180_000);

afterAll(async () => {
  await prom?.stop();
  await lab?.stop();
  if (root) await rm(root, { recursive: true, force: true });
}, 120_000);

describe('reconcile watch', () => {
  it('sees a hand-made change in Prometheus, survives incusd restarts, sshd loss and a broken inventory edit', async () => {
    const w = await startWatch();
    try {
      await writeFile(
        prom.configFile,
        stringify({
          global: { scrape_interval: '1s' },
          scrape_configs: [{ job_name: 'reconcile-watch', static_configs: [{ targets: [w.url.replace('http://', '')] }] }],
        }),
      );
      await fetch(`${prom.url}/-/reload`, { method: 'POST' });
      await eventually(
        'a is in sync in Prometheus',
        () => promQuery('reconcile_host_status{host="a",status="ok"}'),
        (v) => v === 1,
      );

      // A certificate added by hand: drift for that host, in Prometheus (scraped every second).
      await lab.host('a').incus(['config', 'trust', 'add-certificate', join(root, certs.hand!.file), '--name', 'hand']);
      await eventually(
        'a shows drift in Prometheus',
        () => promQuery('reconcile_host_status{host="a",status="drift"}'),
        (v) => v === 1,
        20_000,
      );
      expect(await promQuery('reconcile_host_status{host="b",status="ok"}')).toBe(1);
      expect(w.log()).toMatch(/a: event certificate-created \/1\.0\/certificates\/\S+: re-planning a/);
      expect(sample(await metrics(w), 'reconcile_watch_events_total', { host: 'a' })).toBeGreaterThanOrEqual(1);
      expect(sample(await metrics(w), 'reconcile_watch_event_to_plan_seconds_count', {})).toBeGreaterThanOrEqual(1);

      // /plan: the current plans as the JSON report.
      const plan = (await (await fetch(`${w.url}/plan`)).json()) as { hosts: { host: string; status: string; actions: { action: string; name: string }[] }[] };
      expect(plan.hosts.find((h) => h.host === 'a')).toMatchObject({ status: 'drift', actions: [{ action: 'remove', name: 'hand' }] });

      // incusd restarted: the stream ends, watch reconnects and re-plans b.
      const before = sample(await metrics(w), 'reconcile_watch_last_plan_timestamp_seconds', { host: 'b' })!;
      await lab.host('b').stopIncus();
      await lab.host('b').startIncus();
      // The stream is up first; the re-plan it starts once open follows.
      const text = await eventually(
        'b reconnected and re-planned',
        () => metrics(w),
        (m) =>
          (sample(m, 'reconcile_watch_reconnects_total', { host: 'b' }) ?? 0) >= 1 &&
          sample(m, 'reconcile_watch_event_stream_up', { host: 'b' }) === 1 &&
          sample(m, 'reconcile_watch_last_plan_timestamp_seconds', { host: 'b' })! > before,
        30_000,
      );
      expect(sample(text, 'reconcile_host_status', { host: 'b', status: 'ok' })).toBe(1);

      // sshd gone (its sessions killed, the daemon stopped): unreachable, and back when sshd is.
      await lab.host('a').stopSshd({ dropSessions: true });
      await eventually(
        'a is unreachable in /metrics',
        () => metrics(w),
        (m) => sample(m, 'reconcile_host_status', { host: 'a', status: 'unreachable' }) === 1,
        20_000,
      );
      await lab.host('a').startSshd();
      await eventually(
        'a is back',
        () => metrics(w),
        (m) => sample(m, 'reconcile_host_status', { host: 'a', status: 'drift' }) === 1,
        45_000,
      );

      // A broken inventory edit: the last good inventory and plan stay; said in a metric and the log.
      const good = await readFile(inventory, 'utf8');
      await writeInv(`${good}\n  broken: [unclosed\n`);
      await eventually(
        'the edit is refused',
        () => metrics(w),
        (m) => sample(m, 'reconcile_watch_inventory_ok', {}) === 0,
        10_000,
      );
      expect(w.log()).toMatch(/the inventory on disk is refused, the last good one stays in use: /);
      const still = (await (await fetch(`${w.url}/plan`)).json()) as { hosts: { host: string }[] };
      expect(still.hosts.map((h) => h.host)).toEqual(['a', 'b', 'c']);
      await writeInv(good);
      await eventually(
        'the fixed inventory is taken',
        () => metrics(w),
        (m) => sample(m, 'reconcile_watch_inventory_ok', {}) === 1,
        10_000,
      );
      // SIGHUP re-reads it too (systemctl reload).
      const reloads = sample(await metrics(w), 'reconcile_watch_inventory_reloads_total', { result: 'ok' })!;
      w.process.kill('SIGHUP');
      await eventually(
        'SIGHUP reloaded',
        () => metrics(w),
        (m) => sample(m, 'reconcile_watch_inventory_reloads_total', { result: 'ok' })! > reloads,
        10_000,
      );
      expect(w.log()).toMatch(/SIGHUP: re-reading the inventory\n[\s\S]*inventory reloaded: 3 hosts/);

      // A certificate file of the inventory gone while watching: the next plan is refused and
      // logged, the last plan stays, watch keeps running.
      const certFile = join(root, certs.alice!.file);
      await rename(certFile, `${certFile}.away`);
      await lab.host('b').incus(['config', 'trust', 'add-certificate', join(root, certs.hand!.file), '--name', 'hand']);
      await eventually(
        'the plan refused',
        async () => w.log(),
        (l) => /plan failed, the last plan is kept: .*alice/.test(l),
        10_000,
      );
      expect((await fetch(`${w.url}/healthz`)).status).toBe(200);
      await rename(`${certFile}.away`, certFile);
      await lab.host('b').incus(['config', 'trust', 'remove', certs.hand!.fingerprint.slice(0, 12)]);
    } finally {
      expect(await w.stop()).toBe(0);
    }
    expect(w.log()).toMatch(/SIGTERM: stopping\n.*stopped\n$/);
  });

  it('--apply heals drift as it appears: the hand-made certificate is removed again and the store is exact', async () => {
    // a still trusts "hand" from the first test: the first plan finds it and --apply removes it.
    expect(await storeOf(lab.host('a'))).toEqual(['alice', 'hand']);
    const w = await startWatch(['--apply', '--apply-interval', '1s']);
    try {
      await eventually(
        'hand removed from a',
        () => storeOf(lab.host('a')),
        (s) => s.join() === 'alice',
        20_000,
      );
      // Added again by hand on b: removed as soon as the event arrives.
      await lab.host('b').incus(['config', 'trust', 'add-certificate', join(root, certs.hand!.file), '--name', 'hand']);
      await eventually(
        'hand removed from b',
        () => storeOf(lab.host('b')),
        (s) => s.join() === 'alice',
        20_000,
      );
      const m = await eventually(
        'every host in sync',
        () => metrics(w),
        (t) => ['a', 'b', 'c'].every((h) => sample(t, 'reconcile_host_status', { host: h, status: 'ok' }) === 1),
      );
      expect(sample(m, 'reconcile_watch_applies_total', { host: 'b', result: 'ok' })).toBeGreaterThanOrEqual(1);
      expect(w.log()).toMatch(/b: applied 1 action\(s\)/);
    } finally {
      expect(await w.stop()).toBe(0);
    }
    // c (HTTPS) keeps the certificate watch authenticates with, as any plan does; otherwise exact.
    expect(await storeOf(lab.host('c'))).toEqual(['alice', 'client.crt']);
    expect((await reconcile(['-i', inventory, '--check'], { env: lab.env })).exitCode).toBe(0);
  });

  it('an inventory that does not validate at start: exit 1 naming file and line, as a run; a bad --resync is a usage error', async () => {
    const broken = join(root, 'broken.yaml');
    await writeFile(broken, 'all:\n  hosts:\n    a: [unclosed\n');
    const r = await reconcile(['watch', '-i', broken, '--listen', `127.0.0.1:${await freePort()}`], { env: lab.env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: error: YAML syntax error`));
    const usage = await reconcile(['watch', '-i', inventory, '--resync', 'soon'], { env: lab.env });
    expect(usage.exitCode).toBe(1);
    expect(usage.stderr).toContain('watch: --resync must be a duration such as 90s, 15m or 1h (at least 100ms), not "soon"');
  });
});
