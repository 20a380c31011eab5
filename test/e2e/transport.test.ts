/**
 * The SSH transport against real lab hosts (sshd + incusd), in process: the paths a user's
 * inventory can take (root, sudo, jump host, local), and each way a host can fail.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import type { InventoryHost } from '../../src/inventory/model.js';
import { connectHost, connectionSpecOf } from '../../src/transport/connect.js';
import type { ConnectionSpec, HostSession, TransportOptions } from '../../src/transport/types.js';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';

let lab: Lab;
let options: TransportOptions;
const sessions: HostSession[] = [];

function inventoryHost(name: string, vars: Record<string, unknown>): InventoryHost {
  return {
    name,
    groups: ['all'],
    vars: Object.fromEntries(
      Object.entries(vars).map(([k, value]) => [
        k,
        { value, location: { file: 'inv.yaml', line: 1, column: 1 }, valuePath: `all.hosts.${name}.${k}`, nested: new Map() },
      ]),
    ),
  };
}

function specOf(name: string, extra: Record<string, unknown> = {}): ConnectionSpec {
  return connectionSpecOf(inventoryHost(name, { ...lab.host(name).inventoryVars(), ...extra }), options);
}

async function connect(name: string, extra: Record<string, unknown> = {}, opts: Partial<TransportOptions> = {}): Promise<HostSession> {
  const s = await connectHost(specOf(name, extra), { ...options, ...opts });
  sessions.push(s);
  return s;
}

async function failure(p: Promise<unknown>): Promise<TransportError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  return e as TransportError;
}

beforeAll(async () => {
  lab = await startLab({
    name: 'transport',
    hosts: [
      { name: 'web1' },
      { name: 'sudo1', user: 'sudoer' },
      { name: 'bastion', incus: false },
      { name: 'inner', jumpVia: 'bastion' },
      { name: 'wrongkey', incus: false, wrongHostKey: true },
      { name: 'down', down: true },
      { name: 'noforward', streamLocalForwarding: false },
    ],
  });
  // The transport finds ~/.ssh through HOME, as it does for a user.
  process.env.HOME = lab.env.HOME;
  options = {
    connectTimeoutMs: 5000,
    commandTimeoutMs: 10_000,
    knownHostsFiles: [path.join(lab.env.HOME!, '.ssh', 'known_hosts')],
    acceptNewHostKeys: false,
    agentSocket: null,
  };
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await lab?.stop();
});

describe('ssh transport, root login', () => {
  it('runs argv exactly as given: no word of it is interpreted by a shell', async () => {
    const s = await connect('web1');
    const words = ['a b', "it's", '$(touch /tmp/pwned)', '`id`', '*', '', 'x;y', '\\n'];
    const r = await s.exec(['printf', '%s\\n', ...words], 'echo');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe(words.map((w) => `${w}\n`).join(''));
    const fail = await s.exec(['sh', '-c', 'echo oops >&2; exit 7'], 'fail');
    expect(fail).toMatchObject({ exitCode: 7, stderr: 'oops\n' });
    const stdin = await s.exec(['wc', '-c'], 'stdin', { stdin: 'x'.repeat(100_000) });
    expect(stdin.stdout.toString().trim()).toBe('100000');
  });

  it('reads the Incus API over the forwarded socket, with ETags, 40 concurrent requests on one connection', async () => {
    const s = await connect('web1');
    const server = await s.incus.request<{ environment: { server_version: string } }>('GET', '/1.0', 'read server');
    expect(server.status).toBe(200);
    expect(server.metadata.environment.server_version).toMatch(/^6\./);
    const project = await s.incus.request('GET', '/1.0/projects/default', 'read project');
    expect(project.etag).toMatch(/^"[0-9a-f]+"$/);
    const many = await Promise.all(Array.from({ length: 40 }, () => s.incus.request<string[]>('GET', '/1.0/certificates', 'list')));
    expect(many.every((r) => Array.isArray(r.metadata))).toBe(true);
    const e = await failure(s.incus.request('GET', '/1.0/nope', 'read nothing'));
    expect(e.message).toBe('web1: read nothing: Incus refused (404): not found');
  });

  it('If-Match: a stale ETag is refused by Incus (412)', async () => {
    const s = await connect('web1');
    const before = await s.incus.request<{ config: Record<string, string>; description: string }>('GET', '/1.0/projects/default', 'read');
    await s.incus.request('PATCH', '/1.0/projects/default', 'touch', { description: 'changed once' }, { ifMatch: before.etag });
    const stale = await failure(s.incus.request('PATCH', '/1.0/projects/default', 'touch again', { description: 'stale' }, { ifMatch: before.etag }));
    expect(stale.message).toMatch(/Incus refused \(412\)/);
    expect(JSON.parse(await lab.host('web1').incus(['query', '/1.0/projects/default'])).description).toBe('changed once');
  });

  it('writes files atomically: check before rename, backup of the old file, content never in argv', async () => {
    const s = await connect('web1');
    const dir = (await s.exec(['mktemp', '-d'], 'mktemp')).stdout.toString().trim();
    const target = `${dir}/scrape.yml`;
    expect(await s.readFile(target, 'read')).toBeUndefined();
    await s.writeFile(target, 'first\n', 'write', { mode: 0o640, backup: true });
    await s.writeFile(target, 'second\n', 'write', { mode: 0o640, backup: true, check: ['grep', '-q', 'second', '{}'] });
    expect((await s.readFile(target, 'read'))?.toString()).toBe('second\n');
    expect((await s.readFile(`${target}.bak`, 'read'))?.toString()).toBe('first\n');
    const refused = await failure(s.writeFile(target, 'third\n', 'write policy', { mode: 0o640, backup: true, check: ['grep', '-q', 'never', '{}'] }));
    expect(refused.message).toMatch(/refused the new content; the old file is unchanged/);
    expect((await s.readFile(target, 'read'))?.toString()).toBe('second\n');
    const listing = (await s.exec(['sh', '-c', 'ls -A "$1"; stat -c %a "$1/scrape.yml"', 'sh', dir], 'ls')).stdout.toString();
    expect(listing).toBe('scrape.yml\nscrape.yml.bak\n640\n');
  });

  it('a command that runs too long fails its step, and the connection stays usable', async () => {
    const s = await connect('web1');
    const e = await failure(s.exec(['sleep', '5'], 'wait', { timeoutMs: 300 }));
    expect(e.message).toBe('web1: wait: sleep did not finish within 300 ms');
    expect((await s.exec(['true'], 'after')).exitCode).toBe(0);
  });
});

describe('ssh transport, other paths', () => {
  it('sudo: a non-root login runs privileged commands and the Incus API through sudo -n', async () => {
    const s = await connect('sudo1');
    expect(s.spec).toMatchObject({ user: 'reconcile-sudo', become: true });
    expect((await s.exec(['id', '-un'], 'who')).stdout.toString()).toBe('reconcile-sudo\n');
    expect((await s.exec(['id', '-un'], 'who', { privileged: true })).stdout.toString()).toBe('root\n');
    const certs = await s.incus.request<unknown[]>('GET', '/1.0/certificates?recursion=1', 'read trust store');
    expect(certs.metadata).toEqual([]);
    // The socket is relayed as root: the answers carry their ETag, so an update is conditional (If-Match).
    expect((await s.incus.request('GET', '/1.0', 'read server')).etag).toMatch(/^"?[0-9a-f]{64}"?$/);
    expect(s.notes ?? []).toEqual([]);
    // Without become, the socket (root only) is out of reach for this user, through SSH and through exec alike: the step fails clearly.
    const plain = await connect('sudo1', { ansible_become: false });
    const e = await failure(plain.incus.request('GET', '/1.0', 'read server'));
    expect(e.message).toMatch(
      /^sudo1: read server: Incus API \(GET \/1\.0\): cannot open \S+unix\.socket on the host: .*; over exec: incus query GET \/1\.0 failed \(exit 1\): You don't have the needed permissions to talk to the incus daemon/,
    );
  });

  it('sudo: files are written through sudo -n, atomically, where only root may write', async () => {
    const s = await connect('sudo1');
    const dir = path.join(lab.dir, 'root-only');
    await mkdir(dir, { mode: 0o700 });
    const target = path.join(dir, '30-prometheus-proxy.policy');
    await s.writeFile(target, 'policy v1\n', 'write policy', { mode: 0o664, backup: true, tempPrefix: '.' });
    await s.writeFile(target, 'policy v2\n', 'write policy', { mode: 0o664, backup: true, tempPrefix: '.' });
    expect(await readFile(target, 'utf8')).toBe('policy v2\n');
    expect(await readFile(`${target}.bak`, 'utf8')).toBe('policy v1\n');
    expect(statSync(target)).toMatchObject({ uid: 0, mode: 0o100664 });
    expect((await s.readFile(target, 'read policy', true))?.toString()).toBe('policy v2\n');
    const denied = await failure(s.readFile(target, 'read policy', false));
    expect(denied.message).toMatch(/^sudo1: read policy: cannot read .*Permission denied/);
  });

  it('authenticates with ssh-agent when no key file is there; a refused key fails the authenticate step', async () => {
    const dir = path.join(lab.dir, 'agent');
    await mkdir(dir);
    const exec = promisify(execFile);
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'agent_key')]);
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'stranger_key')]);
    // Authorize the agent's key for the lab's sshds (they share one authorized_keys file).
    await appendFile(path.join(lab.dir, 'authorized_keys'), await readFile(path.join(dir, 'agent_key.pub')));
    const socket = path.join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const home = process.env.HOME;
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
      await exec('ssh-add', ['-q', path.join(dir, 'agent_key')], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      process.env.HOME = path.join(dir, 'empty-home'); // no ~/.ssh/id_* to fall back on
      const s = await connect('web1', {}, { agentSocket: socket });
      expect((await s.exec(['id', '-un'], 'who')).stdout.toString()).toBe('root\n');
      const none = await failure(connect('web1', {}, { agentSocket: null }));
      expect(none).toMatchObject({ step: 'authenticate', unreachable: true });
      expect(none.message).toMatch(/no key to offer root@127\.77\.[0-9.]+: no ssh-agent \(SSH_AUTH_SOCK\) and no key file/);
      // A passphrase-protected default key without an agent: said so, with the way out (not "no key file").
      await mkdir(path.join(dir, 'empty-home', '.ssh'), { recursive: true });
      await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret words', '-f', path.join(dir, 'empty-home', '.ssh', 'id_ed25519')]);
      const locked = await failure(connect('web1', {}, { agentSocket: null }));
      expect(locked.message).toMatch(
        /^web1: authenticate: no key to offer root@127\.77\.[0-9.]+: ~\/\.ssh\/id_ed25519 is protected by a passphrase and no ssh-agent holds it \(SSH_AUTH_SOCK is not set\): start one and run 'ssh-add ~\/\.ssh\/id_ed25519', or name a key without a passphrase/,
      );
      const refused = await failure(connect('web1', { ansible_ssh_private_key_file: path.join(dir, 'stranger_key') }, { agentSocket: null }));
      expect(refused.message).toBe(`web1: authenticate: root@${lab.host('web1').address}:22 accepted none of the keys offered`);
      // A key "file" that never ends, or never answers, is refused at once (not read forever).
      const endless = await failure(connect('web1', { ansible_ssh_private_key_file: '/dev/zero' }, { agentSocket: null }));
      expect(endless.message).toBe('web1: read private key: /dev/zero is a device, not a file');
      await exec('mkfifo', [path.join(dir, 'key_fifo')]);
      const fifo = await failure(connect('web1', { ansible_ssh_private_key_file: path.join(dir, 'key_fifo') }, { agentSocket: null }));
      expect(fifo.message).toBe(`web1: read private key: ${path.join(dir, 'key_fifo')} is a FIFO (named pipe), not a file`);
    } finally {
      process.env.HOME = home;
      agent.kill();
    }
  });

  it('jump host: reachable through -J only; the direct connection is refused', async () => {
    const inner = lab.host('inner');
    const s = await connect('inner');
    expect(s.spec.jumps).toEqual([{ address: lab.host('bastion').address, port: 22, user: 'root', privateKeyFile: undefined }]);
    expect((await s.exec(['hostname'], 'run')).exitCode).toBe(0);
    const api = await s.incus.request<{ environment: { server_clustered: boolean } }>('GET', '/1.0', 'read server');
    expect(api.metadata.environment.server_clustered).toBe(false);
    const direct = await failure(connect('inner', { ansible_ssh_common_args: '-o ProxyJump=none' }));
    expect(direct).toMatchObject({ step: 'connect', unreachable: true });
    expect(direct.message).toBe(`inner: connect: connection refused by ${inner.address}:22`);
    // The same through ~/.ssh/config: ProxyJump there, and the host known by its alias.
    const viaConfig = await connectHost(
      connectionSpecOf(inventoryHost('inner', {}), { ...options, sshConfigFile: path.join(lab.env.HOME!, '.ssh', 'config') }),
      options,
    );
    sessions.push(viaConfig);
    expect((await viaConfig.exec(['true'], 'run')).exitCode).toBe(0);
    expect(viaConfig.spec.warnings).toBeUndefined();
    // A Match criterion reconcile cannot evaluate: the block is skipped, and the host says so.
    const withMatch = path.join(lab.dir, 'ssh_config.match-exec');
    await writeFile(withMatch, `Match exec "false"\n  Port 9\n\n${await readFile(path.join(lab.env.HOME!, '.ssh', 'config'), 'utf8')}`);
    const warned = await connectHost(connectionSpecOf(inventoryHost('inner', {}), { ...options, sshConfigFile: withMatch }), options);
    sessions.push(warned);
    expect((await warned.exec(['true'], 'run')).exitCode).toBe(0);
    expect(warned.spec.warnings).toEqual([`${withMatch}:1: Match exec false: criterion "exec" is not supported; block ignored`]);
  });

  it('ProxyCommand: run through /bin/sh with %h %p %r expanded, its stdio the SSH transport; a failing one fails the host with what it said', async () => {
    const home = lab.env.HOME!;
    const bastion = lab.host('bastion');
    const relay = `ssh -F /dev/null -o BatchMode=yes -i ${home}/.ssh/id_ed25519 -o UserKnownHostsFile=${home}/.ssh/known_hosts -o StrictHostKeyChecking=yes -W %h:%p root@${bastion.address}`;
    const s = await connect('inner', { ansible_ssh_common_args: `-o ProxyCommand="${relay}"` });
    expect(s.spec.proxyCommand).toBe(relay.replace('%h', lab.host('inner').address).replace('%p', '22'));
    expect(s.spec.jumps).toEqual([]);
    expect((await s.exec(['hostname'], 'run')).exitCode).toBe(0);
    expect((await s.incus.request<{ api_version: string }>('GET', '/1.0', 'read server')).metadata.api_version).toBe('1.0');
    // The same from ~/.ssh/config, as most users have it.
    const config = path.join(lab.dir, 'ssh_config.proxycommand');
    await writeFile(config, `Host inner\n  HostName ${lab.host('inner').address}\n  User root\n  ProxyCommand ${relay}\n`);
    const fromConfig = await connectHost(connectionSpecOf(inventoryHost('inner', {}), { ...options, sshConfigFile: config }), options);
    sessions.push(fromConfig);
    expect((await fromConfig.exec(['true'], 'run')).exitCode).toBe(0);
    const broken = await failure(connect('inner', { ansible_ssh_common_args: `-o ProxyCommand="echo 'relay: no route to %n as %r' >&2; exit 1"` }));
    expect(broken).toMatchObject({ step: 'connect', unreachable: true });
    // %n is the name as given to ssh: ansible_host, as Ansible passes it.
    expect(broken.message).toMatch(new RegExp(`; ProxyCommand said: relay: no route to ${lab.host('inner').address.replace(/\./g, '\\.')} as root$`));
  });

  it('wrong host key: fails the host naming the key it offered, even with --accept-new-host-keys', async () => {
    for (const acceptNewHostKeys of [false, true]) {
      const e = await failure(connect('wrongkey', {}, { acceptNewHostKeys }));
      expect(e).toMatchObject({ step: 'verify host key', unreachable: true });
      expect(e.message).toContain(lab.host('wrongkey').hostKeyFingerprint);
      expect(e.message).toMatch(/HOST KEY CHANGED/);
    }
  });

  it('unknown host key: refused by default, recorded with --accept-new-host-keys, then known', async () => {
    const knownHosts = path.join(lab.dir, 'known_hosts.partial');
    await writeFile(knownHosts, '');
    const opts = { knownHostsFiles: [knownHosts] };
    const e = await failure(connect('web1', {}, opts));
    expect(e.message).toContain(`is not in ${knownHosts}; it offered ssh-ed25519 ${lab.host('web1').hostKeyFingerprint}`);
    await connect('web1', {}, { ...opts, acceptNewHostKeys: true });
    expect(await readFile(knownHosts, 'utf8')).toMatch(/^\|1\|\S+ ssh-ed25519 \S+\n$/);
    await connect('web1', {}, opts);
  });

  it('a key on a matching line and also marked @revoked is refused, naming the @revoked line', async () => {
    const knownHosts = path.join(lab.dir, 'known_hosts.revoked');
    const good = await readFile(path.join(lab.env.HOME!, '.ssh', 'known_hosts'), 'utf8');
    const key = good
      .split('\n')
      .find((l) => l.startsWith(`${lab.host('web1').address} `))!
      .split(' ')
      .slice(1)
      .join(' ');
    await writeFile(knownHosts, `${lab.host('web1').address} ${key}\n@revoked * ${key}\n`);
    const e = await failure(connect('web1', {}, { knownHostsFiles: [knownHosts] }));
    expect(e).toMatchObject({ step: 'verify host key', unreachable: true });
    expect(e.message).toContain(`which is marked @revoked in ${knownHosts}:2`);
  });

  it('where sshd forbids socket forwarding, the Incus API goes through `incus query` instead', async () => {
    const s = await connect('noforward');
    const api = await s.incus.request<string[]>('GET', '/1.0/projects', 'read projects');
    expect(api.metadata).toEqual(['/1.0/projects/default']);
    expect(api.etag).toBeUndefined(); // the exec path has no ETags
    // …which the plan says under the host.
    expect(s.notes).toEqual([
      expect.stringMatching(
        /^the Incus socket is reached through `incus query` \(cannot open \S+ on the host: .*\): an update is re-read right before it is written, but without the entry's ETag/,
      ),
    ]);
    const e = await failure(s.incus.request('GET', '/1.0/nope', 'read nothing'));
    expect(e.message).toBe('noforward: read nothing: Incus refused (404): not found');
  });

  it('down host: unreachable, connection refused', async () => {
    const e = await failure(connect('down'));
    expect(e).toMatchObject({ step: 'connect', unreachable: true });
    expect(e.message).toBe(`down: connect: connection refused by ${lab.host('down').address}:22`);
  });

  it('a host that accepts TCP but never speaks SSH fails after the connect timeout', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const e = await failure(connect('web1', { ansible_host: '127.0.0.1', ansible_port: port }, { connectTimeoutMs: 500 }));
      expect(e.message).toBe(`web1: connect: no SSH handshake with 127.0.0.1:${port} within 500 ms`);
    } finally {
      silent.close();
    }
  });

  it('ansible_connection: local reaches the Incus socket directly and runs argv without a shell', async () => {
    const s = await connect('web1', { ansible_connection: 'local' });
    const r = await s.exec(['printf', '%s', '$(id)'], 'echo');
    expect(r.stdout.toString()).toBe('$(id)');
    const api = await s.incus.request<string[]>('GET', '/1.0/projects', 'read projects');
    expect(api.metadata).toEqual(['/1.0/projects/default']);
  });
});

describe('ProxyCommand in ~/.ssh/config, through a whole run', () => {
  it('a host reached only through its ProxyCommand converges; a failing one fails that host alone with what it printed; -vvv names the route and its file', async () => {
    const home = path.join(lab.dir, 'proxy-home');
    await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
    for (const f of ['id_ed25519', 'known_hosts'])
      await writeFile(path.join(home, '.ssh', f), await readFile(path.join(lab.env.HOME!, '.ssh', f)), { mode: 0o600 });
    const key = path.join(home, '.ssh', 'id_ed25519');
    const known = path.join(home, '.ssh', 'known_hosts');
    await writeFile(
      path.join(home, '.ssh', 'config'),
      [
        'Host inner',
        `  HostName ${lab.host('inner').address}`,
        '  User root',
        `  ProxyCommand ssh -F /dev/null -o BatchMode=yes -i ${key} -o UserKnownHostsFile=${known} -o StrictHostKeyChecking=yes -W %h:%p root@${lab.host('bastion').address}`,
        'Host tunnel-down',
        '  HostName 127.0.0.1',
        '  User root',
        `  ProxyCommand sh -c 'echo "cloudflared: tunnel to %h is closed" >&2; exit 1'`,
        'Host *',
        `  UserKnownHostsFile ${known}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const pair = await (
      await import('../../src/pki/generate.js')
    ).generateSelfSigned({ commonName: 'alice', validityDays: 30, now: new Date(), type: 'client' });
    await writeFile(path.join(home, 'alice.crt'), pair.certificatePem);
    const { incus_socket: innerSocket } = lab.host('inner').inventoryVars();
    const inv = path.join(home, 'hosts.yaml');
    await writeFile(
      inv,
      [
        'all:',
        '  vars:',
        '    incus_trusted_clients: [{name: alice, certificate_file: alice.crt}]',
        '  hosts:',
        `    inner: {incus_socket: "${String(innerSocket)}"}`,
        `    web1: {ansible_host: "${lab.host('web1').address}", ansible_user: root, incus_socket: "${String(lab.host('web1').inventoryVars().incus_socket)}"}`,
        '    tunnel-down: {}',
        '',
      ].join('\n'),
    );
    const exec = promisify(execFile);
    const cli = (...args: string[]) =>
      exec(process.execPath, [path.join(import.meta.dirname, '../../bin/reconcile.js'), '-i', inv, '--lock-timeout', '0', ...args], {
        env: { ...process.env, HOME: home, SSH_AUTH_SOCK: '' },
      }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const applied = await cli('-vvv');
    expect(applied.code).toBe(1);
    expect(applied.stdout).toMatch(/^  inner +changed +1 applied$/m);
    expect(applied.stdout).toMatch(/^  web1 +changed +1 applied$/m);
    expect(applied.stdout).toMatch(/^tunnel-down: unreachable: connect: .*; ProxyCommand said: cloudflared: tunnel to 127\.0\.0\.1 is closed$/m);
    expect(applied.stderr).toMatch(
      / inner: ssh root@[0-9.]+:22 via ProxyCommand ssh -F \/dev\/null .* — address: ~\/\.ssh\/config HostName; user: ~\/\.ssh\/config User; .*route: ProxyCommand \(~\/\.ssh\/config\)/,
    );
    expect((await lab.host('inner').incus(['config', 'trust', 'list', '--format', 'csv'])).split(',')[0]).toBe('alice');
    expect((await cli('--check', '--limit', 'inner:web1')).code).toBe(0);
  });
});
