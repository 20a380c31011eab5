/**
 * Event streams that are not what Incus sends, under `reconcile watch` (#14, fail closed). Each
 * fake host is a unix socket in front of a real lab incusd (`ansible_connection: local`,
 * `incus_socket`): its API answers are the daemon's own, only `/1.0/events` misbehaves —
 * garbage frames, a stream that closes at once, an upgrade refused, a flood of 2,000 events.
 * Incus never does these, so this is where a stand-in is right. Watch must keep serving, back
 * off instead of spinning, coalesce a flood into a few plans, and still see a real change on a
 * real host at once.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { freePort } from '../e2e/metrics-support.js';
import { makeCert, note, REPO, tempDir, until, writeInventory } from './support.js';

type Mode = 'garbage' | 'closes' | 'refuses' | 'flood';
const MODES: Mode[] = ['garbage', 'closes', 'refuses', 'flood'];

let lab: Lab;
let dir: string;
const servers: Server[] = [];
const upgrades: Record<Mode, number> = { garbage: 0, closes: 0, refuses: 0, flood: 0 };

const event = (action: string) =>
  JSON.stringify({ type: 'lifecycle', timestamp: new Date().toISOString(), metadata: { action, source: '/1.0/certificates/x' } });

/** A socket that forwards the API to the real daemon and plays `mode` on /1.0/events. */
async function standIn(mode: Mode, socket: string, upstream: string): Promise<void> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  const server = createServer((req, res) => {
    const up = httpRequest({ socketPath: upstream, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(up);
  });
  server.on('upgrade', (req, sock: Duplex, head) => {
    upgrades[mode] += 1;
    if (mode === 'refuses') {
      sock.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, sock, head, (ws) => {
      if (mode === 'closes') return ws.close(1011, 'stand-in: closing at once');
      if (mode === 'garbage') {
        ws.send('not json at all');
        ws.send(Buffer.from([0, 1, 2, 255]));
        ws.send('x'.repeat(1024 * 1024));
        ws.send('{"type":"lifecycle","metadata":');
        ws.send(event('certificate-created'));
        return;
      }
      setTimeout(() => {
        for (let i = 0; i < 2000; i++) ws.send(event('certificate-updated'));
      }, 300);
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  servers.push(server);
}

beforeAll(async () => {
  lab = await startLab({ name: 'watch-faults', hosts: [{ name: 'real' }] });
  dir = await tempDir('watch-faults');
  for (const mode of MODES) await standIn(mode, join(dir, `${mode}.sock`), lab.host('real').incusSocket!);
}, 120_000);

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('event streams that are not what Incus sends', () => {
  it('garbage, a stream closing at once, a refused upgrade and a flood: watch backs off, coalesces, keeps serving, and a real change is seen at once', async () => {
    const cert = await makeCert(dir, 'watch-faults');
    const hand = await makeCert(dir, 'hand');
    const inv = await writeInventory(
      dir,
      [
        { name: 'real', vars: lab.host('real').inventoryVars() },
        ...MODES.map((m) => ({ name: m, vars: { ansible_connection: 'local', incus_socket: join(dir, `${m}.sock`) } })),
      ],
      { incus_trusted_clients: [{ name: 'watch-faults', certificate_file: cert.file }] },
      'watch-faults.yaml',
    );
    const port = await freePort();
    const child = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), 'watch', '-i', inv, '--listen', `127.0.0.1:${port}`, '--resync', '10m'], {
      env: lab.env,
    });
    let log = '';
    child.stderr.on('data', (d) => (log += d));
    const metrics = () =>
      fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
    const value = (text: string, series: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(series))
          ?.split(' ')
          .pop() ?? NaN,
      );
    try {
      await until('watch planned', async () => ((await metrics()).includes('reconcile_host_status') ? true : undefined), 30_000);
      // The flood: 2,000 events, a handful of plans.
      await until('the flood received', async () => (value(await metrics(), 'reconcile_watch_events_total{host="flood"}') >= 2000 ? true : undefined), 20_000);
      await new Promise((r) => setTimeout(r, 1500));
      const floodPlans = log.split('\n').filter((l) => /planned .*flood/.test(l)).length;
      expect(floodPlans).toBeGreaterThanOrEqual(1);
      expect(floodPlans).toBeLessThan(30);
      // Garbage is skipped; the one valid event in it re-plans the host.
      expect(log).toMatch(/garbage: event certificate-created \/1\.0\/certificates\/x: re-planning garbage/);
      // A stream that closes at once, and an upgrade refused: reconnected with backoff, not in a loop.
      const m = await metrics();
      expect(value(m, 'reconcile_watch_event_stream_up{host="closes"}')).toBe(0);
      expect(value(m, 'reconcile_watch_event_stream_up{host="refuses"}')).toBe(0);
      expect(upgrades.closes).toBeLessThanOrEqual(8);
      expect(upgrades.refuses).toBeLessThanOrEqual(8);
      expect(log).toMatch(/refuses: cannot open the event stream: Unexpected server response: 500/);
      expect(log).toMatch(/closes: event stream ended \(stand-in: closing at once\)/);
      // Through all of that, a real change on the real host is drift in /metrics at once.
      const t = Date.now();
      await lab.host('real').incus(['config', 'trust', 'add-certificate', join(dir, hand.file), '--name', 'hand']);
      const unmanagedOnReal = (text: string) =>
        Number(
          text
            .split('\n')
            .find((l) => l.startsWith('reconcile_host_unmanaged_certificates{') && l.includes('host="real"'))
            ?.split(' ')
            .pop(),
        );
      await until('the real change seen', async () => (unmanagedOnReal(await metrics()) === 1 ? true : undefined), 10_000, 20);
      expect(Date.now() - t).toBeLessThan(5_000);
      note(
        'watch: garbage frames, a stream closing at once, an upgrade refused, 2,000 events',
        `flood planned ${floodPlans} times; closes reopened ${upgrades.closes}×, refuses ${upgrades.refuses}× in ~4 s; a real change seen in ${Date.now() - t} ms`,
      );
    } finally {
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.once('close', r));
      expect(code, log).toBe(0);
    }
  });
});
