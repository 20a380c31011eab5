/**
 * The inventory commands as a user runs them: `node bin/reconcile.js` as a subprocess, asserting
 * exit code, stdout and stderr. Compared against the real ansible-inventory (Debian's
 * ansible-core, installed by test/lab/install.sh) and the real openssl.
 * Needs `npm run build` first (npm test does it).
 */
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { loadInventory } from '../../src/inventory/load.js';
import { selectHosts } from '../../src/inventory/patterns.js';

const exec = promisify(execFile);
const REPO = new URL('../../', import.meta.url).pathname;
const FIXTURES = join(REPO, 'test/fixtures');
let work: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], cwd = work, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1', ANSIBLE_NOCOLOR: '1', ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
const reconcile = (...args: string[]) => run('node', [join(REPO, 'bin/reconcile.js'), ...args]);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'reconcile-inv-cli-'));
  cpSync(join(FIXTURES, 'nested-inventory'), join(work, 'nested'), { recursive: true });
  cpSync(join(FIXTURES, 'seed-incus-cluster'), join(work, 'seed'), { recursive: true });
  cpSync(join(FIXTURES, 'yaml-edge-inventory'), join(work, 'edge'), { recursive: true });
  cpSync(join(FIXTURES, 'ini-inventory'), join(work, 'ini'), { recursive: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('reconcile validate', () => {
  it('accepts the layout of the Incus client-certificate guide unchanged', async () => {
    expect(await reconcile('validate', '-i', 'seed/host-incus-cluster.yaml')).toEqual({
      code: 0,
      stdout: 'seed/host-incus-cluster.yaml: valid — 2 hosts, 3 groups\n',
      stderr: '',
    });
  });

  it('accepts the shipped example inventory with the shipped playbook', async () => {
    const result = await run('node', [join(REPO, 'bin/reconcile.js'), 'validate', '-i', 'inventory.example', 'playbooks/site.yaml'], REPO);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^inventory\.example and playbooks\/site\.yaml \(\d+ plays?\): valid — 4 hosts, 5 groups\n$/);
    expect(result.code).toBe(0);
  });

  it('validates a playbook with the inventory, warning about plays that match nothing', async () => {
    writeFileSync(join(work, 'site.yaml'), '- name: trust\n  hosts: incus:staging\n  reconcile: [incus_trust]\n');
    expect(await reconcile('validate', '-i', 'seed/host-incus-cluster.yaml', 'site.yaml')).toEqual({
      code: 0,
      stdout: 'seed/host-incus-cluster.yaml and site.yaml (1 play): valid — 2 hosts, 3 groups, 1 warning\n',
      stderr: 'warning: play "trust": could not match host pattern "staging": it names no host or group in the inventory; ignoring it\n',
    });
  });

  it('reports every problem at once with file:line:column, value path and caret, exit 1, no stack trace', async () => {
    const dir = join(work, 'bad');
    cpSync(join(FIXTURES, 'bad-inventories/multiple-problems'), dir, { recursive: true });
    const pair = await generateSelfSigned({ commonName: 'good', validityDays: 30, now: new Date(), type: 'client' });
    mkdirSync(join(dir, 'certs'));
    writeFileSync(join(dir, 'certs/good.crt'), pair.certificatePem);
    const result = await reconcile('validate', '-i', 'bad/hosts.yaml');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        'bad/hosts.yaml:4:24: error: all.vars.incus_trust_prune: must be a boolean (true or false), not the string "maybe"',
        '        incus_trust_prune: maybe',
        '                           ^',
        'bad/hosts.yaml:14:25: error: all.children.incus.hosts.incus1.ansible_port: must be a port number (1-65535), not the string "ssh"',
        '              ansible_port: "ssh"',
        '                            ^',
        'bad/hosts.yaml:8:15: error: all.vars.incus_trusted_clients[1].name: duplicate certificate name "admin" (also at bad/hosts.yaml:6:15); names must be unique on a host',
        '          - name: admin',
        '                  ^',
        'bad/hosts.yaml:9:27: error: all.vars.incus_trusted_clients[1].certificate_file: certificate file "certs/missing.crt" does not exist (paths are relative to the inventory folder bad)',
        '            certificate_file: certs/missing.crt',
        '                              ^',
        'bad/hosts.yaml:16:31: error: all.children.incus.hosts.incus2.ansible_connection: must be one of "ssh", "smart", "paramiko", "local", not the string "winrm"',
        '              ansible_connection: winrm',
        '                                  ^',
        'reconcile: 5 error(s); nothing was changed',
        '',
      ].join('\n'),
    );
  });

  it('says in one line what is wrong with the command line', async () => {
    expect(await reconcile('validate')).toEqual({
      code: 1,
      stdout: '',
      stderr:
        "reconcile: validate: -i INVENTORY is required, or an inventory in ansible.cfg ([defaults] inventory) or ANSIBLE_INVENTORY (see 'reconcile validate --help')\n",
    });
    expect(await reconcile('validate', '-i', 'nowhere.yaml')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: inventory nowhere.yaml does not exist\nreconcile: 1 error(s); nothing was changed\n',
    });
  });
});

