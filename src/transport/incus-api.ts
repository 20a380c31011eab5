/**
 * The Incus REST API of one host, two ways: HTTP over a pool of keep-alive streams to the
 * unix socket (ETags, no process per call), or `incus query --raw` over exec (the way that
 * works through sudo). Both read Incus's envelope the same way: `{type, error_code, error,
 * metadata, operation}`; async operations are awaited; anything that is not that shape fails
 * the step clearly instead of reaching a module half-parsed.
 */
import { TransportError } from '../errors.js';
import type { HttpStreams } from './http-client.js';
import type { ExecResult, IncusApi, IncusRequestOptions, IncusResponse } from './types.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Envelope {
  type: 'sync' | 'async' | 'error';
  status_code?: number;
  error_code?: number;
  error?: string;
  operation?: string;
  metadata: unknown;
}

/** Reads an Incus answer; throws TransportError naming host and step for anything else. */
export function readEnvelope(host: string, step: string, httpStatus: number | undefined, text: string): Envelope {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
    throw new TransportError(
      host,
      step,
      `Incus answered${httpStatus ? ` ${httpStatus}` : ''} with something that is not JSON (truncated?): ${JSON.stringify(shown)}`,
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json) || !['sync', 'async', 'error'].includes((json as Envelope).type)) {
    throw new TransportError(host, step, `Incus answered JSON that is not an Incus response (no type sync/async/error)`);
  }
  const env = json as Envelope;
  const code = env.error_code || httpStatus;
  if (env.type === 'error' || (httpStatus !== undefined && (httpStatus < 200 || httpStatus >= 300))) {
    throw new TransportError(host, step, `Incus refused (${code ?? 'error'}): ${env.error || 'no reason given'}`);
  }
  return env;
}

function checkOperation(host: string, step: string, env: Envelope): unknown {
  const op = env.metadata as { status?: string; err?: string; metadata?: unknown } | null;
  if (!op || typeof op !== 'object') throw new TransportError(host, step, 'Incus answered an operation without metadata');
  if (op.status !== 'Success') throw new TransportError(host, step, `Incus operation ${op.status ?? 'ended'}: ${op.err || 'no reason given'}`);
  return op.metadata ?? null;
}

/** HTTP over the host's Incus socket (forwarded over SSH, or local). */
export function incusOverHttp(host: string, pool: HttpStreams, timeoutMs: number): IncusApi {
  const send = async (method: Method, path: string, step: string, body?: unknown, options?: IncusRequestOptions) => {
    const headers: Record<string, string> = {};
    let payload: Buffer | undefined;
    if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] = 'application/json';
    }
    if (options?.ifMatch) headers['If-Match'] = options.ifMatch;
    let res;
    try {
      res = await pool.request(method, path, headers, payload, timeoutMs);
    } catch (e) {
      if (e instanceof TransportError) throw e;
      throw new TransportError(host, step, `Incus API (${method} ${path}): ${(e as Error).message}`, false, { cause: e });
    }
    return { status: res.status, etag: res.headers.etag, env: readEnvelope(host, step, res.status, res.body.toString('utf8')) };
  };
  return {
    async request<T>(method: Method, path: string, step: string, body?: unknown, options?: IncusRequestOptions): Promise<IncusResponse<T>> {
      const { status, etag, env } = await send(method, path, step, body, options);
      if (env.type === 'async' && env.operation) {
        const waited = await send('GET', `${env.operation}/wait?timeout=${Math.ceil(timeoutMs / 1000)}`, step);
        return { status, etag, metadata: checkOperation(host, step, waited.env) as T };
      }
      return { status, etag, metadata: env.metadata as T };
    },
  };
}

/**
 * `incus query --raw` (`lxc query --raw` for LXD) over exec, privileged when the host needs
 * become. The socket is named with INCUS_SOCKET / LXD_SOCKET (sudo resets the environment, so it
 * goes through `env`); without one, lxc finds LXD's socket itself (Debian's, then the snap's).
 */
export function incusOverQuery(
  host: string,
  socket: string | undefined,
  exec: (argv: string[], step: string) => Promise<ExecResult>,
  client: 'incus' | 'lxc' = 'incus',
): IncusApi {
  const query = async (method: Method, path: string, step: string, body?: unknown): Promise<Envelope> => {
    const env = socket === undefined ? [] : ['env', `${client === 'lxc' ? 'LXD' : 'INCUS'}_SOCKET=${socket}`];
    const argv = [...env, client, 'query', '--raw', '-X', method];
    if (body !== undefined) argv.push('--data', JSON.stringify(body));
    argv.push(path);
    const r = await exec(argv, step);
    const out = r.stdout.toString('utf8');
    if (r.exitCode !== 0) {
      // The client may print a first-run banner before its error: the "Error:" lines are the reason.
      const errors = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('Error: '))
        .map((l) => l.slice('Error: '.length));
      const reason = errors.length > 0 ? errors.join('; ') : r.stderr.trim() || out.trim();
      throw new TransportError(host, step, `${client} query ${method} ${path} failed (exit ${r.exitCode}): ${reason}`);
    }
    return readEnvelope(host, step, undefined, out);
  };
  return {
    async request<T>(method: Method, path: string, step: string, body?: unknown): Promise<IncusResponse<T>> {
      const env = await query(method, path, step, body);
      if (env.type === 'async' && env.operation) {
        const waited = await query('GET', `${env.operation}/wait`, step);
        return { status: 200, metadata: checkOperation(host, step, waited) as T };
      }
      return { status: env.status_code || 200, metadata: env.metadata as T };
    },
  };
}
