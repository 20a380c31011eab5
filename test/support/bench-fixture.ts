/**
 * The benchmark's fixture: M client certificates generated once, registered on every lab host
 * straight through its local Incus socket (no `incus` process per certificate), the inventories
 * of the scenarios (in sync, drifted), and the reset that undoes an applied drift so every apply
 * repetition does the same work.
 *
 * Drift per host, as issue 8 asks (2 adds, 1 update, 1 remove): the drifted inventory names the
 * M registered certificates with the first one's description changed (update), the last one
 * `state: absent` (remove), and two certificates the hosts do not trust yet (add).
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateSelfSigned } from '../../src/pki/generate.js';
import type { CertificateInfo } from '../../src/pki/certificate.js';
import type { LabHost } from '../lab/types.js';

export interface BenchCertificate {
  name: string;
  description: string;
  /** Relative to the inventory folder. */
  file: string;
  info: CertificateInfo;
}

export interface BenchCertificates {
  /** What the hosts trust when in sync (the first `certs` of them). */
  registered: BenchCertificate[];
  /** The two that the drifted inventory adds. */
  added: [BenchCertificate, BenchCertificate];
}

export const DRIFTED_DESCRIPTION = 'bench: changed by the drifted inventory';

/** Generates `count` + 2 certificates once (ECDSA P-384) and writes them under dir/certs. */
export async function generateCertificates(dir: string, count: number, now: Date): Promise<BenchCertificates> {
  await mkdir(join(dir, 'certs'), { recursive: true });
  const all: BenchCertificate[] = [];
  for (let i = 1; i <= count + 2; i++) {
    const name = i <= count ? `bench-client-${String(i).padStart(3, '0')}` : `bench-new-${i - count}`;
    const pair = await generateSelfSigned({ commonName: name, validityDays: 365, now, type: 'client' });
    const file = `certs/${name}.crt`;
    await writeFile(join(dir, file), pair.certificatePem);
    // The private key is not needed by anyone: it is never written.
    all.push({ name, description: `bench certificate ${i}`, file, info: pair.info });
  }
  return { registered: all.slice(0, count), added: [all[count]!, all[count + 1]!] };
}

/** Certificates of the sync inventory when the hosts trust exactly the first `count`. */
export function inSyncEntries(certs: BenchCertificates, count: number): Record<string, unknown>[] {
  return certs.registered.slice(0, count).map((c) => trustedClient(c));
}

/** Certificates of the drifted inventory: 2 adds, 1 update, 1 remove against `count` registered. */
export function driftedEntries(certs: BenchCertificates, count: number): Record<string, unknown>[] {
  if (count < 2) throw new Error('the drift scenario needs at least 2 certificates per host');
  const registered = certs.registered.slice(0, count);
  const entries = registered.map((c) => trustedClient(c));
  entries[0] = { ...entries[0], description: DRIFTED_DESCRIPTION };
  entries[count - 1] = { ...entries[count - 1], state: 'absent' };
  for (const c of certs.added) entries.push(trustedClient(c));
  return entries;
}

function trustedClient(c: BenchCertificate): Record<string, unknown> {
  return { name: c.name, description: c.description, certificate_file: c.file };
}

/**
 * The certificate the HTTPS scenario authenticates with (the lab's incus client pair), trusted on
 * every host; the fixture's own resets and checks leave it alone.
 */
export const BENCH_CLIENT = 'reconcile-bench-client';

export async function trustBenchClient(hosts: LabHost[], clientCertFile: string, parallel = 16): Promise<void> {
  const der = new X509Certificate(await readFile(clientCertFile)).raw.toString('base64');
  await eachLimited(hosts, parallel, async (host) => {
    await incusOk(host, 'POST', '/1.0/certificates', { name: BENCH_CLIENT, type: 'client', certificate: der, restricted: false, projects: [] });
  });
}

/** How an inventory host is reached: as the lab says (SSH), its socket on this machine, or its HTTPS API only. */
function benchHostVars(h: LabHost, connection: 'ssh' | 'local' | 'https'): Record<string, unknown> {
  if (connection === 'https') return { incus_api_url: `https://${h.address}:8443`, incus_server_cert_file: h.serverCertFile };
  return h.inventoryVars();
}

/** Writes an inventory of `hosts` (in a `bench` group) trusting `entries`; returns its path. */
export async function writeBenchInventory(
  dir: string,
  file: string,
  hosts: LabHost[],
  entries: Record<string, unknown>[],
  connection: 'ssh' | 'local' | 'https' = 'ssh',
  extraVars: Record<string, unknown> = {},
): Promise<string> {
  const inventory = {
    all: {
      // `local` talks to each lab host's incusd socket directly: the tool without its transport.
      vars: { incus_trusted_clients: entries, ...(connection === 'local' ? { ansible_connection: 'local' } : {}), ...extraVars },
      children: {
        bench: { hosts: Object.fromEntries(hosts.map((h) => [h.name, benchHostVars(h, connection)])) },
      },
    },
  };
  const path = join(dir, file);
  await writeFile(path, stringify(inventory));
  return path;
}

interface IncusAnswer {
  status: number;
  body: { metadata?: unknown; error?: string };
}

const agents = new Map<string, Agent>();

/**
 * One request on a host's local Incus socket (the bench's own back door, not the tool's path).
 * A kept-alive socket that incusd closed meanwhile fails the write (EPIPE) or the read
 * (ECONNRESET) before incusd saw the request: that one is sent again on a fresh socket, as Node's
 * documentation advises (`request.reusedSocket`).
 */
