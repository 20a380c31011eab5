/**
 * `reconcile watch` in the bench: on the same lab hosts, in sync, watched with pruning on (so a
 * certificate added by hand is drift):
 *   - latency: a certificate added by hand on one host (through the bench's back door to its
 *     socket, as `incus config trust add` would), timed until /metrics says that host drifted;
 *     then removed, and timed until it is back in sync; one host after the other, `rounds` times;
 *   - memory: the watch process's RSS (/proc/PID/status) after 100 lifecycle events and after
 *     `events` (profiles created and deleted on every host: events watch receives, counts and
 *     parses, none of which changes a plan).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { freePort } from '../lab/lab.js';
import type { LabHost } from '../lab/types.js';
import { eachLimited, incusLocal, type BenchCertificate } from './bench-fixture.js';

export interface WatchBench {
  rounds: number;
  /** From the hand-made change to the drift in /metrics, per round. */
  toDriftMs: number[];
  medianToDriftMs: number;
  /** From undoing it to in sync in /metrics. */
  medianToSyncMs: number;
  events: number;
  rssAfter100Mb: number;
  rssAfterAllMb: number;
  /** rssAfterAll / rssAfter100 */
  rssRatio: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sampleOf(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`watch bench: ${what} not seen within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

export async function measureWatch(options: {
  cli: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  inventory: string;
  hosts: LabHost[];
  extra: BenchCertificate;
  rounds: number;
  events: number;
  log: (line: string) => void;
}): Promise<WatchBench> {
  const port = await freePort();
  const child = spawn(process.execPath, [options.cli, 'watch', '-i', options.inventory, '--prune', '--listen', `127.0.0.1:${port}`, '--resync', '1h'], {
    env: options.env,
    cwd: options.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + String(d)).slice(-4000)));
  const metrics = () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const status = async (host: string, s: string) => sampleOf(await metrics(), 'reconcile_host_status', { host, status: s }) === 1;
  try {
    await until('every host in sync', async () => (await Promise.all(options.hosts.map((h) => status(h.name, 'ok')))).every(Boolean), 60_000, 200).catch(
      (e) => {
        throw new Error(`${(e as Error).message}\n${log}`);
      },
    );
    // Every stream open before anything is timed.
    await until(
      'every event stream open',
      async () =>
        (await metrics()).split('\n').filter((l) => l.startsWith('reconcile_watch_event_stream_up{') && l.endsWith(' 1')).length === options.hosts.length,
      30_000,
      100,
    );

    const toDrift: number[] = [];
    const toSync: number[] = [];
    const cert = options.extra;
    for (let round = 0; round < options.rounds; round++) {
      const host = options.hosts[round % options.hosts.length]!;
      let t = performance.now();
      await incusLocal(host, 'POST', '/1.0/certificates', {
        name: 'by-hand',
        type: 'client',
        certificate: cert.info.derBase64,
        restricted: false,
        projects: [],
      });
      await until(`${host.name} drift`, () => status(host.name, 'drift'), 10_000);
      toDrift.push(performance.now() - t);
      t = performance.now();
      await incusLocal(host, 'DELETE', `/1.0/certificates/${cert.info.fingerprint}`);
      await until(`${host.name} in sync`, () => status(host.name, 'ok'), 10_000);
      toSync.push(performance.now() - t);
    }
    options.log(`watch: change → drift in /metrics: ${toDrift.map((x) => `${Math.round(x)} ms`).join(', ')}`);

    // Memory: events that change no plan, from every host at once.
    const eventsSeen = async () =>
      (await metrics())
        .split('\n')
        .filter((l) => l.startsWith('reconcile_watch_events_total{'))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const base = await eventsSeen();
    let made = 0;
    const makeEvents = async (count: number) => {
      const pairs = Math.ceil(count / 2);
      const perHost = Math.ceil(pairs / options.hosts.length);
      await eachLimited(options.hosts, 16, async (h) => {
        for (let i = 0; i < perHost && made < count; i++) {
          const name = `bench-ev-${i}`;
          await incusLocal(h, 'POST', '/1.0/profiles', { name, config: {}, devices: {} });
          await incusLocal(h, 'DELETE', `/1.0/profiles/${name}`);
          made += 2;
        }
      });
    };
    await makeEvents(100);
    await until('100 events seen', async () => (await eventsSeen()) - base >= 100, 30_000, 50);
    const rss100 = await rssMb(child.pid!);
    made = 0;
    await makeEvents(options.events);
    await until(`${options.events} events seen`, async () => (await eventsSeen()) - base >= options.events, 120_000, 100);
    await sleep(500);
    const rssAll = await rssMb(child.pid!);
    const seen = (await eventsSeen()) - base;
    options.log(`watch: RSS ${rss100.toFixed(1)} MB after 100 events, ${rssAll.toFixed(1)} MB after ${seen}`);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      rounds: options.rounds,
      toDriftMs: toDrift.map((x) => Math.round(x)),
      medianToDriftMs: Math.round(median(toDrift)),
      medianToSyncMs: Math.round(median(toSync)),
      events: seen,
      rssAfter100Mb: Math.round(rss100 * 10) / 10,
      rssAfterAllMb: Math.round(rssAll * 10) / 10,
      rssRatio: Math.round((rssAll / rss100) * 100) / 100,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
}
