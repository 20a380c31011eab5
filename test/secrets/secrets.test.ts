/**
 * Secrets: every command runs with known private keys in play — the SSH key the inventory names
 * (ansible_ssh_private_key_file), a metrics key pair reconcile generates (key_file), and a key
 * mistakenly given as certificate_file — and no secret byte of any of them (any 40 characters of
 * its base64 body over a byte that is not its public half, even wrapped differently) may appear
 * in stdout, stderr, a JSON report, the metrics file or any other file reconcile writes. Key
 * files are created 0600; a key file others may read gets a warning.
 */
import { createPublicKey } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import { clearTrustStore, makeCert, runCli, STACK_LINE, tempDir, type CliResult } from '../faults/support.js';

let lab: Lab;
let host: LabHost;
let dir: string;
let env: NodeJS.ProcessEnv;

/** Everything a user or a log collector could see, labelled by where it came from. */
const seen: { where: string; text: string }[] = [];
function record(what: string, r: CliResult): CliResult {
  seen.push({ where: `${what}: stdout`, text: r.stdout }, { where: `${what}: stderr`, text: r.stderr });
  return r;
}
async function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return record(`reconcile ${args.join(' ')}`, await runCli(args, { ...env, ...extraEnv }));
}

/** The base64 body of a PEM or OpenSSH private key, whitespace removed. */
function keyBody(pem: string): string {
  return pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('')
    .replace(/\s/g, '');
}

/**
 * The public half of a private key file, as bytes: a private key file carries its public key
 * too, and that part rightly appears in the certificate made from it (a window of the key's
 * base64 over it is no leak). OpenSSH's format starts with the public key blob; a PEM key's
 * public key comes from Node.
 */
function publicBytes(pem: string): Buffer {
  const der = Buffer.from(keyBody(pem), 'base64');
  if (!pem.includes('OPENSSH PRIVATE KEY')) return createPublicKey(pem).export({ type: 'spki', format: 'der' });
  // "openssh-key-v1\0", then strings: cipher, kdf, kdf options; a count; the public key blob.
  let at = 'openssh-key-v1\0'.length;
  const string = (): Buffer => {
    const length = der.readUInt32BE(at);
    const value = der.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    return value;
  };
  string();
  string();
  string();
  at += 4;
  return string();
}

/**
 * The 40-character windows of a key's base64 body that cover a secret byte: windows whose bytes
 * all lie in runs of 8 or more bytes also found in the public key are left out.
 */
function secretWindows(pem: string): string[] {
  const body = keyBody(pem);
  const der = Buffer.from(body, 'base64');
  const pub = publicBytes(pem);
  const isPublic = Array.from({ length: der.length }, () => false);
  for (let i = 0; i < der.length; i += 1) {
    for (let j = 0; j < pub.length; j += 1) {
      let n = 0;
      while (i + n < der.length && j + n < pub.length && der[i + n] === pub[j + n]) n += 1;
      if (n >= 8) isPublic.fill(true, i, i + n);
    }
  }
  const windows: string[] = [];
  for (let c = 0; c + 40 <= body.length; c += 1) {
    const first = Math.floor((c * 6) / 8);
    const last = Math.min(der.length - 1, Math.floor(((c + 40) * 6 - 1) / 8));
    if (isPublic.slice(first, last + 1).every(Boolean)) continue;
    windows.push(body.slice(c, c + 40));
  }
  return windows;
}

/** Which of the windows appears in `text` (whitespace ignored), or undefined. */
function leakIn(windows: string[], text: string): string | undefined {
  const flat = text.replace(/\s/g, '');
  return windows.find((w) => flat.includes(w));
}

beforeAll(async () => {
  lab = await startLab({ name: 'secrets', hosts: [{ name: 'root1', https: true }] });
  host = lab.host('root1');
  await clearTrustStore(host);
  dir = await tempDir('secrets');
  env = { ...lab.env, RECONCILE_LOCK_DIR: join(dir, 'locks') };
});

