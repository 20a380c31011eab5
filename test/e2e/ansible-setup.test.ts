/**
 * A folder that already works with ansible-playbook: ansible.cfg names the inventory, the remote
 * user, the key, forks and become; reconcile runs there with no flag, against real lab hosts
 * (sshd + incusd, one of them reached as a sudoer), and reads the same inventory and users as
 * Debian's ansible-core does in the same folder. ANSIBLE_* win over the file, -i over both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { REPO } from './trust-support.js';

const exec = promisify(execFile);
let lab: Lab;
let project: string;

/** The CLI run from the project folder, as a user types it there. */
function reconcileIn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const base = { ...lab.env };
    delete base.SSH_AUTH_SOCK; // only the key ansible.cfg names
    for (const k of Object.keys(base)) if (k.startsWith('ANSIBLE_')) delete base[k];
    const p = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), ...args], { cwd: project, env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ exitCode: code ?? -1, stdout, stderr }));
  });
}

beforeAll(async () => {
  lab = await startLab({ name: 'ansible-setup', hosts: [{ name: 'web1' }, { name: 'sudo1', user: 'sudoer' }] });
  project = join(lab.dir, 'infra');
  await mkdir(join(project, 'inventory', 'certs'), { recursive: true });
  await mkdir(join(project, 'keys'), { recursive: true });
  await chmod(project, 0o755);
  await copyFile(join(lab.env.HOME!, '.ssh', 'id_ed25519'), join(project, 'keys', 'deploy_key'));
  await chmod(join(project, 'keys', 'deploy_key'), 0o600);
  const alice = await generateSelfSigned({ commonName: 'alice', validityDays: 365, now: new Date(), type: 'client' });
  await writeFile(join(project, 'inventory', 'certs', 'alice.crt'), alice.certificatePem);
  // Connection variables as a real inventory has them: no ansible_user for the sudoer host.
  const vars = (name: string, keepUser: boolean) => {
    const { ansible_user: user, ansible_become: _become, ...rest } = lab.host(name).inventoryVars();
    return keepUser ? { ...rest, ansible_user: user } : rest;
  };
  await writeFile(
    join(project, 'inventory', 'hosts.yaml'),
    stringify({
      all: {
        vars: { incus_trusted_clients: [{ name: 'alice', certificate_file: 'certs/alice.crt' }] },
        children: { incus: { hosts: { web1: vars('web1', true), sudo1: vars('sudo1', false) } } },
      },
    }),
  );
  await writeFile(
    join(project, 'inventory', 'web-only.yaml'),
    stringify({ all: { vars: { incus_trusted_clients: [{ name: 'alice', certificate_file: 'certs/alice.crt' }] }, hosts: { web1: vars('web1', true) } } }),
  );
  await writeFile(
    join(project, 'ansible.cfg'),
    [
      '[defaults]',
      'inventory = inventory/hosts.yaml ; every host',
      'remote_user = reconcile-sudo',
      'private_key_file = keys/deploy_key',
      'forks = 3',
      '',
      '[privilege_escalation]',
      'become = True',
      '',
    ].join('\n'),
  );
}, 120_000);

afterAll(async () => {
  await lab?.stop();
});

