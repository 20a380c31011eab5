/**
 * HTTP/1.1 to an Incus or LXD daemon over any byte stream: an SSH channel forwarded to the
 * daemon's unix socket, a relay under sudo, a local unix socket or a verified TLS connection.
 * Every way in is an `open()` that returns a connected stream; requests share those streams with
 * keep-alive, so a whole run opens only a handful of channels (or one TLS connection) per host.
 * The watch mode's websocket rides on the same `open()`, through Node's `http` and `ws`.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type WebSocketClass from 'ws';
import { lazyBuiltins } from '../builtins.js';
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

/**
 * Node's Agent over one of our streams, not kept: the watch's websocket (ws speaks through an
 * http.Agent). Node's http is loaded here, when a watch first follows events.
 */
function streamAgent(open: StreamOpener): http.Agent {
  class StreamAgent extends lazyBuiltins.http().Agent {
    // Node calls it with a callback and accepts the stream later (documented for http.Agent).
    override createConnection(_options: unknown, callback: (err: Error | null, stream?: Duplex) => void): undefined {
      open().then(
        (stream) => callback(null, asSocket(stream)),
        (e: Error) => callback(e),
      );
      return undefined;
    }
  }
  return new StreamAgent({ keepAlive: false });
}

/**
 * Requests to one daemon, on up to `max` keep-alive streams opened on demand: one request at a
 * time per stream (HTTP/1.1 without pipelining), the stream last freed taken first.
 *
 * Written by hand rather than with Node's `http` client: a run's requests are a few small GETs
 * per host, and Node's client (an Agent, a ClientRequest, an IncomingMessage and a parser per
 * exchange) cost ~1 ms of CPU per request more than this — at 100 hosts, most of what a check
 * spent beyond the least an SSH-based tool can (BENCHMARKS.md). The watch's websocket still goes
 * through Node (`events`, with `ws`).
 */
export class HttpStreams {
  private readonly idle: HttpConnection[] = [];
  /** Streams with exchanges in flight. */
  private readonly busy = new Set<HttpConnection>();
  /** A stream being opened for a read, and how many reads wait to be written on it. */
  private opening?: { connection: Promise<HttpConnection>; reads: number };
  private readonly queue: ((c: HttpConnection | Error) => void)[] = [];
  /** Streams open or being opened. */
  private count = 0;
  private readonly agents = new Set<http.Agent>();

  /**
   * `lost()` says why the connection under every stream is gone (an SSH connection that died):
   * a request then fails at once instead of being written to a pooled stream that has not yet
   * heard of the loss.
   */
  constructor(
    private readonly opener: StreamOpener,
    private readonly max = 4,
    private readonly lost: () => Error | undefined = () => undefined,
  ) {}

