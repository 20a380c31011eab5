/**
 * HTTP/1.1 to an Incus or LXD daemon over any byte stream, with Node's own `http` client: an
 * SSH channel forwarded to the daemon's unix socket, a relay under sudo, a local unix socket or
 * a verified TLS connection. Every way in is an `open()` that returns a connected stream; the
 * Agent pools those streams with keep-alive, so a whole run opens only a handful of channels
 * (or one TLS connection) per host. The watch mode's websocket rides on the same `open()`.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type WebSocketClass from 'ws';
import { loadModule } from '../embedded.js';
import type { DaemonEvent, EventSubscription } from './types.js';

export interface HttpResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** Opens one connected stream to the daemon (the TLS handshake and its checks already done). */
export type StreamOpener = () => Promise<Duplex>;

/**
 * Node's Agent treats its connections as TCP sockets (keep-alive probes, ref/unref, idle timers);
 * an SSH channel has none of that. These are no-ops on such a stream, left alone on real sockets.
 */
function asSocket(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>;
  for (const method of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) {
    if (typeof s[method] !== 'function') s[method] = () => s;
  }
  return stream;
}

class StreamAgent extends http.Agent {
  constructor(
    private readonly open: StreamOpener,
    maxSockets: number,
    keepAlive = true,
  ) {
    super(keepAlive ? { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' } : { keepAlive: false });
  }

  // Node calls it with a callback and accepts the stream later (documented for http.Agent).
  override createConnection(_options: unknown, callback: (err: Error | null, stream?: Duplex) => void): undefined {
    this.open().then(
      (stream) => callback(null, asSocket(stream)),
      (e: Error) => callback(e),
    );
    return undefined;
  }
}

/** Requests to one daemon, on up to `max` keep-alive streams opened on demand. */
export class HttpStreams {
  private readonly agent: StreamAgent;

  /**
   * `lost()` says why the connection under every stream is gone (an SSH connection that died):
   * a request then fails at once instead of being written to a pooled stream that has not yet
   * heard of the loss.
   */
  constructor(
    private readonly opener: StreamOpener,
    max = 4,
    private readonly lost: () => Error | undefined = () => undefined,
  ) {
    this.agent = new StreamAgent(opener, max);
  }

  request(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const gone = this.lost();
      if (gone) return reject(gone);
      let timedOut: Error | undefined;
      const req = http.request({
        agent: this.agent,
        method,
        path,
        host: 'incus',
        headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) },
      });
      const timer = setTimeout(() => {
        timedOut = new Error(`no answer within ${timeoutMs} ms`);
        req.destroy(timedOut);
      }, timeoutMs);
      // Node may report the torn-down stream ("socket hang up") instead of the reason it was torn down.
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(timedOut ?? (e.message === 'socket hang up' ? new Error('the connection closed before an answer came') : e));
      });
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(timedOut ?? e);
        });
        res.once('aborted', () => {
          clearTimeout(timer);
          reject(new Error('connection closed in the middle of the response body (truncated)'));
        });
        res.once('end', () => {
          clearTimeout(timer);
          if (!res.complete) return reject(new Error('connection closed in the middle of the response body (truncated)'));
          const lower: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') lower[k] = v;
          resolve({ status: res.statusCode ?? 0, headers: lower, body: Buffer.concat(chunks) });
        });
      });
      req.end(body);
    });
  }

  /**
   * The daemon's event stream (`/1.0/events?type=…`, a websocket) on a stream of its own, outside
   * the pool: it stays open for as long as it is watched. A ping every 15 s ends a stream whose
   * other end went silent (a host gone without closing its TCP connection).
   */
  async events(path: string, onEvent: (event: DaemonEvent) => void, onEnd: (why: string) => void, timeoutMs: number): Promise<EventSubscription> {
    // Loaded here: only `reconcile watch` follows events, and a run should not pay for loading it.
    const WebSocket = loadModule<typeof WebSocketClass>('ws', import.meta.url);
    const agent = new StreamAgent(this.opener, 1, false);
    return new Promise((resolve, reject) => {
      // An event is a few hundred bytes: a larger frame ends the stream (and it is reopened) rather than filling memory.
      const ws = new WebSocket(`ws://incus${path}`, { agent, handshakeTimeout: timeoutMs, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
      let opened = false;
      let alive = true;
      const ping = setInterval(() => {
        if (!alive) return ws.terminate();
        alive = false;
        ws.ping();
      }, 15_000);
      ws.on('pong', () => (alive = true));
      ws.on('message', (data) => {
        alive = true;
        let event: DaemonEvent;
        try {
          event = JSON.parse(String(data)) as DaemonEvent;
        } catch {
          return; // not JSON: not an event (Incus sends only JSON text frames)
        }
        onEvent(event);
      });
      ws.once('open', () => {
        opened = true;
        resolve({ close: () => ws.close() });
      });
      ws.on('error', (e) => {
        if (!opened) reject(e);
      });
      ws.once('close', (code, reason) => {
        clearInterval(ping);
        agent.destroy();
        if (opened) onEnd(reason.length > 0 ? reason.toString() : `the event stream closed (${code})`);
      });
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The daemon's socket could not be opened (forwarding refused, no such socket): another way may work. */
export class StreamOpenError extends Error {}

/**
 * Opens the first of `sockets` that opens (LXD's are tried after the inventory's, Debian's
 * before the snap's), and from then on that one only. When none opens, the error names each
 * path tried and why.
 */
export function firstSocketOpener(sockets: string[], open: (socket: string) => Promise<Duplex>): () => Promise<Duplex> {
  let found: string | undefined;
  return async () => {
    if (found !== undefined) return open(found);
    const reasons: string[] = [];
    for (const socket of sockets) {
      try {
        const stream = await open(socket);
        found = socket;
        return stream;
      } catch (e) {
        if (!(e instanceof StreamOpenError) || sockets.length === 1) throw e;
        reasons.push(e.message);
      }
    }
    throw new StreamOpenError(reasons.join('; '));
  };
}
