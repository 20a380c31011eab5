/**
 * HTTPS servers that are not what Incus is (#13, fail closed): a port that accepts and never
 * speaks TLS, plain HTTP where TLS was expected, a pinned server answering something that is
 * not JSON, one that never answers. Incus never does these, so these servers are small
 * stand-ins (Node's tls/https with their own certificate, pinned by the inventory); a real
 * HTTPS-only lab host is reconciled in the same run. Each bad server fails its host alone,
 * naming the step, without a stack trace; exit 1.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedPair, startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { describeHost, makeCert, note, runWithFaults, tempDir, trustStore, writeInventory } from './support.js';

const run = promisify(execFile);
let lab: Lab;
let dir: string;
const servers: net.Server[] = [];
const ports: Record<string, number> = {};

async function listen(name: string, server: net.Server): Promise<void> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  ports[name] = (server.address() as net.AddressInfo).port;
}

beforeAll(async () => {
  lab = await startLab({ name: 'faults-https', hosts: [{ name: 'real', ssh: false }] });
  dir = await tempDir('https-faults');
  await selfSignedPair('stand-in', join(dir, 's.key'), join(dir, 's.crt'));
  const tlsOptions = { key: readFileSync(join(dir, 's.key')), cert: readFileSync(join(dir, 's.crt')) };
  await listen(
    'silent',
    net.createServer(() => undefined),
  );
  await listen(
    'plainhttp',
    http.createServer((_req, res) => res.end('{"type":"sync","metadata":{}}')),
  );
  await listen(
    'garbage',
    https.createServer(tlsOptions, (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>')),
  );
  await listen(
    'hangs',
    https.createServer(tlsOptions, () => undefined),
  );
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.close();
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('HTTPS servers that are not Incus', () => {
  it('fail their host alone, naming the step; the real HTTPS-only host converges in the same run', async () => {
    const cert = await makeCert(dir, 'https-faults');
    const standIn = (name: string) => ({ name, vars: { incus_api_url: `https://127.0.0.1:${ports[name]}`, incus_server_cert_file: join(dir, 's.crt') } });
    const inv = await writeInventory(
      dir,
      [{ name: 'real', vars: lab.host('real').inventoryVars() }, ...['silent', 'plainhttp', 'garbage', 'hangs'].map(standIn)],
      { incus_trusted_clients: [{ name: 'https-faults', certificate_file: cert.file }] },
      'https-faults.yaml',
    );
    const { report, byHost } = await runWithFaults(['-i', inv, '--json'], {
      ...lab.env,
      RECONCILE_CONNECT_TIMEOUT_MS: '1500',
      RECONCILE_COMMAND_TIMEOUT_MS: '1500',
    });
    expect(byHost.real!.status).toBe('changed');
    expect((await trustStore(lab.host('real'))).map((c) => c.fingerprint)).toContain(cert.fingerprint);

    expect(byHost.silent).toMatchObject({
      status: 'unreachable',
      error: { step: 'connect', message: `no TLS connection to 127.0.0.1:${ports.silent} within 1500 ms` },
    });
    expect(byHost.plainhttp).toMatchObject({ status: 'unreachable', error: { step: 'connect' } });
    expect(byHost.plainhttp!.error!.message).toMatch(new RegExp(`^cannot reach https://127\\.0\\.0\\.1:${ports.plainhttp}: `));
    expect(byHost.garbage).toMatchObject({ status: 'failed', error: { step: 'connect' } });
    expect(byHost.garbage!.error!.message).toBe('Incus answered 200 with something that is not JSON (truncated?): "<html>maintenance</html>"');
    expect(byHost.hangs).toMatchObject({ status: 'failed', error: { step: 'connect' } });
    expect(byHost.hangs!.error!.message).toBe('Incus API (GET /1.0): no answer within 1500 ms');
    for (const name of ['silent', 'plainhttp', 'garbage', 'hangs']) note(`HTTPS stand-in: ${name}`, describeHost(report, name));
  });
});