  async request(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<HttpResponse> {
    const gone = this.lost();
    if (gone) throw gone;
    const wire = requestBytes(method, path, headers, body);
    let timer: NodeJS.Timeout | undefined;
    let connection: HttpConnection | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        connection?.destroy();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      const read = method === 'GET' || method === 'HEAD';
      for (let attempt = 1; ; attempt++) {
        const taking = this.take(read && attempt === 1);
        connection = await Promise.race([taking, timeout]).catch((e: unknown) => {
          // A stream that comes after the time is up goes back to the pool.
          void taking.then(
            (late) => this.give(late),
            () => undefined,
          );
          throw e;
        });
        // Reused, or written behind another read: either may find the stream closed under it.
        const reused = connection.served > 0;
        try {
          const response = await Promise.race([connection.exchange(wire, method), timeout]);
          this.give(connection);
          return response;
        } catch (e) {
          // A kept-alive stream the daemon closed just as it was reused: the request never reached
          // it. Asked again on a new stream (a read only: a change may have been done before).
          if (!(e instanceof NothingAnswered && reused && attempt === 1 && read)) throw e;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * An idle stream; for a read, a stream whose exchanges in flight are reads (the read is
   * pipelined behind them: observing a host asks /1.0 and its trust store in one round trip, on
   * one SSH channel); else a new one while fewer than `max` are open, else the next one freed.
   */
  private take(pipeline: boolean): Promise<HttpConnection> {
    const ready = this.idle.pop();
    if (ready) return Promise.resolve(this.lend(ready));
    if (pipeline) {
      for (const c of this.busy) if (c.pipelinable) return Promise.resolve(this.lend(c));
      if (this.opening && this.opening.reads < MAX_PIPELINED) {
        this.opening.reads++;
        return this.opening.connection.then((c) => this.lend(c));
      }
    }
    if (this.count < this.max) {
      this.count++;
      const connection = this.opener().then(
        (stream) => this.lend(new HttpConnection(stream, (c) => this.forget(c))),
        (e: unknown) => {
          this.count--;
          throw e;
        },
      );
      if (pipeline) {
        const opening = { connection, reads: 1 };
        this.opening = opening;
        const done = () => {
          if (this.opening === opening) this.opening = undefined;
        };
        connection.then(done, done);
      }
      return connection;
    }
    return new Promise((resolve, reject) => this.queue.push((c) => (c instanceof Error ? reject(c) : resolve(c))));
  }

  private lend(connection: HttpConnection): HttpConnection {
    connection.holders++;
    this.busy.add(connection);
    return connection;
  }

  /** Back from an exchange: idle (or to the next request waiting) once no request holds it. */
  private give(connection: HttpConnection): void {
    if (--connection.holders > 0) return;
    this.busy.delete(connection);
    if (!connection.reusable) return connection.destroy();
    const next = this.queue.shift();
    if (next) next(this.lend(connection));
    else this.idle.push(connection);
  }

  /** A stream that ended: its place goes to the next request waiting, on a stream of its own. */
  private forget(connection: HttpConnection): void {
    this.count--;
    this.busy.delete(connection);
    const at = this.idle.indexOf(connection);
    if (at >= 0) this.idle.splice(at, 1);
    const next = this.queue.shift();
    if (next) this.take(false).then(next, (e: Error) => next(e));
  }

  /**
   * The daemon's event stream (`/1.0/events?type=…`, a websocket) on a stream of its own, outside
   * the pool: it stays open for as long as it is watched. A ping every 15 s ends a stream whose
   * other end went silent (a host gone without closing its TCP connection).
   */
  async events(path: string, onEvent: (event: DaemonEvent) => void, onEnd: (why: string) => void, timeoutMs: number): Promise<EventSubscription> {
    // Loaded here: only `reconcile watch` follows events, and a run should not pay for loading it.
    const WebSocket = loadModule<typeof WebSocketClass>('ws', import.meta.url);
    const agent = streamAgent(this.opener);
    this.agents.add(agent);
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
        this.agents.delete(agent);
        if (opened) onEnd(reason.length > 0 ? reason.toString() : `the event stream closed (${code})`);
      });
    });
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.destroy();
    for (const a of this.agents) a.destroy();
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

/** The request as written: the head and the body in one write (one SSH packet for a small request). */
function requestBytes(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: incus', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body) lines.push(`Content-Length: ${body.length}`);
  // A header value is ours or echoed from the daemon (an ETag): it must not be able to add lines.
  const bad = /\s/.test(method + path) ? lines[0] : lines.find((l) => /[\r\n]/.test(l));
  if (bad !== undefined) throw new Error(`refusing to send a request with a line break or space where there cannot be one: ${JSON.stringify(bad)}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return body ? Buffer.concat([head, body]) : head;
}

/** The stream closed or failed before the first byte of an answer. */
class NothingAnswered extends Error {}

interface Answer {
  response: HttpResponse;
  keepAlive: boolean;
  /** Bytes after the answer: the next answer's, when requests were pipelined. */
  rest?: Buffer;
}

/** An exchange written to a stream, waiting for its answer. */
interface Exchange {
  reader: ResponseReader;
  settle: (r: Answer | Error) => void;
}

/**
 * One stream to the daemon and the exchanges on it: one at a time, or reads pipelined (written
 * together, answered in order, as HTTP/1.1 allows and incusd's Go server does).
 */
class HttpConnection {
  served = 0;
  /** Requests of the pool that hold this stream (more than one when reads are pipelined). */
  holders = 0;
  reusable = true;
  /** Written and not yet answered, oldest first. */
  private readonly exchanges: Exchange[] = [];
  private ended = false;

  constructor(
    private readonly stream: Duplex,
    onEnded: (c: HttpConnection) => void,
  ) {
    const end = (e?: Error) => {
      if (this.ended) return;
      this.ended = true;
      this.reusable = false;
      onEnded(this);
      const [current, ...waiting] = this.exchanges.splice(0);
      current?.settle(current.reader.atEnd(e));
      for (const w of waiting) w.settle(new NothingAnswered('the connection closed before an answer came'));
    };
    stream.on('data', (chunk: Buffer) => {
      let data: Buffer | undefined = chunk;
      while (data) {
        const current = this.exchanges[0];
        if (!current) return this.destroy(); // an answer nobody asked for: the stream is out of step
        let answer: Answer | undefined;
        try {
          answer = current.reader.feed(data);
        } catch (e) {
          this.exchanges.shift();
          current.settle(e as Error);
          return this.destroy();
        }
        if (!answer) return;
        this.exchanges.shift();
        data = answer.rest;
        current.settle(answer);
        // After an answer that ends the stream's use, what was pipelined behind it is asked again.
        if (!this.reusable) return this.destroy();
      }
    });
    stream.on('end', () => end());
    stream.on('close', () => end());
    stream.on('error', (e: Error) => end(e));
  }

  /** Whether a read may be written behind the exchanges in flight. */
  get pipelinable(): boolean {
    return this.reusable && !this.ended && this.exchanges.length > 0 && this.exchanges.length < MAX_PIPELINED && this.exchanges.every((x) => x.reader.read);
  }

  exchange(wire: Buffer, method: string): Promise<HttpResponse> {
    if (this.ended) return Promise.reject(new NothingAnswered('the connection closed before an answer came'));
    this.served++;
    return new Promise((resolve, reject) => {
      this.exchanges.push({
        reader: new ResponseReader(method),
        settle: (r) => {
          if (r instanceof Error) return reject(r);
          this.reusable &&= r.keepAlive;
          resolve(r.response);
        },
      });
      this.stream.write(wire);
    });
  }

  destroy(): void {
    this.reusable = false;
    this.stream.destroy();
  }
}

/** Reads written behind one another on a stream, at most. */
const MAX_PIPELINED = 4;

const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads one HTTP/1.1 answer as its bytes come: the head, then a body by Content-Length, in
 * chunks, or to the end of the stream. Body bytes are kept as they came and joined once.
 */
class ResponseReader {
  /** Bytes of the head or of a chunk's size line, not yet understood. */
  private pending: Buffer = Buffer.alloc(0);
  private response?: HttpResponse;
  private keepAlive = true;
  /** Body bytes still to come ('chunked': per chunk; 'to-end': until the stream ends). */
  private body: number | 'chunked' | 'to-end' = 0;
  private readonly parts: Buffer[] = [];
  /** In a chunked body: what comes next, and the bytes left of the chunk being read. */
  private chunk: 'size' | 'data' | 'crlf' | 'trailers' = 'size';
  private chunkLeft = 0;

  private readonly head: boolean;
  /** A GET or HEAD: safe to pipeline, and to ask again. */
  readonly read: boolean;

  constructor(method: string) {
    this.head = method === 'HEAD';
    this.read = method === 'GET' || this.head;
  }

  /** The answer once it is complete; throws on what is not HTTP. */
  feed(chunk: Buffer): Answer | undefined {
    let data = chunk;
    if (!this.response) {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      for (;;) {
        const end = this.pending.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.pending.length > MAX_LINE_BYTES) throw new Error(`the answer's headers are larger than ${MAX_LINE_BYTES} bytes`);
          return undefined;
        }
        const head = this.pending.subarray(0, end).toString('latin1');
        this.pending = this.pending.subarray(end + 4);
        if (this.readHead(head)) break;
      }
      data = this.pending;
      this.pending = Buffer.alloc(0);
    }
    if (this.body === 'to-end') {
      this.parts.push(data);
      return undefined; // complete when the stream ends (atEnd)
    }
    if (this.body === 'chunked') return this.readChunks(data);
    if (data.length >= this.body) {
      this.parts.push(data.subarray(0, this.body));
      return this.complete(data.subarray(this.body));
    }
    this.parts.push(data);
    this.body -= data.length;
    return undefined;
  }

  /** What the end of the stream means now: the body read to its end, or why the answer is incomplete. */
  atEnd(error?: Error): Answer | Error {
    if (this.response && this.body === 'to-end' && !error) return this.complete();
    if (!this.response && this.pending.length === 0) {
      return new NothingAnswered(error ? `the connection failed before an answer came (${error.message})` : 'the connection closed before an answer came');
    }
    return (
      error ??
      new Error(this.response ? 'connection closed in the middle of the response body (truncated)' : 'the connection closed in the middle of the answer')
    );
  }

  /** False for an interim answer (100 Continue): the real one follows. */
  private readHead(head: string): boolean {
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(statusLine);
    if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(m[2]);
    // No prototype: a header named __proto__ or constructor is a header like any other.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`not an HTTP header: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    if (status >= 100 && status < 200) return false;
    const connection = (headers.connection ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const length = headers['content-length'];
    if (this.head || status === 204 || status === 304) this.body = 0;
    else if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) this.body = 'chunked';
    else if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw new Error(`invalid Content-Length: ${JSON.stringify(length)}`);
      this.body = Number(length);
    } else {
      this.body = 'to-end';
      this.keepAlive = false;
    }
    this.response = { status, headers, body: Buffer.alloc(0) };
    return true;
  }

  private readChunks(data: Buffer): Answer | undefined {
    let rest = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    this.pending = Buffer.alloc(0);
    while (rest.length > 0) {
      if (this.chunk === 'data') {
        const take = Math.min(this.chunkLeft, rest.length);
        this.parts.push(rest.subarray(0, take));
        this.chunkLeft -= take;
        rest = rest.subarray(take);
        if (this.chunkLeft === 0) this.chunk = 'crlf';
        continue;
      }
      // Every other part is a line: a size, the CRLF after a chunk's data, a trailer, the end.
      const eol = rest.indexOf('\r\n');
      if (eol < 0) {
        if (rest.length > MAX_LINE_BYTES) throw new Error('a chunk size line longer than any HTTP server writes');
        this.pending = rest;
        return undefined;
      }
      const line = rest.subarray(0, eol).toString('latin1');
      rest = rest.subarray(eol + 2);
      if (this.chunk === 'crlf') {
        if (line !== '') throw new Error('a chunk not followed by CRLF');
        this.chunk = 'size';
      } else if (this.chunk === 'trailers') {
        if (line !== '') continue; // a trailer
        return this.complete(rest);
      } else {
        const size = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(line.trim());
        if (!size) throw new Error(`invalid chunk size: ${JSON.stringify(line.slice(0, 40))}`);
        this.chunkLeft = parseInt(size[1]!, 16);
        this.chunk = this.chunkLeft > 0 ? 'data' : 'trailers'; // 0: the last chunk, then trailers and an empty line
      }
    }
    return undefined;
  }

  private complete(rest?: Buffer): Answer {
    const body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    const answer: Answer = { response: { ...this.response!, body }, keepAlive: this.keepAlive };
    if (rest && rest.length > 0) answer.rest = rest;
    return answer;
  }
}
