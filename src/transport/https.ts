/**
 * The HTTPS transport: a host with `incus_api_url` or `incus_remote` is reached through its
 * REST API only (IncusOS has no shell), over TLS with a client certificate, as the incus client
 * and terraform-provider-incus do. The server's identity is checked before a request is sent:
 * its certificate must be the pinned one, or be signed by the given CA for the given name, or
 * be the one --accept-new-host-keys recorded. An unknown certificate fails the host naming its
 * SHA-256 fingerprint; a changed one is never accepted. One keep-alive TLS connection per host.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from '../async-fs.js';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { lazyBuiltins } from '../builtins.js';
import { TransportError } from '../errors.js';
import { readLocalFile } from '../local-file.js';
import { fingerprintOfDer } from '../pki/certificate.js';
import { HttpStreams } from './http-client.js';
import { incusOverHttp } from './incus-api.js';
import type { ApiSpec, ConnectionSpec, HostSession, IncusApi, IncusResponse, TransportOptions } from './types.js';

/** A file beside the client: bytes, or a TransportError naming the file and what it was for. */
function readPem(host: string, file: string, what: string): Buffer {
  const read = readLocalFile(file);
  if ('bytes' in read) return read.bytes;
  throw new TransportError(host, 'read client certificate', `cannot read ${what} ${file}: ${'absent' in read ? 'no such file' : read.refused}`);
}

function derOfPem(host: string, pem: Buffer, file: string): Buffer {
  try {
    return Buffer.from(new X509Certificate(pem).raw);
  } catch {
    throw new TransportError(host, 'read client certificate', `${file} is not a PEM certificate`);
  }
}

/** Where --accept-new-host-keys records a server: one PEM per address, as `incus remote add` keeps servercerts/. */
export function recordedServerFile(dir: string, api: Pick<ApiSpec, 'address' | 'port'>): string {
  return path.join(dir, `${api.address.replace(/[^A-Za-z0-9._-]/g, '_')}_${api.port}.crt`);
}

/** How the server's certificate is judged. */
type Trust = { kind: 'pinned'; der: Buffer; file: string } | { kind: 'ca'; ca: Buffer; name: string; file: string } | { kind: 'unknown'; recordTo?: string };

function serverTrust(spec: ConnectionSpec, api: ApiSpec, options: TransportOptions): Trust {
  if (api.serverCertFile)
    return {
      kind: 'pinned',
      der: derOfPem(spec.host, readPem(spec.host, api.serverCertFile, 'the server certificate'), api.serverCertFile),
      file: api.serverCertFile,
    };
  if (api.caFile) return { kind: 'ca', ca: readPem(spec.host, api.caFile, 'the server CA'), name: api.serverName ?? api.address, file: api.caFile };
  const recorded = options.knownServersDir ? recordedServerFile(options.knownServersDir, api) : undefined;
  if (recorded) {
    const read = readLocalFile(recorded);
    if ('bytes' in read) return { kind: 'pinned', der: derOfPem(spec.host, read.bytes, recorded), file: recorded };
  }
  return { kind: 'unknown', recordTo: options.acceptNewHostKeys ? recorded : undefined };
}

const colons = (hex: string) => hex.match(/../g)!.join(':');

