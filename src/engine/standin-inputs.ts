/**
 * STAND-IN until the transport engineer's connectHost lands: `ansible_connection: local` only,
 * with the Incus API over HTTP on its unix socket (ETags included). Replaced, not extended.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { TransportError } from '../errors.js';
import type { InventoryHost } from '../inventory/model.js';
import type { ConnectionSpec, HostSession, IncusResponse, TransportOptions } from '../transport/types.js';

export function connectionSpecStandIn(host: InventoryHost): ConnectionSpec {
  const v = (k: string) => host.vars[k]?.value;
  return {
    host: host.name,
    connection: v('ansible_connection') === 'local' ? 'local' : 'ssh',
    address: String(v('ansible_host') ?? host.name),
    port: Number(v('ansible_port') ?? 22),
    user: String(v('ansible_user') ?? 'root'),
    privateKeyFile: v('ansible_ssh_private_key_file') as string | undefined,
    jumps: [],
    become: v('ansible_become') === true,
    incusSocket: String(v('incus_socket') ?? '/var/lib/incus/unix.socket'),
  };
}

/** Local connection only: exec via spawn, Incus via HTTP on its unix socket (ETags included). */
export async function connectStandIn(spec: ConnectionSpec, transport: TransportOptions): Promise<HostSession> {
  if (spec.connection !== 'local') {
    throw new TransportError(spec.host, 'connect', 'ssh is not available in this build yet (stand-in transport)', true);
  }
  return {
    spec,
    exec: (argv, step, options) =>
      new Promise((resolveExec, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        let err = '';
        child.stdout.on('data', (d: Buffer) => out.push(d));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('error', (e) => reject(new TransportError(spec.host, step, e.message)));
        child.on('close', (code) => resolveExec({ exitCode: code ?? 1, stdout: Buffer.concat(out), stderr: err }));
        child.stdin.end(options?.stdin ?? '');
      }),
    incus: {
      request: <T>(method: string, path: string, step: string, body?: unknown, options?: { ifMatch?: string }) =>
        new Promise<IncusResponse<T>>((resolveReq, reject) => {
          const payload = body === undefined ? undefined : JSON.stringify(body);
          const headers: Record<string, string> = {};
          if (payload) headers['content-type'] = 'application/json';
          if (options?.ifMatch) headers['if-match'] = options.ifMatch;
          const req = httpRequest({ socketPath: spec.incusSocket, path, method, headers, timeout: transport.commandTimeoutMs }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () => {
              let json: { metadata?: T; error?: string; type?: string };
              try {
                json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              } catch {
                return reject(new TransportError(spec.host, step, `Incus answered ${res.statusCode} with a body that is not JSON`));
              }
              const status = res.statusCode ?? 0;
              if (status < 200 || status >= 300 || json.type === 'error') {
                return reject(new TransportError(spec.host, step, `Incus answered ${status}: ${json.error ?? 'error'}`));
              }
              const etag = res.headers.etag;
              resolveReq({ status, etag: typeof etag === 'string' ? etag : undefined, metadata: json.metadata as T });
            });
          });
          req.on('error', (e) => reject(new TransportError(spec.host, step, e.message)));
          req.on('timeout', () => req.destroy(new Error('timed out')));
          if (payload) req.write(payload);
          req.end();
        }),
    },
    readFile: async (path) => {
      try {
        return readFileSync(path);
      } catch {
        return undefined;
      }
    },
    writeFile: async () => {
      throw new TransportError(spec.host, 'write file', 'not available in the stand-in transport');
    },
    close: async () => undefined,
  };
}
