import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkHostKey, entriesNaming, knownHostName, knownHostsLine, knownKeyTypes, parseKnownHosts, sha256Fingerprint } from './known-hosts.js';

/** A fake ed25519 wire blob: string "ssh-ed25519" + 32 bytes. */
function blob(fill: number): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(type.length);
  const keyLen = Buffer.alloc(4);
  keyLen.writeUInt32BE(32);
  return Buffer.concat([len, type, keyLen, Buffer.alloc(32, fill)]);
}
const A = blob(1);
const B = blob(2);
const hashed = (host: string, salt = Buffer.alloc(20, 7)) => `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(host).digest('base64')}`;

describe('known_hosts', () => {
  it('names a host as OpenSSH does', () => {
    expect(knownHostName('10.0.0.1', 22)).toBe('10.0.0.1');
    expect(knownHostName('web1', 2222)).toBe('[web1]:2222');
  });

  it('matches plain, wildcard, negated, port-qualified and hashed entries', () => {
    const text = [
      '# comment',
      `web1,10.0.0.1 ssh-ed25519 ${A.toString('base64')}`,
      `*.lan,!bad.lan ssh-ed25519 ${A.toString('base64')}`,
      `[web2]:2222 ssh-ed25519 ${B.toString('base64')}`,
      `${hashed('10.0.0.9')} ssh-ed25519 ${B.toString('base64')}`,
      'garbage-line',
    ].join('\n');
    const entries = parseKnownHosts(text, 'kh');
    expect(entries).toHaveLength(4);
    expect(checkHostKey(entries, 'web1', A)).toMatchObject({ status: 'match', entry: { line: 2 } });
    expect(checkHostKey(entries, 'db.lan', A)).toMatchObject({ status: 'match', entry: { line: 3 } });
    expect(checkHostKey(entries, 'bad.lan', A)).toEqual({ status: 'unknown' });
    expect(checkHostKey(entries, '[web2]:2222', B)).toMatchObject({ status: 'match' });
    expect(checkHostKey(entries, 'web2', B)).toEqual({ status: 'unknown' });
    expect(checkHostKey(entries, '10.0.0.9', B)).toMatchObject({ status: 'match', entry: { line: 5 } });
    expect(checkHostKey(entries, '10.0.0.9', A)).toMatchObject({ status: 'changed', expected: [{ line: 5 }] });
    expect(knownKeyTypes(entriesNaming(entries, 'web1'))).toEqual(['ssh-ed25519']);
  });

  it('honours @revoked and ignores @cert-authority lines for plain keys', () => {
    const entries = parseKnownHosts(
      [`@revoked * ssh-ed25519 ${A.toString('base64')}`, `@cert-authority * ssh-ed25519 ${B.toString('base64')}`].join('\n'),
      'kh',
    );
    expect(checkHostKey(entries, 'web1', A).status).toBe('revoked');
    expect(checkHostKey(entries, 'web1', B).status).toBe('unknown');
  });

  it('writes lines that it reads back, hashed or not', () => {
    const plain = knownHostsLine('[h]:2222', A, false);
    expect(plain).toBe(`[h]:2222 ssh-ed25519 ${A.toString('base64')}`);
    const h = knownHostsLine('10.1.1.1', A, true);
    expect(h).toMatch(/^\|1\|/);
    expect(checkHostKey(parseKnownHosts(h, 'kh'), '10.1.1.1', A).status).toBe('match');
  });

  it('fingerprints as ssh-keygen -l does', () => {
    expect(sha256Fingerprint(A)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
