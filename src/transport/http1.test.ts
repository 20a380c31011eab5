import { describe, expect, it, vi } from 'vitest';
import { formatRequest, ResponseParser } from './http1.js';

function feedAll(parser: ResponseParser, text: string, pieces: number) {
  const bytes = Buffer.from(text, 'latin1');
  const size = Math.max(1, Math.ceil(bytes.length / pieces));
  for (let i = 0; i < bytes.length; i += size) {
    const done = parser.feed(bytes.subarray(i, i + size));
    if (done) return done;
  }
  return undefined;
}

describe('ResponseParser', () => {
  const fixed = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nEtag: "abc"\r\nContent-Length: 11\r\n\r\n{"a":[1,2]}';
  const chunked = 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n6;ext=1\r\n[1,2]}\r\n0\r\n\r\n';

  it('reads Content-Length and chunked bodies however the bytes are split', () => {
    for (const pieces of [1, 3, 17, 200]) {
      const a = feedAll(new ResponseParser('GET'), fixed, pieces)!;
      expect(a.response).toEqual({
        status: 200,
        headers: { 'content-type': 'application/json', etag: '"abc"', 'content-length': '11' },
        body: Buffer.from('{"a":[1,2]}'),
      });
      const b = feedAll(new ResponseParser('GET'), chunked, pieces)!;
      expect(b.response.status).toBe(404);
      expect(b.response.body.toString()).toBe('{"a":[1,2]}');
    }
  });

  it('keeps bytes that follow a response (keep-alive) and reports a truncated body', () => {
    const done = new ResponseParser('GET').feed(Buffer.from(fixed + 'HTTP/1.1'))!;
    expect(done.rest.toString()).toBe('HTTP/1.1');
    const cut = new ResponseParser('GET');
    expect(cut.feed(Buffer.from(fixed.slice(0, -3)))).toBeUndefined();
    expect(() => cut.end()).toThrow(/truncated/);
    expect(() => new ResponseParser('GET').feed(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(/not an HTTP response/);
  });

  it('a 16 MB body arriving in 16 KiB packets is joined once, not copied again on every packet', () => {
    const body = Buffer.alloc(16 * 1024 * 1024, 0x61);
    const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1');
    const bytes = Buffer.concat([head, body]);
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      const parser = new ResponseParser('GET');
      let done;
      for (let i = 0; i < bytes.length && !done; i += 16 * 1024) done = parser.feed(bytes.subarray(i, i + 16 * 1024));
      expect(done?.response.body.equals(body)).toBe(true);
      // Joined when the head arrived, then once when the whole body was there (was: once per packet, 1,025 times).
      expect(concat.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      concat.mockRestore();
    }
    expect(() => new ResponseParser('GET').feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n'))).toThrow(/bad Content-Length "-5"/);
  });

  it('writes requests with a length and keep-alive', () => {
    expect(formatRequest('PATCH', '/1.0/certificates/ab', { 'If-Match': '"e"' }, Buffer.from('{}')).toString()).toBe(
      'PATCH /1.0/certificates/ab HTTP/1.1\r\nHost: incus\r\nConnection: keep-alive\r\nIf-Match: "e"\r\nContent-Length: 2\r\n\r\n{}',
    );
  });
});