export async function incusLocal(host: LabHost, method: string, path: string, body?: unknown): Promise<IncusAnswer> {
  try {
    return await incusLocalOnce(host, method, path, body);
  } catch (e) {
    if (!(e instanceof StaleSocketError)) throw e;
    return incusLocalOnce(host, method, path, body);
  }
}

class StaleSocketError extends Error {}

function incusLocalOnce(host: LabHost, method: string, path: string, body?: unknown): Promise<IncusAnswer> {
  const socketPath = host.incusSocket;
  if (!socketPath) throw new Error(`${host.name} runs no incusd`);
  let agent = agents.get(socketPath);
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: 4 });
    agents.set(socketPath, agent);
  }
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        agent,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} });
          } catch {
            reject(new Error(`${host.name}: ${method} ${path}: not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(req.reusedSocket && (e.code === 'EPIPE' || e.code === 'ECONNRESET') ? new StaleSocketError(e.message) : e),
    );
    if (payload) req.write(payload);
    req.end();
  });
}

async function incusOk(host: LabHost, method: string, path: string, body?: unknown): Promise<unknown> {
  const answer = await incusLocal(host, method, path, body);
  if (answer.status < 200 || answer.status >= 300) {
    throw new Error(`${host.name}: ${method} ${path}: ${answer.status} ${answer.body.error ?? ''}`);
  }
  return answer.body.metadata;
}

export function closeIncusAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

interface LiveEntry {
  name: string;
  fingerprint: string;
  description: string;
  type: string;
}

export async function liveCertificates(host: LabHost): Promise<LiveEntry[]> {
  return (await incusOk(host, 'GET', '/1.0/certificates?recursion=1')) as LiveEntry[];
}

function register(host: LabHost, c: BenchCertificate): Promise<unknown> {
  return incusOk(host, 'POST', '/1.0/certificates', {
    name: c.name,
    type: 'client',
    certificate: c.info.derBase64,
    description: c.description,
    restricted: false,
    projects: [],
  });
}

/**
 * Makes every host trust exactly the first `count` registered certificates, with their own
 * descriptions (the in-sync state): adds what is missing, removes the rest, fixes descriptions.
 */
export async function setTrustStores(hosts: LabHost[], certs: BenchCertificates, count: number, parallel = 16): Promise<void> {
  const wanted = new Map(certs.registered.slice(0, count).map((c) => [c.info.fingerprint, c]));
  await eachLimited(hosts, parallel, async (host) => {
    const live = await liveCertificates(host);
    const have = new Map(live.map((l) => [l.fingerprint, l]));
    for (const l of live) {
      if (l.type === 'server' || l.name === BENCH_CLIENT) continue;
      const c = wanted.get(l.fingerprint);
      if (!c) await incusOk(host, 'DELETE', `/1.0/certificates/${l.fingerprint}`);
      else if (l.description !== c.description || l.name !== c.name) {
        await incusOk(host, 'PATCH', `/1.0/certificates/${l.fingerprint}`, { name: c.name, description: c.description });
      }
    }
    for (const [fp, c] of wanted) if (!have.has(fp)) await register(host, c);
  });
}

/** Undoes an applied drift on every host (see the file comment): back to in sync. */
export async function undoDrift(hosts: LabHost[], certs: BenchCertificates, count: number, parallel = 16): Promise<void> {
  const first = certs.registered[0]!;
  const last = certs.registered[count - 1]!;
  await eachLimited(hosts, parallel, async (host) => {
    await Promise.all([
      ...certs.added.map((c) => incusOk(host, 'DELETE', `/1.0/certificates/${c.info.fingerprint}`)),
      register(host, last),
      incusOk(host, 'PATCH', `/1.0/certificates/${first.info.fingerprint}`, { description: first.description }),
    ]);
  });
}

/** Checks that every host shows the applied drift exactly; returns what differs (empty: all good). */
export async function verifyDriftApplied(hosts: LabHost[], certs: BenchCertificates, count: number): Promise<string[]> {
  const expected = new Map<string, string>();
  certs.registered.slice(0, count - 1).forEach((c, i) => expected.set(c.info.fingerprint, i === 0 ? DRIFTED_DESCRIPTION : c.description));
  for (const c of certs.added) expected.set(c.info.fingerprint, c.description);
  return verifyStores(hosts, expected);
}

/** Checks that every host trusts exactly the first `count` certificates, as registered. */
export async function verifyInSync(hosts: LabHost[], certs: BenchCertificates, count: number): Promise<string[]> {
  return verifyStores(hosts, new Map(certs.registered.slice(0, count).map((c) => [c.info.fingerprint, c.description])));
}

async function verifyStores(hosts: LabHost[], expected: Map<string, string>): Promise<string[]> {
  const problems: string[] = [];
  await eachLimited(hosts, 16, async (host) => {
    const live = (await liveCertificates(host)).filter((l) => l.type !== 'server' && l.name !== BENCH_CLIENT);
    const seen = new Set<string>();
    for (const l of live) {
      seen.add(l.fingerprint);
      const want = expected.get(l.fingerprint);
      if (want === undefined) problems.push(`${host.name}: unexpected certificate ${l.name}`);
      else if (want !== l.description) problems.push(`${host.name}: ${l.name} has description "${l.description}", expected "${want}"`);
    }
    for (const fp of expected.keys()) if (!seen.has(fp)) problems.push(`${host.name}: missing certificate ${fp.slice(0, 12)}`);
  });
  return problems;
}

export async function eachLimited<T>(items: T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(parallel, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(workers);
}
