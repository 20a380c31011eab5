/**
 * The tight floor of `npm run bench`: the least any SSH-based reconciler can do. One Node
 * process opens one ssh2 connection per host, all at once, checks each host key against the
 * fingerprint it was given, sends one `GET /1.0/certificates?recursion=1` over the Incus unix
 * socket forwarded through that connection, counts the entries, and exits. No inventory, no plan,
 * no output but a count per host. With --server-info it also sends `GET /1.0` (what a reconciler
 * needs to know a cluster, the daemon and its API extensions) on a second channel, in parallel.
 *
 * Usage: node dist/test/support/tight-floor.js HOSTS.json KEYFILE [--server-info]
 *   HOSTS.json: [{ "name", "address", "port", "user", "socket", "hostKeyFingerprint" (SHA256:…) }]
 * Prints `NAME COUNT` per host; exit 1 when any host failed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client } from 'ssh2';

interface FloorHost {
  name: string;
  address: string;
  port: number;
  user: string;
  socket: string;
  hostKeyFingerprint: string;
}

/** One GET over the daemon's socket forwarded through `conn`: the answer's JSON. */
function get(conn: Client, socket: string, path: string): Promise<{ metadata: unknown }> {
  return new Promise((resolve, reject) => {
    conn.openssh_forwardOutStreamLocal(socket, (err, stream) => {
      if (err) return reject(err);
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      // incusd closes its side after the answer (Connection: close): the channel's end is the answer's.
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        try {
          // Connection: close and no chunking asked for: the body is the rest of the stream.
          const json = body.startsWith('{') ? body : body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '');
          resolve(JSON.parse(json) as { metadata: unknown });
        } catch (e) {
          reject(new Error(`not an Incus answer (${(e as Error).message}): ${text.slice(0, 600).replace(/\r?\n/g, ' | ')}`));
        }
      });
      // Written, not ended: incusd cancels a request whose client half-closed the socket.
      stream.write(`GET ${path} HTTP/1.1\r\nHost: incus\r\nConnection: close\r\n\r\n`);
    });
  });
}

/** Connects, reads the trust store (and with `serverInfo` GET /1.0 beside it), disconnects: the count of certificates. */
function certificatesOf(host: FloorHost, privateKey: Buffer, serverInfo: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn.on('error', reject);
    conn.on('ready', () => {
      const info = serverInfo ? get(conn, host.socket, '/1.0') : Promise.resolve(undefined);
      Promise.all([get(conn, host.socket, '/1.0/certificates?recursion=1'), info]).then(
        ([certificates, server]) => {
          conn.end();
          if (server && typeof (server.metadata as { environment?: unknown }).environment !== 'object') reject(new Error('GET /1.0: no environment'));
          else resolve((certificates.metadata as unknown[]).length);
        },
        (e: Error) => {
          conn.end();
          reject(e);
        },
      );
    });
    conn.connect({
      host: host.address,
      port: host.port,
      username: host.user,
      privateKey,
      hostVerifier: (key: Buffer) => `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}` === host.hostKeyFingerprint,
    });
  });
}

async function main(): Promise<number> {
  const [hostsFile, keyFile, option] = process.argv.slice(2);
  if (!hostsFile || !keyFile || (option !== undefined && option !== '--server-info')) {
    process.stderr.write('usage: tight-floor HOSTS.json KEYFILE [--server-info]\n');
    return 2;
  }
  const hosts = JSON.parse(readFileSync(hostsFile, 'utf8')) as FloorHost[];
  const key = readFileSync(keyFile);
  const results = await Promise.allSettled(hosts.map((h) => certificatesOf(h, key, option === '--server-info')));
  let failed = 0;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') process.stdout.write(`${hosts[i]!.name} ${r.value}\n`);
    else {
      failed++;
      process.stderr.write(`${hosts[i]!.name}: ${(r.reason as Error).message}\n`);
    }
  });
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