describe('reconcile inventory, compared with ansible-inventory', () => {
  const hostsOf = () => ['lonely.example', 'incus-a.example', 'incus-b.example', 'prom.example', 'web01.example', 'web02.example', 'web03.example'];

  it('--host gives the same merged variables for every host of a nested inventory with group_vars and host_vars', async () => {
    for (const host of hostsOf()) {
      const ours = await reconcile('inventory', '-i', 'nested/hosts.yaml', '--host', host);
      const theirs = await run('ansible-inventory', ['-i', 'nested/hosts.yaml', '--host', host]);
      expect(theirs.code).toBe(0);
      expect(ours.code).toBe(0);
      expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(theirs.stdout));
      expect(ours.stdout).toBe(theirs.stdout);
    }
  });

  it('--list and --graph print what ansible-inventory prints, for a file, a folder, and YAML 1.1 corners', async () => {
    for (const source of ['nested/hosts.yaml', 'nested', 'edge/hosts.yaml']) {
      for (const mode of ['--list', '--graph']) {
        const ours = await reconcile('inventory', '-i', source, mode);
        const theirs = await run('ansible-inventory', ['-i', source, mode]);
        expect(theirs.code).toBe(0);
        expect({ source, mode, out: ours.stdout, code: ours.code }).toEqual({ source, mode, out: theirs.stdout, code: 0 });
      }
    }
  });

  it('reads an INI inventory (ungrouped hosts, :vars, :children, ranges, ports, inline values) with group_vars/host_vars as ansible-inventory does', async () => {
    const list = await run('ansible-inventory', ['-i', 'ini/hosts', '--list']);
    expect(list.code).toBe(0);
    const hosts = Object.keys(JSON.parse(list.stdout)._meta.hostvars as Record<string, unknown>);
    expect(hosts.length).toBe(10);
    for (const host of hosts) {
      const ours = await reconcile('inventory', '-i', 'ini/hosts', '--host', host);
      const theirs = await run('ansible-inventory', ['-i', 'ini/hosts', '--host', host]);
      expect(theirs.code).toBe(0);
      expect({ host, out: ours.stdout, code: ours.code, stderr: ours.stderr }).toEqual({ host, out: theirs.stdout, code: 0, stderr: '' });
    }
    // The same file named inventory.ini; a folder mixing it with a YAML inventory, where both
    // read `hosts` and skip *.ini and *.txt.
    cpSync(join(work, 'ini'), join(work, 'mixed'), { recursive: true });
    copyFileSync(join(work, 'mixed/hosts'), join(work, 'mixed/inventory.ini'));
    writeFileSync(join(work, 'mixed/notes.txt'), 'not an inventory\n');
    writeFileSync(join(work, 'mixed/more.yaml'), 'all:\n  children:\n    web:\n      hosts:\n        web04.example:\n          role: new\n');
    for (const source of ['ini/hosts', 'ini', 'mixed/inventory.ini', 'mixed']) {
      for (const mode of ['--list', '--graph']) {
        const ours = await reconcile('inventory', '-i', source, mode);
        const theirs = await run('ansible-inventory', ['-i', source, mode]);
        expect(theirs.code).toBe(0);
        expect({ source, mode, out: ours.stdout, code: ours.code }).toEqual({ source, mode, out: theirs.stdout, code: 0 });
      }
    }
  });

  it('points INI syntax errors and invalid INI values at file:line:column', async () => {
    writeFileSync(join(work, 'broken.ini'), '[web]\nweb1 ansible_port=ssh\nweb2 oops\n[web:nonsense]\n[db:children]\nmissing\n');
    const result = await reconcile('validate', '-i', 'broken.ini');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        'broken.ini:3:6: error: web.hosts.web2: expected key=value after the host name, not "oops"',
        '    web2 oops',
        '         ^',
        'broken.ini:4:6: error: section [web:nonsense] has an unknown type "nonsense" (use :vars or :children)',
        '    [web:nonsense]',
        '         ^',
        'broken.ini:6:1: error: group "missing" in [db:children] is never declared: add a [missing] or [missing:children] section',
        '    missing',
        '    ^',
        'reconcile: 3 error(s); nothing was changed',
        '',
      ].join('\n'),
    );
    writeFileSync(join(work, 'badport.ini'), '[web]\nweb1   ansible_port=ssh\n');
    const invalid = await reconcile('validate', '-i', 'badport.ini');
    expect(invalid.stderr).toBe(
      [
        'badport.ini:2:21: error: web.hosts.web1.ansible_port: must be a port number (1-65535), not the string "ssh"',
        '    web1   ansible_port=ssh',
        '                        ^',
        'reconcile: 1 error(s); nothing was changed',
        '',
      ].join('\n'),
    );
    expect(invalid.code).toBe(1);
  });

  it('keeps stdout for the output and prints warnings on stderr', async () => {
    writeFileSync(join(work, 'typo.yaml'), 'all:\n  host:\n    a:\n  hosts:\n    b:\n');
    expect(await reconcile('inventory', '-i', 'typo.yaml', '--graph')).toEqual({
      code: 0,
      stdout: '@all:\n  |--@ungrouped:\n  |  |--b\n',
      stderr:
        'typo.yaml:2:3: warning: all.host: unexpected key "host" in group "all" is ignored (only hosts, vars and children are valid)\n      host:\n      ^\n',
    });
  });

  it('refuses an unknown host in one line', async () => {
    expect(await reconcile('inventory', '-i', 'nested', '--host', 'ghost')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'reconcile: inventory: no host named "ghost" in nested\n',
    });
  });
});

