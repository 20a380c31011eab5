/**
 * A small HTTP/1.1 client over any byte stream: an SSH channel forwarded to the Incus unix
 * socket, or a local unix socket. Keep-alive: one stream carries request after request, and a
 * pool of a few streams serves concurrent requests, so a whole run opens only a handful of
 * channels on the host's one SSH connection. Incus (Go net/http) answers with Content-Length
 * or chunked bodies; both are read here.
 */
import type { Duplex } from 'node:stream';

export interface HttpResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Incremental parser of one response at a time. Bytes that arrive before the parser can use
 * them (the rest of a 16 MB body) are only queued: they are joined once enough are there, so a
 * body costs O(n), not a copy of everything so far on every packet.
 */
export class ResponseParser {
  private buffer: Buffer = Buffer.alloc(0);
  private queued: Buffer[] = [];
  private queuedLength = 0;
  /** How many bytes `buffer` must hold before parsing can go on. */
  private need = 0;
  private head?: { status: number; headers: Record<string, string> };
  private chunks: Buffer[] = [];

  constructor(private readonly method: string) {}

  /** Feeds bytes; returns the response once complete, with any bytes after it. */
  feed(data: Buffer): { response: HttpResponse; rest: Buffer } | undefined {
    this.queued.push(data);
    this.queuedLength += data.length;
    if (this.buffer.length + this.queuedLength < this.need) return undefined;
    this.flush();
    return this.parse();
  }

  private flush(): void {
    if (this.queued.length === 0) return;
    this.buffer = this.buffer.length === 0 && this.queued.length === 1 ? this.queued[0]! : Buffer.concat([this.buffer, ...this.queued]);
    this.queued = [];
    this.queuedLength = 0;
  }

  /** Waits for `bytes` in the buffer before parsing again. */
  private wait(bytes: number): undefined {
    this.need = bytes;
    return undefined;
  }

  private parse(): { response: HttpResponse; rest: Buffer } | undefined {
    if (!this.head) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.buffer.length > 64 * 1024) throw new Error('response headers larger than 64 KiB');
        return this.wait(this.buffer.length + 1);
      }
      const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (!m) throw new Error(`not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      this.head = { status: Number(m[1]), headers };
      this.buffer = this.buffer.subarray(end + 4);
    }
    const { status, headers } = this.head;
    if (this.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      return { response: { status, headers, body: Buffer.alloc(0) }, rest: this.buffer };
    }
    if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      for (;;) {
        const lineEnd = this.buffer.indexOf('\r\n');
        if (lineEnd < 0) return this.wait(this.buffer.length + 1);
        const size = parseInt(this.buffer.subarray(0, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
        if (Number.isNaN(size)) throw new Error('broken chunked encoding');
        if (size === 0) {
          // Trailers (none expected) end with an empty line.
          const end = this.buffer.indexOf('\r\n\r\n', lineEnd);
          if (end < 0) return this.wait(this.buffer.length + 1);
          return { response: { status, headers, body: Buffer.concat(this.chunks) }, rest: this.buffer.subarray(end + 4) };
        }
        if (this.buffer.length < lineEnd + 2 + size + 2) return this.wait(lineEnd + 2 + size + 2);
        this.chunks.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.buffer = this.buffer.subarray(lineEnd + 2 + size + 2);
      }
    }
    const length = headers['content-length'];
    if (length === undefined) return this.wait(Infinity); // body until the stream ends: see end()
    const n = Number(length);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad Content-Length ${JSON.stringify(length.slice(0, 40))}`);
    if (this.buffer.length < n) return this.wait(n);
    return { response: { status, headers, body: this.buffer.subarray(0, n) }, rest: this.buffer.subarray(n) };
  }

  /** The stream ended: a body without length ends here; anything else was cut short. */
  end(): HttpResponse {
    this.flush();
    if (this.head && this.head.headers['content-length'] === undefined && !(this.head.headers['transfer-encoding'] ?? '').includes('chunked')) {
      return { ...this.head, body: this.buffer };
    }
    throw new Error(this.head ? 'connection closed in the middle of the response body (truncated)' : 'connection closed before a response');
  }
}

