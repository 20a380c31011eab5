/**
 * known_hosts, as OpenSSH reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain host
 * patterns (`*`, `?`, `!negation`, `[host]:port`), hashed entries (`|1|salt|hmac`), and the
 * `@revoked` / `@cert-authority` markers. Pure: the caller reads and appends the file.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { globMatch } from './glob.js';

export interface KnownHostEntry {
  file: string;
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** Hashed entry: salt and HMAC-SHA1 of the host field. */
  hashed?: { salt: Buffer; hash: Buffer };
  /** Plain entry: comma-separated patterns. */
  patterns?: string[];
  keyType: string;
  /** The key blob, base64 as in the file. */
  keyBase64: string;
}

/** How a host key compares with what known_hosts says. */
export type HostKeyVerdict =
  | { status: 'match'; entry: KnownHostEntry }
  | { status: 'unknown' }
  /** known_hosts has other keys for this host (none of them this one). */
  | { status: 'changed'; expected: KnownHostEntry[] }
  | { status: 'revoked'; entry: KnownHostEntry };

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields.shift() === '@revoked' ? 'revoked' : 'cert-authority';
    }
    const [hosts, keyType, keyBase64] = fields;
    if (!hosts || !keyType || !keyBase64) return; // malformed lines are skipped, as OpenSSH does
    const entry: KnownHostEntry = { file, line: i + 1, marker, keyType, keyBase64 };
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      if (!salt || !hash) return;
      entry.hashed = { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      entry.patterns = hosts.split(',');
    }
    entries.push(entry);
  });
  return entries;
}

/** The name known_hosts uses for a host: `address`, or `[address]:port` when the port is not 22. */
export function knownHostName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** Does this entry name `hostName` (from knownHostName)? A matching `!pattern` excludes it. */
export function entryMatches(entry: KnownHostEntry, hostName: string): boolean {
  if (entry.hashed) {
    const mac = createHmac('sha1', entry.hashed.salt).update(hostName).digest();
    return mac.length === entry.hashed.hash.length && timingSafeEqual(mac, entry.hashed.hash);
  }
  let matched = false;
  for (const p of entry.patterns ?? []) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), hostName)) return false;
    } else if (globMatch(p, hostName)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * The entries naming `hostName`: an HMAC per hashed line, so a caller checking many hosts keeps
 * the result per host (KnownHosts in ssh.ts) rather than scanning the file twice for each.
 */
export function entriesNaming(entries: KnownHostEntry[], hostName: string): KnownHostEntry[] {
  return entries.filter((e) => e.marker !== 'cert-authority' && entryMatches(e, hostName));
}

/** Checks a presented host key (its wire blob) against the entries for `hostName`. */
export function checkHostKey(entries: KnownHostEntry[], hostName: string, keyBlob: Buffer): HostKeyVerdict {
  return verdictFor(entriesNaming(entries, hostName), keyBlob);
}

/** How a presented key compares with the entries naming its host (from entriesNaming). */
export function verdictFor(forHost: KnownHostEntry[], keyBlob: Buffer): HostKeyVerdict {
  const keyBase64 = keyBlob.toString('base64');
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.keyBase64 === keyBase64);
  if (revoked) return { status: 'revoked', entry: revoked };
  const plain = forHost.filter((e) => e.marker === undefined);
  const match = plain.find((e) => e.keyBase64 === keyBase64);
  if (match) return { status: 'match', entry: match };
  // OpenSSH compares only against keys of the same type; a host known by another key type is
  // "changed" for us too: we never silently add a second key to a host we already know.
  return plain.length > 0 ? { status: 'changed', expected: plain } : { status: 'unknown' };
}

/** Key types known_hosts lists for this host (entries from entriesNaming), to offer them first in the key exchange. */
export function knownKeyTypes(forHost: KnownHostEntry[]): string[] {
  return [...new Set(forHost.filter((e) => e.marker === undefined).map((e) => e.keyType))];
}

/** OpenSSH's fingerprint of a key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type written inside a key blob (its first SSH string). */
export function keyTypeOfBlob(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const n = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + n).toString('latin1');
}

/** A known_hosts line for a newly accepted key; hashed like `HashKnownHosts yes`. */
export function knownHostsLine(hostName: string, keyBlob: Buffer, hash: boolean, salt: Buffer = randomBytes(20)): string {
  const host = hash ? `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(hostName).digest('base64')}` : hostName;
  return `${host} ${keyTypeOfBlob(keyBlob)} ${keyBlob.toString('base64')}`;
}