afterAll(async () => {
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('private keys never leak', () => {
  it('through any command, report, metrics file or written file', async () => {
    const inv = join(dir, 'inv');
    await mkdir(join(inv, 'keys'), { recursive: true });
    // The SSH key, named by the inventory.
    const sshKey = join(inv, 'keys', 'ssh_key');
    await copyFile(join(lab.env.HOME!, '.ssh', 'id_ed25519'), sshKey);
    await chmod(sshKey, 0o600);
    const alice = await makeCert(inv, 'alice');

    // A key pair from `cert generate`: its key is then given as certificate_file by mistake.
    const gen = await cli(['cert', 'generate', 'mistaken', '--out-dir', join(inv, 'generated')]);
    expect(gen.exitCode, gen.stderr).toBe(0);
    const mistakenKey = join(inv, 'generated', 'mistaken.key');
    expect((await stat(mistakenKey)).mode & 0o777).toBe(0o600);
    await cli(['cert', 'info', join(inv, 'generated', 'mistaken.crt')]);
    const infoOnKey = await cli(['cert', 'info', mistakenKey]);
    expect(infoOnKey.exitCode).toBe(1);
    const infoOnSshKey = await cli(['cert', 'info', sshKey]);
    expect(infoOnSshKey.exitCode).toBe(1);

    const hostVars = {
      ...host.inventoryVars(),
      ansible_ssh_private_key_file: sshKey,
      incus_metrics_certificates: [{ name: 'prom', certificate_file: 'metrics/prom.crt', key_file: 'metrics/prom.key' }],
    };
    const good = join(inv, 'hosts.yaml');
    await writeFile(
      good,
      stringify({
        all: { vars: { incus_trusted_clients: [{ name: 'alice', certificate_file: alice.file }] }, children: { incus: { hosts: { root1: hostVars } } } },
      }),
    );
    const bad = join(dir, 'bad', 'hosts.yaml');
    await mkdir(join(dir, 'bad', 'generated'), { recursive: true });
    await copyFile(mistakenKey, join(dir, 'bad', 'generated', 'mistaken.key'));
    // A certificate file with the key appended, as `cat cert key > file` makes.
    await writeFile(
      join(dir, 'bad', 'generated', 'both.pem'),
      (await readFile(join(inv, 'generated', 'mistaken.crt'), 'utf8')) + (await readFile(mistakenKey, 'utf8')),
    );
    await writeFile(
      bad,
      stringify({
        all: {
          vars: {
            incus_trusted_clients: [
              { name: 'oops', certificate_file: 'generated/mistaken.key' },
              { name: 'both', certificate_file: 'generated/both.pem' },
            ],
          },
          hosts: { root1: { ...host.inventoryVars(), ansible_ssh_private_key_file: sshKey } },
        },
      }),
    );

    // The mistaken certificate_file is refused, by every command that reads it.
    for (const args of [
      ['validate', '-i', bad],
      ['-i', bad, '--check'],
      ['-i', bad, '--json'],
      ['-i', bad, '-v'],
    ]) {
      const r = await cli(args);
      expect(r.exitCode, `${args.join(' ')}\n${r.stderr}`).toBe(1);
      expect(r.stderr + r.stdout).toMatch(/private key/i);
      expect(r.stderr).not.toMatch(STACK_LINE);
    }

    // Every command on the good inventory; apply generates the metrics key pair (0600).
    const metricsFile = join(dir, 'reconcile.prom');
    const runs: [string[], number[]][] = [
      [['validate', '-i', good], [0]],
      [['inventory', '-i', good, '--list'], [0]],
      [['inventory', '-i', good, '--host', 'root1'], [0]],
      [['inventory', '-i', good, '--graph'], [0]],
      [['audit', '-i', good], [0]],
      [['audit', '-i', good, '--json'], [0]],
      [['-i', good, '--check', '-v', '--diff'], [2]],
      [['-i', good, '--check', '--json'], [2]],
      [['-i', good, '-v', '--metrics-file', metricsFile], [0]],
      [['-i', good, '--json', '--metrics-file', metricsFile], [0]],
      [['-i', good, '--check', '-v'], [0]],
      [['audit', '-i', good, '--json'], [0]],
      [['scrape-config', '-i', good], [0]],
      [['scrape-config', '-i', good, '--json'], [0]],
    ];
    for (const [args, codes] of runs) {
      const r = await cli(args);
      expect(codes, `reconcile ${args.join(' ')} exited ${r.exitCode}\n${r.stderr}`).toContain(r.exitCode);
      expect(r.stderr).not.toMatch(STACK_LINE);
    }
    const metricsKey = join(inv, 'metrics', 'prom.key');
    expect((await stat(metricsKey)).mode & 0o777).toBe(0o600);
    seen.push({ where: 'metrics file', text: await readFile(metricsFile, 'utf8') });

    // Every other file reconcile left (beside the inventory, locks) and the lab's logs.
    const keyFiles = new Set([sshKey, mistakenKey, metricsKey]);
    const walk = async (d: string): Promise<string[]> =>
      (await readdir(d, { withFileTypes: true }).catch(() => [])).flatMap((e) => [join(d, e.name)]).length === 0
        ? []
        : (
            await Promise.all((await readdir(d, { withFileTypes: true })).map(async (e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)])))
          ).flat();
    for (const file of [...(await walk(dir)), ...(await walk(join(lab.dir, 'logs')))]) {
      if (keyFiles.has(file) || file.startsWith(join(dir, 'bad'))) continue;
      seen.push({ where: file, text: await readFile(file, 'latin1') });
    }

    const keys = {
      ansible_ssh_private_key_file: secretWindows(await readFile(sshKey, 'utf8')),
      'metrics key_file': secretWindows(await readFile(metricsKey, 'utf8')),
      'key given as certificate_file': secretWindows(await readFile(mistakenKey, 'utf8')),
    };
    for (const windows of Object.values(keys)) {
      expect(windows.length).toBeGreaterThan(60);
      // The detector itself: 40 characters of a key, re-wrapped inside other text, are found.
      const w = windows[windows.length >> 1]!;
      expect(leakIn(windows, `x ${w.slice(0, 23)}\n  ${w.slice(23)} y`)).toBeDefined();
    }
    const leaks: string[] = [];
    for (const [key, windows] of Object.entries(keys)) {
      for (const s of seen) {
        const w = leakIn(windows, s.text);
        if (w) leaks.push(`${key} leaked in ${s.where}: …${w}…`);
      }
    }
    expect(leaks).toEqual([]);
    expect(seen.length).toBeGreaterThan(40);
  });

  it('a metrics key file that others may read gets a warning, in check and apply mode', async () => {
    const inv = join(dir, 'inv');
    const metricsKey = join(inv, 'metrics', 'prom.key');
    await chmod(metricsKey, 0o644);
    try {
      for (const args of [
        ['-i', join(inv, 'hosts.yaml'), '--check'],
        ['-i', join(inv, 'hosts.yaml')],
      ]) {
        const r = await cli(args);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/metrics\/prom\.key can be read by others than its owner \(mode 0644\); run: chmod 600/);
        expect(r.stderr).toMatch(/hosts\.yaml:\d+:\d+: warning: /);
      }
    } finally {
      await chmod(metricsKey, 0o600);
    }
    const quiet = await cli(['-i', join(inv, 'hosts.yaml'), '--check']);
    expect(quiet.stderr).not.toMatch(/can be read by others/);
  });

  it('an SSH key file (ansible_ssh_private_key_file) that others may read gets a warning in the host report', async () => {
    const inv = join(dir, 'inv');
    const sshKey = join(inv, 'keys', 'ssh_key');
    await chmod(sshKey, 0o640);
    try {
      const text = await cli(['-i', join(inv, 'hosts.yaml'), '--check']);
      expect(text.exitCode, text.stderr).toBe(0);
      expect(text.stdout).toContain(`warning: private key ${sshKey} can be read by others than its owner (mode 0640); run: chmod 600 ${sshKey}`);
      const json = await cli(['-i', join(inv, 'hosts.yaml'), '--check', '--json']);
      expect(JSON.parse(json.stdout).hosts[0].warnings).toContain(
        `private key ${sshKey} can be read by others than its owner (mode 0640); run: chmod 600 ${sshKey}`,
      );
    } finally {
      await chmod(sshKey, 0o600);
    }
    const quiet = await cli(['-i', join(inv, 'hosts.yaml'), '--check', '--json']);
    expect(JSON.stringify(JSON.parse(quiet.stdout).hosts[0].warnings)).not.toMatch(/can be read by others/);
  });
});