export function formatRequest(method: string, path: string, headers: Record<string, string>, body?: Buffer): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: incus', 'Connection: keep-alive'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined || method === 'POST' || method === 'PUT' || method === 'PATCH') lines.push(`Content-Length: ${body?.length ?? 0}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body ?? Buffer.alloc(0)]);
}

/** One keep-alive stream; one request at a time. */
class Http1Connection {
  private closed = false;
  private pending?: { parser: ResponseParser; resolve: (r: HttpResponse) => void; reject: (e: Error) => void };

  constructor(private readonly stream: Duplex) {
    stream.on('data', (d: Buffer) => this.onData(d));
    stream.on('end', () => this.onClose());
    stream.on('close', () => this.onClose());
    stream.on('error', (e: Error) => this.fail(e));
  }

  get usable(): boolean {
    return !this.closed;
  }

  private onData(d: Buffer): void {
    const p = this.pending;
    if (!p) return;
    try {
      const done = p.parser.feed(d);
      if (!done) return;
      this.pending = undefined;
      if ((done.response.headers.connection ?? '').toLowerCase() === 'close') this.destroy();
      p.resolve(done.response);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const p = this.pending;
    this.pending = undefined;
    if (!p) return;
    try {
      p.resolve(p.parser.end());
    } catch (e) {
      p.reject(e as Error);
    }
  }

  private fail(e: Error): void {
    this.closed = true;
    const p = this.pending;
    this.pending = undefined;
    this.stream.destroy();
    p?.reject(e);
  }

  request(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<HttpResponse> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      this.pending = {
        parser: new ResponseParser(method),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.stream.write(formatRequest(method, path, headers, body));
    });
  }

  destroy(): void {
    this.closed = true;
    this.stream.destroy();
  }
}

/** Up to `max` keep-alive streams opened on demand by `open`; requests queue for a free one. */
export class HttpPool {
  private idle: Http1Connection[] = [];
  private all = new Set<Http1Connection>();
  private opening = 0;
  private waiting: ((c: Http1Connection | Error) => void)[] = [];
  /** How many streams were ever opened (tests check reuse). */
  opened = 0;

  constructor(
    private readonly open: () => Promise<Duplex>,
    private readonly max = 4,
  ) {}

  private async acquire(): Promise<Http1Connection> {
    for (;;) {
      const c = this.idle.pop();
      if (!c) break;
      if (c.usable) return c;
      this.all.delete(c);
    }
    for (const c of this.all) if (!c.usable) this.all.delete(c);
    if (this.all.size + this.opening < this.max) {
      this.opening++;
      try {
        const c = new Http1Connection(await this.open());
        this.opened++;
        this.all.add(c);
        return c;
      } catch (e) {
        // A request waiting for this stream would wait forever: it tries to open one itself.
        const w = this.waiting.shift();
        if (w) queueMicrotask(() => this.acquire().then(w, w));
        throw e;
      } finally {
        this.opening--;
      }
    }
    const got = await new Promise<Http1Connection | Error>((resolve) => this.waiting.push(resolve));
    if (got instanceof Error) throw got;
    return got;
  }

  private release(c: Http1Connection): void {
    if (!c.usable) {
      this.all.delete(c);
      // A waiter may now open a stream of its own.
      const w = this.waiting.shift();
      if (w) this.acquire().then(w, w);
      return;
    }
    const w = this.waiting.shift();
    if (w) w(c);
    else this.idle.push(c);
  }

  async request(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<HttpResponse> {
    const c = await this.acquire();
    try {
      return await c.request(method, path, headers, body, timeoutMs);
    } finally {
      this.release(c);
    }
  }

  close(): void {
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle = [];
    for (const w of this.waiting.splice(0)) w(new Error('connection closed'));
  }
}
