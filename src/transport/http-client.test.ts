/**
 * The hand-written HTTP/1.1 client against a server that writes its answers byte for byte: the
 * framings a daemon may use (Content-Length, chunked, to the end of the stream, an interim 100),
 * answers split anywhere, streams the daemon closes, and what is not HTTP at all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpStreams } from './http-client.js';

/** What the server answers to a request line, as raw bytes (written in the pieces given). */
const answers: Record<string, string[] | ((socket: net.Socket) => void)> = {
  'GET /length': ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e1"\r\n\r\nhello'],
  'GET /odd-headers': ['HTTP/1.1 200 OK\r\n__proto__: x\r\nConstructor: y\r\nContent-Length: 0\r\n\r\n'],
  'GET /chunked': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '5;ext=1\r\nhel', 'lo\r\n', '6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'],
  'GET /continue': ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  'GET /to-end': (s) => s.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it'),
  'GET /garbage': ['SSH-2.0-OpenSSH_9.2\r\n\r\n'],
  'GET /truncated': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"type":'),
  'GET /silent': () => undefined,
  'GET /close-after': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  'POST /echo': ['HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'],
};

let dir: string;
let socketPath: string;
let server: net.Server;
let connections = 0;
const requests: string[] = [];
/** Streams the server closes right after their next request arrives, without answering. */
let dropNext = 0;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'reconcile-http-'));
  socketPath = path.join(dir, 'daemon.socket');
  server = net.createServer((socket) => {
    connections++;
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        requests.push(buffered.slice(0, end + 4 + length));
        buffered = buffered.slice(end + 4 + length);
        if (dropNext > 0) {
          dropNext--;
          socket.destroy();
          return;
        }
        if (!socket.writable) return; // closed after its last answer: the client asks again elsewhere
        const answer = answers[head.split(' HTTP/1.1')[0]!];
        if (typeof answer === 'function') answer(socket);
        else for (const piece of answer ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']) socket.write(piece);
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const open = () =>
  new Promise<net.Socket>((resolve, reject) =>
    net
      .connect(socketPath)
      .once('connect', function (this: net.Socket) {
        resolve(this);
      })
      .once('error', reject),
  );

function streams(max = 2) {
  return new HttpStreams(open, max);
}

const text = (r: { body: Buffer }) => r.body.toString();

describe('HttpStreams', () => {
  it('reads a body by Content-Length, in chunks (extensions and trailers too), after a 100 Continue, and to the end of the stream', async () => {
    const pool = streams();
    const length = await pool.request('GET', '/length', {}, undefined, 2000);
    expect(length).toMatchObject({ status: 200, headers: { 'content-length': '5', etag: '"e1"' } });
    expect(text(length)).toBe('hello');
    expect(text(await pool.request('GET', '/chunked', {}, undefined, 2000))).toBe('hello world');
    expect(text(await pool.request('GET', '/continue', {}, undefined, 2000))).toBe('ok');
    expect(text(await pool.request('GET', '/to-end', {}, undefined, 2000))).toBe('all of it');
    pool.close();
  });

  it('sends a body with its length, headers as given, one request per stream at a time, at most `max` streams', async () => {
    const before = connections;
    const pool = streams(2);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        pool.request('POST', '/echo', { 'Content-Type': 'application/json', 'If-Match': `"${i}"` }, Buffer.from(`{"n":${i}}`), 2000),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201, 201]);
    expect(connections - before).toBe(2);
    expect(requests.at(-1)).toMatch(
      /^POST \/echo HTTP\/1\.1\r\nHost: incus\r\nContent-Type: application\/json\r\nIf-Match: "\d"\r\nContent-Length: 7\r\n\r\n\{"n":\d\}$/,
    );
    pool.close();
  });

  it('a read on a kept-alive stream the daemon closed is asked again on a new one; a change is not', async () => {
    const pool = streams(1);
    await pool.request('GET', '/length', {}, undefined, 2000);
    dropNext = 1;
    expect(text(await pool.request('GET', '/length', {}, undefined, 2000))).toBe('hello');
    await pool.request('GET', '/length', {}, undefined, 2000);
    dropNext = 1;
    await expect(pool.request('POST', '/echo', {}, Buffer.from('{}'), 2000)).rejects.toThrow('the connection closed before an answer came');
    // The pool goes on with a new stream.
    expect(text(await pool.request('GET', '/length', {}, undefined, 2000))).toBe('hello');
    pool.close();
  });

  it('pipelines reads asked together on one stream, answers read in order; a change is never written behind one', async () => {
    const pool = streams(4);
    const before = connections;
    const asked = requests.length;
    const reads = await Promise.all(['/length', '/chunked', '/continue', '/odd-headers'].map((p) => pool.request('GET', p, {}, undefined, 2000)));
    expect(reads.map(text)).toEqual(['hello', 'hello world', 'ok', '']);
    expect(connections - before).toBe(1);
    expect(requests.slice(asked).map((r) => r.split(' HTTP')[0])).toEqual(['GET /length', 'GET /chunked', 'GET /continue', 'GET /odd-headers']);

    // Behind an answer that closes the stream: asked again, on a new stream.
    const [closing, behind] = await Promise.all(['/close-after', '/length'].map((p) => pool.request('GET', p, {}, undefined, 2000)));
    expect([text(closing!), text(behind!)]).toEqual(['ok', 'hello']);

    // A change waits for a stream of its own: a stream is kept to one exchange while it carries one.
    const streamsBefore = connections;
    const [read, change] = await Promise.all([pool.request('GET', '/length', {}, undefined, 2000), pool.request('POST', '/echo', {}, Buffer.from('{}'), 2000)]);
    expect([text(read!), change!.status]).toEqual(['hello', 201]);
    expect(connections - streamsBefore).toBe(1);
    pool.close();
  });

  it('a stream the daemon closes after answering is not reused', async () => {
    const pool = streams(1);
    const before = connections;
    expect(text(await pool.request('GET', '/close-after', {}, undefined, 2000))).toBe('ok');
    expect(text(await pool.request('GET', '/length', {}, undefined, 2000))).toBe('hello');
    expect(connections - before).toBe(2);
    pool.close();
  });

  it('says what is wrong with an answer that is not HTTP, cut short, or never comes; the pool serves on', async () => {
    const pool = streams(1);
    await expect(pool.request('GET', '/garbage', {}, undefined, 2000)).rejects.toThrow('not an HTTP answer: "SSH-2.0-OpenSSH_9.2"');
    await expect(pool.request('GET', '/truncated', {}, undefined, 2000)).rejects.toThrow('connection closed in the middle of the response body (truncated)');
    await expect(pool.request('GET', '/silent', {}, undefined, 300)).rejects.toThrow('no answer within 300 ms');
    expect(text(await pool.request('GET', '/length', {}, undefined, 2000))).toBe('hello');
    pool.close();
  });

  it('a header named __proto__ or constructor is a header like any other', async () => {
    const pool = streams(1);
    const { headers } = await pool.request('GET', '/odd-headers', {}, undefined, 2000);
    expect([headers['__proto__'], headers.constructor, Object.getPrototypeOf(headers)]).toEqual(['x', 'y', null]);
    pool.close();
  });

  it('refuses to send a header that would add a line (an ETag is echoed from the daemon)', async () => {
    const pool = streams(1);
    await expect(pool.request('PUT', '/x', { 'If-Match': '"a"\r\nX-Evil: 1' }, Buffer.from('{}'), 2000)).rejects.toThrow(/line break/);
    await expect(pool.request('GET', '/x HTTP/1.0\r\n', {}, undefined, 2000)).rejects.toThrow(/line break or space/);
    pool.close();
  });
});
