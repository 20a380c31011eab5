/**
 * The Incus API client against answers a real incusd never gives (truncated, not JSON, wrong
 * shapes): a small HTTP server on a unix socket stands in for Incus here, reached through the
 * local transport exactly as a real socket is. Real incusd answers are covered by the e2e tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from '../errors.js';
import { observeTrust } from '../modules/incus-trust/observe.js';
import { connectLocal } from './local.js';
import type { HostSession } from './types.js';

const sync = (metadata: unknown) => JSON.stringify({ type: 'sync', status: 'Success', status_code: 200, error_code: 0, error: '', metadata });
const routes: Record<string, (res: http.ServerResponse) => void> = {
  '/1.0': (res) => res.end(sync({ environment: { server_name: 'fake', server_version: '6.0.4', server_clustered: false }, config: {} })),
  '/1.0/projects': (res) => res.end(sync(['/1.0/projects/default'])),
  '/1.0/certificates?recursion=1': (res) =>
    res.end(sync([{ name: 'x', type: 'client', restricted: 'yes', projects: [], fingerprint: 'a'.repeat(64), certificate: '' }])),
  '/truncated-body': (res) => {
    res.writeHead(200, { 'Content-Length': '500', 'Content-Type': 'application/json' });
    res.write('{"type":"sync","metadata":[', () => res.socket?.destroy());
  },
  '/truncated-json': (res) => res.end('{"type":"sync","metadata":[1,2'),
  '/not-incus': (res) => res.end('[1,2,3]'),
  '/refused': (res) => {
    res.writeHead(403);
    res.end(JSON.stringify({ type: 'error', error: 'not authorized', error_code: 403, metadata: null }));
  },
  '/async': (res) => {
    res.writeHead(202);
    res.end(JSON.stringify({ type: 'async', status_code: 100, operation: '/1.0/operations/op1', metadata: {} }));
  },
  '/1.0/operations/op1/wait?timeout=5': (res) => res.end(sync({ status: 'Failure', err: 'disk full' })),
  '/chunked': (res) => {
    res.write('{"type":"sync","metadata":');
    res.end(`"${'z'.repeat(100_000)}"}`);
  },
};

let dir: string;
let server: http.Server;
let connections = 0;
let session: HostSession;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'reconcile-fake-incus-'));
  const socket = path.join(dir, 'unix.socket');
  server = http.createServer((req, res) =>
    (
      routes[req.url ?? ''] ??
      ((r: http.ServerResponse) => ((r.statusCode = 404), r.end(JSON.stringify({ type: 'error', error: 'not found', error_code: 404 }))))
    )(res),
  );
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(socket, r));
  session = await connectLocal(
    { host: 'fake', connection: 'local', address: 'localhost', port: 22, user: 'root', jumps: [], become: false, incusSocket: socket },
    { connectTimeoutMs: 1000, commandTimeoutMs: 5000, knownHostsFiles: [], acceptNewHostKeys: false },
  );
});

afterAll(async () => {
  await session?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function error(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(TransportError);
  return (e as Error).message;
}

describe('Incus API client', () => {
  it('many requests share one keep-alive connection; chunked bodies are read whole', async () => {
    const before = connections;
    for (let i = 0; i < 20; i++) await session.incus.request('GET', '/1.0/projects', 'read projects');
    expect(connections - before).toBeLessThanOrEqual(1);
    const big = await session.incus.request<string>('GET', '/chunked', 'read big');
    expect(big.metadata).toHaveLength(100_000);
  });

  it('a cut-off answer, broken JSON or a foreign shape fails the step clearly', async () => {
    expect(await error(session.incus.request('GET', '/truncated-body', 'read trust store'))).toBe(
      'fake: read trust store: Incus API (GET /truncated-body): connection closed in the middle of the response body (truncated)',
    );
    expect(await error(session.incus.request('GET', '/truncated-json', 'read trust store'))).toBe(
      'fake: read trust store: Incus answered 200 with something that is not JSON (truncated?): "{\\"type\\":\\"sync\\",\\"metadata\\":[1,2"',
    );
    expect(await error(session.incus.request('GET', '/not-incus', 'read'))).toBe(
      'fake: read: Incus answered JSON that is not an Incus response (no type sync/async/error)',
    );
    expect(await error(session.incus.request('GET', '/refused', 'read'))).toBe('fake: read: Incus refused (403): not authorized');
    expect(await error(session.incus.request('DELETE', '/async', 'remove certificate web'))).toBe(
      'fake: remove certificate web: Incus operation Failure: disk full',
    );
  });

  it('observeTrust names the bad value of a wrongly typed answer', async () => {
    expect(await error(observeTrust(session))).toBe(
      'fake: read trust store: unexpected answer from Incus to GET /1.0/certificates?recursion=1: metadata[0].restricted: expected true or false, got the string "yes"',
    );
  });
});