export async function connectHttps(spec: ConnectionSpec, options: TransportOptions): Promise<HostSession> {
  const api = spec.api!;
  const cert = readPem(spec.host, api.clientCertFile, 'the client certificate');
  const key = readPem(spec.host, api.clientKeyFile, 'the client key');
  const identity = { fingerprint: fingerprintOfDer(derOfPem(spec.host, cert, api.clientCertFile)), certificateFile: api.clientCertFile };
  let trust = serverTrust(spec, api, options);
  const notes: string[] = [];

  /** One TLS connection, handed on only once the server proved who it is. */
  const open = (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      const socket = lazyBuiltins.tls().connect({
        host: api.address,
        port: api.port,
        cert,
        key,
        minVersion: 'TLSv1.2',
        ...(trust.kind === 'ca' ? { ca: trust.ca, servername: trust.name, rejectUnauthorized: true } : { rejectUnauthorized: false }),
        // SNI takes a name, never an address (Node warns about one).
        ...(trust.kind !== 'ca' && isIP(api.address) === 0 ? { servername: api.address } : {}),
      });
      // Small requests and answers in turns: no Nagle delay waiting for an ACK (as over SSH).
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TransportError(spec.host, 'connect', `no TLS connection to ${api.address}:${api.port} within ${options.connectTimeoutMs} ms`, true));
      }, options.connectTimeoutMs);
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const ca = trust.kind === 'ca' ? trust : undefined;
        if (ca && e.code !== 'ECONNREFUSED' && e.code !== 'EHOSTUNREACH' && e.code !== 'ETIMEDOUT') {
          reject(
            new TransportError(
              spec.host,
              'verify server certificate',
              `the server certificate is not valid for ${ca.name} under the CA ${ca.file}: ${e.message}`,
            ),
          );
          return;
        }
        reject(new TransportError(spec.host, 'connect', `cannot reach ${api.url}: ${e.code ?? e.message}`, true, { cause: e }));
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const offered = Buffer.from(socket.getPeerX509Certificate()?.raw ?? []);
        const fingerprint = fingerprintOfDer(offered);
        const fail = (message: string) => {
          socket.destroy();
          reject(new TransportError(spec.host, 'verify server certificate', message));
        };
        if (trust.kind === 'pinned' && !offered.equals(trust.der)) {
          return fail(
            `the server offered a certificate with SHA-256 fingerprint ${colons(fingerprint)}, not the one pinned in ${trust.file} ` +
              `(${colons(fingerprintOfDer(trust.der))}): a changed server certificate is never accepted. If the server's certificate really changed, ` +
              `check the new fingerprint on the server (incus info | grep certificate_fingerprint) and replace ${trust.file}`,
          );
        }
        if (trust.kind === 'unknown') {
          if (!trust.recordTo) {
            return fail(
              `unknown server certificate, SHA-256 fingerprint ${colons(fingerprint)}; compare it with the server's ` +
                `(incus info | grep certificate_fingerprint), then pin it (incus_server_cert_file, or incus_remote of a remote the incus client added) ` +
                `or run once with --accept-new-host-keys to record it`,
            );
          }
          const file = trust.recordTo;
          trust = { kind: 'pinned', der: offered, file };
          notes.push(`the server certificate ${colons(fingerprint)} was new: recorded in ${file} (--accept-new-host-keys)`);
          const pem = `-----BEGIN CERTIFICATE-----\n${offered
            .toString('base64')
            .match(/.{1,64}/g)!
            .join('\n')}\n-----END CERTIFICATE-----\n`;
          mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
            .then(() => writeFile(file, pem, { flag: 'wx', mode: 0o644 }))
            .then(
              () => resolve(socket),
              (e: NodeJS.ErrnoException) =>
                e.code === 'EEXIST'
                  ? fail(`${file} appeared while connecting; run again`)
                  : fail(`cannot record the server certificate in ${file}: ${e.message}`),
            );
          return;
        }
        resolve(socket);
      });
    });

  // Connect now, so that an unreachable or unknown server fails the connect step.
  const first = await open();
  let spare: Duplex | undefined = first;
  const streams = new HttpStreams(async () => {
    const s = spare;
    spare = undefined;
    return s && !s.destroyed ? s : open();
  }, 1);
  const http = incusOverHttp(spec.host, streams, options.commandTimeoutMs);
  // A client the server does not trust gets answers too ("auth: untrusted"): say so at connect.
  let server: IncusResponse | undefined = await http.request<{ auth?: unknown }>('GET', '/1.0', 'connect');
  const auth = (server.metadata as { auth?: unknown } | null)?.auth;
  if (auth !== 'trusted') {
    streams.close();
    throw new TransportError(
      spec.host,
      'authenticate',
      `the server does not trust the client certificate ${api.clientCertFile} (fingerprint ${identity.fingerprint.slice(0, 12)}; it answered auth: ${String(auth)}); ` +
        `add it on the server once (${spec.server === 'lxd' ? 'lxc config trust add' : 'incus config trust add-certificate'} ${path.basename(api.clientCertFile)}), or use a trust token with ${spec.server === 'lxd' ? 'lxc' : 'incus'} remote add`,
    );
  }
  // When the observe step asks the same GET /1.0, it gets this answer instead of a second round trip.
  const incus: IncusApi = {
    request<T>(...args: Parameters<IncusApi['request']>): Promise<IncusResponse<T>> {
      const [method, requestPath] = args;
      if (server && method === 'GET' && requestPath === '/1.0') {
        const answer = server as IncusResponse<T>;
        server = undefined;
        return Promise.resolve(answer);
      }
      return http.request<T>(...args);
    },
  };
  const noShell = (step: string) =>
    new TransportError(
      spec.host,
      step,
      `${spec.host} is reached over HTTPS only (${api.remote ? `incus_remote ${api.remote.name}` : 'incus_api_url'}): it runs no commands and has no files for reconcile`,
    );
  let closed = false;
  return {
    spec,
    incus,
    identity,
    notes,
    events: (type, onEvent, onEnd) => streams.events(`/1.0/events?type=${encodeURIComponent(type)}`, onEvent, onEnd, options.commandTimeoutMs),
    exec: async (_argv, step) => {
      throw noShell(step);
    },
    readFile: async (_path, step) => {
      throw noShell(step);
    },
    writeFile: async (_path, _content, step) => {
      throw noShell(step);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      spare?.destroy();
      streams.close();
    },
  };
}