describe('host patterns, compared with ansible --list-hosts', () => {
  it('select the same hosts as Ansible for names, groups, globs, regexes, subscripts, unions, & and !', async () => {
    const inventory = await loadInventory(join(work, 'nested'));
    const patterns = [
      'incus',
      'infra:!prod',
      'infra:&prod',
      'web0[13].example',
      '~(web|prom)',
      'web[1:]',
      'web[-1]',
      '!web',
      '*.example:!web*',
      'monitoring,web_canary',
      'nothere:incus',
    ];
    for (const pattern of patterns) {
      const theirs = await run('ansible', ['-i', 'nested', pattern, '--list-hosts']);
      expect(theirs.code).toBe(0);
      const listed = theirs.stdout
        .split('\n')
        .slice(1)
        .map((l) => l.trim())
        .filter(Boolean)
        .sort();
      expect({ pattern, hosts: selectHosts(inventory, pattern).hosts.sort() }).toEqual({ pattern, hosts: listed });
    }
  });
});

describe('reconcile cert', () => {
  it('generate writes NAME.crt and a 0600 NAME.key, never printing the key', async () => {
    const result = await reconcile('cert', 'generate', 'prometheus-metrics', '--type', 'metrics', '--days', '90', '--out-dir', 'pki');
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const key = readFileSync(join(work, 'pki/prometheus-metrics.key'), 'utf8');
    const parsedKey = createPrivateKey(key);
    expect([parsedKey.asymmetricKeyType, parsedKey.asymmetricKeyDetails?.namedCurve]).toEqual(['ec', 'secp384r1']);
    expect(statSync(join(work, 'pki/prometheus-metrics.key')).mode & 0o777).toBe(0o600);
    for (const line of key.split('\n').filter((l) => l.length > 20)) expect(result.stdout).not.toContain(line);
    expect(result.stdout).not.toContain('PRIVATE KEY-----');
    expect(readdirSync(join(work, 'pki')).sort()).toEqual(['prometheus-metrics.crt', 'prometheus-metrics.key']);
    const info = await reconcile('cert', 'info', 'pki/prometheus-metrics.crt');
    expect(info.stdout).toMatch(/^Subject: {6}CN=metrics\.local$/m);
    expect(info.stdout).toMatch(/^Days left: {4}(89|90)$/m);
    expect(info.stdout).toMatch(/^Key: {10}ECDSA P-384$/m);
    // A second generate does not overwrite a key pair by accident.
    expect(await reconcile('cert', 'generate', 'prometheus-metrics', '--out-dir', 'pki')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'reconcile: cert generate: pki/prometheus-metrics.crt already exists; use --force to replace it\n',
    });
  });

  it('generate refuses a key in a Git work tree that does not ignore it; --key-out sends it elsewhere; --force keeps the replaced pair', async () => {
    const repo = join(work, 'infra');
    mkdirSync(repo);
    expect((await run('git', ['init', '-q'], repo)).code).toBe(0);
    const home = join(work, 'home');
    const inRepo = (...args: string[]) => run('node', [join(REPO, 'bin/reconcile.js'), 'cert', 'generate', ...args], repo, { HOME: home });

    expect(await inRepo('ci', '--out-dir', 'incus/trusted-client-certs')).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `reconcile: cert generate: incus/trusted-client-certs/ci.key would be inside the Git work tree ${repo} and no ignore rule covers it: one 'git add' from a leaked key.\n` +
        "  Keep the key out of the repository (--key-out ~/.config/incus/client.key), or ignore it: echo '*.key' >> incus/trusted-client-certs/.gitignore\n" +
        '  (--allow-key-in-repo writes it anyway)\n',
    });
    expect(existsSync(join(repo, 'incus'))).toBe(false);

    const elsewhere = await inRepo('ci', '--out-dir', 'incus/trusted-client-certs', '--key-out', '~/.config/incus/client.key');
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(statSync(join(home, '.config/incus/client.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(repo, 'incus/trusted-client-certs'))).toEqual(['ci.crt']);
    expect(elsewhere.stdout).toContain('       incus_trusted_clients:\n         - name: ci\n');
    expect(elsewhere.stdout).toContain('           certificate_file: incus/trusted-client-certs/ci.crt\n');
    expect(elsewhere.stdout).toMatch(/On this client, add each server as a remote:\n {7}incus remote add REMOTE SERVER:8443 --accept-certificate\n$/);

    // With an ignore rule the key may stay beside the certificate; --force keeps what it replaces.
    writeFileSync(join(repo, 'incus/trusted-client-certs/.gitignore'), '*.key\n');
    expect((await inRepo('laptop', '--out-dir', 'incus/trusted-client-certs')).code).toBe(0);
    const oldKey = readFileSync(join(repo, 'incus/trusted-client-certs/laptop.key'), 'utf8');
    const rotated = await inRepo('laptop', '--out-dir', 'incus/trusted-client-certs', '--force');
    expect(rotated.code, rotated.stderr).toBe(0);
    const files = readdirSync(join(repo, 'incus/trusted-client-certs')).sort();
    const previousKey = files.find((f) => /^laptop\.previous-\d{8}T\d{6}Z\.key$/.test(f))!;
    const previousCrt = previousKey.replace(/\.key$/, '.crt');
    expect(files).toEqual(['.gitignore', 'ci.crt', 'laptop.crt', 'laptop.key', previousCrt, previousKey].sort());
    expect(readFileSync(join(repo, 'incus/trusted-client-certs', previousKey), 'utf8')).toBe(oldKey);
    expect(statSync(join(repo, 'incus/trusted-client-certs', previousKey)).mode & 0o777).toBe(0o600);
    expect(rotated.stdout).toContain(`           previous_certificate_file: incus/trusted-client-certs/${previousCrt}\n`);
    expect(rotated.stdout).not.toContain('PRIVATE KEY');
  });

  it('info shows the SHA-256 fingerprint exactly as openssl computes it (lowercase, no colons)', async () => {
    const files = readdirSync(join(work, 'seed/incus/trusted-client-certs')).filter((f) => f.endsWith('.crt'));
    expect(files.length).toBe(4);
    for (const f of files) {
      const path = `seed/incus/trusted-client-certs/${f}`;
      const openssl = await run('openssl', ['x509', '-in', path, '-noout', '-fingerprint', '-sha256']);
      const expected = openssl.stdout
        .trim()
        .replace(/^.*Fingerprint=/i, '')
        .replace(/:/g, '')
        .toLowerCase();
      const info = await reconcile('cert', 'info', path);
      expect(info.code).toBe(0);
      expect(info.stdout).toContain(`\nFingerprint:  ${expected}\n`);
      // The same certificate as DER gives the same fingerprint.
      expect((await run('openssl', ['x509', '-in', path, '-outform', 'DER', '-out', `${f}.der`])).code).toBe(0);
      expect((await reconcile('cert', 'info', `${f}.der`)).stdout).toContain(`\nFingerprint:  ${expected}\n`);
    }
  });

  it('info refuses a private key without showing it', async () => {
    const pair = await generateSelfSigned({ commonName: 'k', validityDays: 1, now: new Date(), type: 'client' });
    writeFileSync(join(work, 'client.key'), pair.privateKeyPem, { mode: 0o600 });
    const result = await reconcile('cert', 'info', 'client.key');
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: 'reconcile: cert info: client.key holds a private key; it is not shown (give the certificate file)\n',
    });
  });
});

describe('--help', () => {
  it('lists the commands at the top level and describes each command', async () => {
    const top = await reconcile('--help');
    expect(top.code).toBe(0);
    for (const command of ['validate', 'inventory', 'audit', 'cert', 'scrape-config']) expect(top.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    for (const command of ['validate', 'inventory', 'cert']) {
      const help = await reconcile(command, '--help');
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: reconcile ${command} `));
      expect(help.stderr).toBe('');
    }
  });
});