describe('a folder with only ansible.cfg and the inventory', () => {
  it('reconcile --check needs no flag, and reads the same inventory and remote users as ansible-inventory and ansible do', async () => {
    const planFile = join(project, 'plan.json');
    const check = await reconcileIn(['--check', '--out', planFile]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stderr).toContain('checking 2 host(s): web1, sudo1');
    const plan = JSON.parse(await readFile(planFile, 'utf8')) as {
      inventory: { path: string };
      hosts: { host: string; connection: { user: string; become: boolean; privateKeyFile?: string } }[];
    };
    expect(plan.inventory.path).toBe(join(project, 'inventory', 'hosts.yaml'));
    const users = Object.fromEntries(plan.hosts.map((h) => [h.host, h.connection.user]));
    expect(users).toEqual({ web1: 'root', sudo1: 'reconcile-sudo' });
    for (const h of plan.hosts) expect([h.connection.become, h.connection.privateKeyFile]).toEqual([true, join(project, 'keys', 'deploy_key')]);

    // Debian's ansible-core in the same folder: the same hosts, the same users.
    const ansibleEnv = { ...process.env, HOME: lab.env.HOME, ANSIBLE_NOCOLOR: '1' };
    const listed = JSON.parse((await exec('ansible-inventory', ['--list'], { cwd: project, env: ansibleEnv })).stdout) as { _meta: { hostvars: object } };
    expect(Object.keys(listed._meta.hostvars).sort()).toEqual(Object.keys(users).sort());
    const debug = (await exec('ansible', ['-m', 'debug', '-a', 'var=ansible_user', 'all'], { cwd: project, env: ansibleEnv })).stdout;
    const ansibleUsers = Object.fromEntries([...debug.matchAll(/^(\S+) \| SUCCESS => \{\s*"ansible_user": "([^"]+)"/gm)].map((m) => [m[1]!, m[2]!]));
    expect(ansibleUsers).toEqual(users);

    const apply = await reconcileIn([]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect((await reconcileIn(['--check'])).exitCode).toBe(0);
    for (const name of ['web1', 'sudo1'])
      expect(JSON.parse(await lab.host(name).incus(['config', 'trust', 'list', '--format', 'json'])).map((r: { name: string }) => r.name)).toEqual(['alice']);
  });

  it('-vvv names, for each host, its user, key and route and where each came from; -vvvv adds the SSH negotiation, nothing secret in it', async () => {
    const cfg = join(project, 'ansible.cfg');
    const r = await reconcileIn(['--check', '-vvvv', '--limit', 'sudo1']);
    expect(r.exitCode, r.stderr).toBe(0);
    const line = r.stderr.split('\n').find((l) => / sudo1: ssh /.test(l))!;
    expect(line).toContain(`sudo1: ssh reconcile-sudo@${lab.host('sudo1').address}:22, key ${join(project, 'keys', 'deploy_key')}, become yes — `);
    expect(line).toContain(`user: ${cfg}:3; key: ${cfg}:4; become: ${cfg}:8`);
    expect(r.stderr).toMatch(/ sudo1: ssh: Handshake: /);
    const key = await readFile(join(project, 'keys', 'deploy_key'), 'utf8');
    const body = key
      .split('\n')
      .filter((l) => !l.startsWith('-----'))
      .join('');
    for (let i = 0; i + 40 <= body.length; i += 20) expect(r.stderr).not.toContain(body.slice(i, i + 40));
  });

  it('reconcile config names where each setting comes from', async () => {
    const cfg = join(project, 'ansible.cfg');
    const r = await reconcileIn(['config'], { ANSIBLE_FORKS: '2' });
    expect(r).toEqual({
      exitCode: 0,
      stderr: '',
      stdout: [
        `config_file = ${cfg}`,
        `inventory(${cfg}:2) = ${join(project, 'inventory', 'hosts.yaml')}`,
        `remote_user(${cfg}:3) = reconcile-sudo`,
        `private_key_file(${cfg}:4) = ${join(project, 'keys', 'deploy_key')}`,
        'forks(ANSIBLE_FORKS) = 2',
        `become(${cfg}:8) = true`,
        '',
      ].join('\n'),
    });
  });

  it('ANSIBLE_* win over ansible.cfg and -i, -u, --private-key over both; host_key_checking = False is accept-new, said so', async () => {
    const onlyWeb = await reconcileIn(['--check'], { ANSIBLE_INVENTORY: 'inventory/web-only.yaml' });
    expect(onlyWeb.stderr).toContain('checking 1 host(s): web1\n');
    const both = await reconcileIn(['--check', '-i', 'inventory/hosts.yaml'], { ANSIBLE_INVENTORY: 'inventory/web-only.yaml' });
    expect(both.stderr).toContain('checking 2 host(s): web1, sudo1\n');
    // -i given twice: one inventory of both, as ansible-playbook reads it.
    const twice = await reconcileIn(['--check', '-i', 'inventory/web-only.yaml', '-i', 'inventory/hosts.yaml']);
    expect(twice.exitCode, twice.stdout + twice.stderr).toBe(0);
    expect(twice.stderr).toContain('checking 2 host(s): web1, sudo1\n');

    const sudoAddress = lab.host('sudo1').address;
    const wrongUser = await reconcileIn(['--check'], { ANSIBLE_REMOTE_USER: 'nobody-here' });
    expect(wrongUser.exitCode).toBe(1);
    expect(wrongUser.stdout).toContain(`sudo1: unreachable: authenticate: nobody-here@${sudoAddress}:22 accepted none of the keys offered`);
    expect((await reconcileIn(['--check', '-u', 'reconcile-sudo'], { ANSIBLE_REMOTE_USER: 'nobody-here' })).exitCode).toBe(0);

    const noKey = await reconcileIn(['--check'], { ANSIBLE_PRIVATE_KEY_FILE: 'keys/missing_key' });
    expect(noKey.stdout).toContain(`sudo1: unreachable: read private key: ${join(project, 'keys', 'missing_key')} does not exist`);
    expect((await reconcileIn(['--check', '--private-key', 'keys/deploy_key'], { ANSIBLE_PRIVATE_KEY_FILE: 'keys/missing_key' })).exitCode).toBe(0);

    const lenient = await reconcileIn(['--check'], { ANSIBLE_HOST_KEY_CHECKING: 'False' });
    expect(lenient.exitCode).toBe(0);
    expect(lenient.stderr).toContain(
      'reconcile: warning: host_key_checking = False (ANSIBLE_HOST_KEY_CHECKING) is honoured as accept-new: host keys never seen are recorded in known_hosts, a changed key is still refused\n',
    );
  });

  it('--list-hosts prints what each play selects, as ansible-playbook --list-hosts, and connects to nothing', async () => {
    const r = await reconcileIn(['--list-hosts', '--limit', 'sudo1']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("\n  play #1 (all): Incus trust stores\n    pattern: ['all']\n    hosts (1):\n      sudo1\n");
    expect(r.stderr).toBe('');
  });
});
