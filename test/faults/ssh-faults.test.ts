/**
 * Faults of the SSH side and hostile values, over real SSH to lab hosts (real sshd + incusd):
 * the connection dropped mid-apply (the host's sshd session processes killed), an sshd that
 * accepts and never speaks (connect timeout), an Incus call that never answers (command
 * timeout, on the socket path and on the sudo `incus query` path), a changed host key (fails
 * even with --accept-new-host-keys), and names/descriptions/projects full of shell
 * metacharacters, newlines and unicode that must reach Incus unchanged and never run.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { descendantsOf, startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import {
  clearTrustStore,
  describeHost,
  note,
  makeCert,
  reportOf,
  runCli,
  STACK_LINE,
  startCli,
  startSocketServer,
  tempDir,
  trustStore,
  until,
  writeInventory,
  type SocketServer,
} from './support.js';

let lab: Lab;
let root1: LabHost;
let sudo1: LabHost;
let dir: string;
let env: NodeJS.ProcessEnv;
let hang: SocketServer;

beforeAll(async () => {
  lab = await startLab({
    name: 'faults-ssh',
    hosts: [{ name: 'root1' }, { name: 'sudo1', user: 'sudoer' }, { name: 'wrongkey', incus: false, wrongHostKey: true }],
  });
  root1 = lab.host('root1');
  sudo1 = lab.host('sudo1');
  dir = await tempDir('ssh');
  env = { ...lab.env, RECONCILE_LOCK_DIR: join(dir, 'locks') };
  // An "Incus" that accepts every request and never answers.
  hang = await startSocketServer(join(dir, 'hang.sock'), () => 'handled');
});

afterAll(async () => {
  await hang?.close();
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await root1.startSshd();
  await clearTrustStore(root1);
  await clearTrustStore(sudo1);
});

/** PIDs of processes descending from `pid` (children, grandchildren …). */

/** The lab sshd listening for HOST: its PidFile, or the process whose title names the host's sshd_config. */
function sshdListener(host: LabHost): number {
  const hostDir = join(lab.dir, 'hosts', host.name);
  const pidFile = join(hostDir, 'sshd.pid');
  if (existsSync(pidFile)) return Number(readFileSync(pidFile, 'utf8').trim());
  const config = join(hostDir, 'sshd_config');
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // sshd rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] …").
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes(config) && cmd.includes('listener')) return Number(e);
    } catch {
      /* gone */
    }
  }
  throw new Error(`no sshd listener for ${host.name}`);
}

describe('SSH faults', () => {
  it('the SSH connection dropped mid-apply: that host fails with what was applied, a rerun converges', async () => {
    const list = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => ({ name: `drop-${String(i).padStart(2, '0')}`, cert: await makeCert(dir, `drop-${i}`) })),
    );
    const inv = await writeInventory(
      dir,
      [{ name: 'root1', vars: root1.inventoryVars() }],
      {
        incus_trusted_clients: list.map((c) => ({ name: c.name, certificate_file: c.cert.file })),
      },
      'drop.yaml',
    );
    const cli = startCli(['-i', inv, '--json'], env);
    await until('the first add on root1', async () => ((await trustStore(root1)).length > 0 ? true : undefined), 30_000, 10);
    const sessions = descendantsOf(sshdListener(root1));
    expect(sessions.length).toBeGreaterThan(0);
    for (const pid of sessions) process.kill(pid, 'SIGKILL');
    const result = await cli.done;

    expect(result.exitCode).toBe(1);
    expect(result.stderr).not.toMatch(STACK_LINE);
    const h = reportOf(result).hosts[0]!;
    note('SSH session processes of the host killed once the first of 60 adds is visible', describeHost(reportOf(result), 'root1'));
    expect(h.status).toMatch(/^(failed|unreachable)$/);
    expect(h.error!.step).toMatch(/^add certificate drop-\d\d$/);
    const stored = (await trustStore(root1)).map((c) => c.name);
    const applied = h.actions.filter((x) => x.applied).map((x) => x.name);
    expect(stored).toEqual(expect.arrayContaining(applied));
    expect(stored.length - applied.length).toBeLessThanOrEqual(1);
    expect(stored.length).toBeLessThan(60);

    const rerun = await runCli(['-i', inv, '--json'], env);
    expect(rerun.exitCode).toBe(0);
    expect((await trustStore(root1)).map((c) => c.name)).toEqual(list.map((c) => c.name));
  });

  it('an sshd that accepts and never speaks: unreachable after the connect timeout, the others go on', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const cert = await makeCert(dir, 'silent');
      const inv = await writeInventory(
        dir,
        [
          { name: 'root1', vars: root1.inventoryVars() },
          { name: 'silent', vars: { ansible_host: '127.0.0.1', ansible_port: port, ansible_user: 'root', incus_socket: '/nonexistent' } },
        ],
        { incus_trusted_clients: [{ name: 'silent', certificate_file: cert.file }] },
        'silent.yaml',
      );
      const started = Date.now();
      const result = await runCli(['-i', inv, '--json'], { ...env, RECONCILE_CONNECT_TIMEOUT_MS: '1500' });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(result.exitCode).toBe(1);
      const byHost = Object.fromEntries(reportOf(result).hosts.map((x) => [x.host, x]));
      note(
        'sshd accepts TCP and never speaks (RECONCILE_CONNECT_TIMEOUT_MS=1500)',
        `${describeHost(reportOf(result), 'silent')} | took ${Date.now() - started} ms`,
      );
      expect(byHost.root1!.status).toBe('changed');
      expect(byHost.silent!.status).toBe('unreachable');
      expect(byHost.silent!.error!.step).toBe('connect');
      expect(byHost.silent!.error!.message).toMatch(/1500 ms|1\.5 s|timed? ?out/i);
    } finally {
      silent.close();
    }
  });

  for (const which of ['socket', 'sudo'] as const) {
    it(`an Incus call that never answers (${which === 'socket' ? 'forwarded socket' : 'socket relayed under sudo'}): failed after the command timeout`, async () => {
      const host = which === 'socket' ? root1 : sudo1;
      const cert = await makeCert(dir, `hang-${which}`);
      const inv = await writeInventory(
        dir,
        [{ name: host.name, vars: { ...host.inventoryVars(), incus_socket: hang.socket } }],
        {
          incus_trusted_clients: [{ name: 'hang', certificate_file: cert.file }],
        },
        `hang-${which}.yaml`,
      );
      const started = Date.now();
      const result = await runCli(['-i', inv, '--json'], { ...env, RECONCILE_COMMAND_TIMEOUT_MS: '2000' });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).not.toMatch(STACK_LINE);
      const h = reportOf(result).hosts[0]!;
      note(
        `Incus never answers, ${which === 'socket' ? 'forwarded socket' : 'socket relayed under sudo'} path (RECONCILE_COMMAND_TIMEOUT_MS=2000)`,
        `${describeHost(reportOf(result), host.name)} | took ${Date.now() - started} ms`,
      );
      expect(h.status).toMatch(/^(failed|unreachable)$/);
      expect(h.error!.step).toMatch(/^read /);
      // The reads go out together: whichever times out first is named.
      expect(h.error!.message).toMatch(/^Incus API \(GET \/1\.0[^)]*\): no answer within 2000 ms$/);
    });
  }

  it('a changed host key fails that host even with --accept-new-host-keys, naming the key fingerprint', async () => {
    const known = readFileSync(join(lab.env.HOME!, '.ssh', 'known_hosts'), 'utf8');
    const inv = await writeInventory(
      dir,
      [{ name: 'wrongkey', vars: { ...lab.host('wrongkey').inventoryVars(), incus_trust_prune: false } }],
      {},
      'hostkey.yaml',
    );
    for (const flags of [[], ['--accept-new-host-keys']]) {
      const result = await runCli(['-i', inv, '--json', ...flags], env);
      expect(result.exitCode).toBe(1);
      const h = reportOf(result).hosts[0]!;
      note(`changed host key${flags.length ? ' with --accept-new-host-keys' : ''}`, describeHost(reportOf(result), 'wrongkey'));
      expect(h.status).toBe('unreachable');
      expect(h.error!.message).toContain(lab.host('wrongkey').hostKeyFingerprint);
      expect(h.error!.message).toMatch(/changed|does not match|mismatch/i);
    }
    // known_hosts was not rewritten to the new key.
    expect(readFileSync(join(lab.env.HOME!, '.ssh', 'known_hosts'), 'utf8')).toBe(known);
  });

  it('an unknown host key fails without --accept-new-host-keys (no StrictHostKeyChecking=no by default)', async () => {
    const cleanHome = join(dir, 'fresh-home');
    const { mkdir, copyFile, writeFile } = await import('node:fs/promises');
    await mkdir(join(cleanHome, '.ssh'), { recursive: true, mode: 0o700 });
    await copyFile(join(lab.env.HOME!, '.ssh', 'id_ed25519'), join(cleanHome, '.ssh', 'id_ed25519'));
    await writeFile(join(cleanHome, '.ssh', 'known_hosts'), '');
    const inv = await writeInventory(
      dir,
      [{ name: 'root1', vars: { ...root1.inventoryVars(), ansible_ssh_private_key_file: join(cleanHome, '.ssh', 'id_ed25519'), incus_trust_prune: false } }],
      {},
      'unknown.yaml',
    );
    const freshEnv = { ...env, HOME: cleanHome };
    const refused = await runCli(['-i', inv, '--json'], freshEnv);
    expect(refused.exitCode).toBe(1);
    const h = reportOf(refused).hosts[0]!;
    note('unknown host key, no --accept-new-host-keys', describeHost(reportOf(refused), 'root1'));
    expect(h.status).toBe('unreachable');
    expect(h.error!.message).toContain(root1.hostKeyFingerprint);
    expect(readFileSync(join(cleanHome, '.ssh', 'known_hosts'), 'utf8')).toBe('');

    const accepted = await runCli(['-i', inv, '--json', '--accept-new-host-keys'], freshEnv);
    expect(accepted.exitCode, accepted.stderr).toBe(0);
    expect(readFileSync(join(cleanHome, '.ssh', 'known_hosts'), 'utf8')).not.toBe('');
    expect((await runCli(['-i', inv, '--json'], freshEnv)).exitCode).toBe(0);
  });
});

describe('concurrent change on the sudo incus query path (no ETags there)', () => {
  it('an entry changed by someone else between plan and apply is not overwritten', async () => {
    const cert = await makeCert(dir, 'etag-sudo');
    await sudo1.incus(['config', 'trust', 'add-certificate', join(dir, cert.file), '--name', 'etag-sudo', '--description', 'before']);
    const inv = await writeInventory(
      dir,
      [{ name: 'sudo1', vars: sudo1.inventoryVars() }],
      {
        incus_trusted_clients: [{ name: 'etag-sudo', certificate_file: cert.file, description: 'wanted' }],
      },
      'etag-sudo.yaml',
    );
    const cli = startCli(['-i', inv, '--json'], { ...env, RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS: '3000' });
    await cli.waitForStderr(/pausing \d+ ms before apply/);
    await sudo1.incus(['query', '-X', 'PATCH', `/1.0/certificates/${cert.fingerprint}`, '--data', JSON.stringify({ description: 'someone else' })]);
    const result = await cli.done;
    const h = reportOf(result).hosts[0]!;
    note('description edited by someone else between plan and apply (sudo incus query path)', describeHost(reportOf(result), 'sudo1'));
    expect(result.exitCode).toBe(1);
    expect(h.status).toBe('failed');
    expect(h.error!.step).toBe('update certificate etag-sudo');
    expect((await trustStore(sudo1)).find((c) => c.name === 'etag-sudo')!.description).toBe('someone else');

    const rerun = await runCli(['-i', inv], env);
    expect(rerun.exitCode, rerun.stdout + rerun.stderr).toBe(0);
    expect((await trustStore(sudo1)).find((c) => c.name === 'etag-sudo')!.description).toBe('wanted');
  });
});

describe('hostile connection variables never run as shell code', () => {
  it('incus_socket, ansible_user and ansible_ssh_common_args with shell in them', async () => {
    const marker = (n: number) => `/tmp/pwned-reconcile-conn-${process.pid}-${n}`;
    for (let i = 1; i <= 4; i += 1) await rm(marker(i), { force: true });
    const cert = await makeCert(dir, 'conn');
    const inv = await writeInventory(
      dir,
      [
        { name: 'sock', vars: { ...root1.inventoryVars(), incus_socket: `/run/x$(touch ${marker(1)})y.sock` } },
        { name: 'sudosock', vars: { ...sudo1.inventoryVars(), incus_socket: `/run/x;touch ${marker(2)};.sock` } },
        { name: 'user', vars: { ...root1.inventoryVars(), ansible_user: `root$(touch ${marker(3)})` } },
        // A ProxyCommand is a command by definition (OpenSSH and Ansible run it): the jump host's name is not.
        { name: 'proxy', vars: { ...root1.inventoryVars(), ansible_ssh_common_args: `-o ProxyJump="root@x$(touch ${marker(4)})y"` } },
      ],
      { incus_trusted_clients: [{ name: 'conn', certificate_file: cert.file }] },
      'conn.yaml',
    );
    const result = await runCli(['-i', inv, '--json'], env);
    expect(result.stderr).not.toMatch(STACK_LINE);
    let report;
    try {
      report = reportOf(result);
    } catch {
      report = undefined;
    }
    for (const h of ['sock', 'sudosock', 'user', 'proxy']) {
      note(
        `hostile connection variable: ${h}`,
        report ? describeHost(report, h) : `exit ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-2).join(' / ')}`,
      );
    }
    for (let i = 1; i <= 4; i += 1) expect(existsSync(marker(i)), marker(i)).toBe(false);
    expect(result.exitCode).toBe(1);
    if (report) {
      const byHost = Object.fromEntries(report.hosts.map((h) => [h.host, h]));
      for (const h of ['sock', 'sudosock', 'user', 'proxy']) expect(byHost[h]!.status, h).toMatch(/^(failed|unreachable)$/);
    }
  });
});

describe('hostile values reach Incus unchanged and never as shell code', () => {
  const marker = `/tmp/pwned-reconcile-${process.pid}`;
  const project = 'p$x;`id`';
  const values = [
    { name: '$(id) `id` ;reboot', description: `$(touch ${marker}) \`touch ${marker}\` ; touch ${marker} | tee ${marker}` },
    { name: 'it\'s "quoted" & <angled>', description: 'line one\nline two\r\n\ttab \'single\' "double" \\backslash' },
    { name: 'ünïcødé 🔑 名前', description: '\u202eright-to-left override, zero\u200bwidth, emoji 🔐' },
    { name: '-rf --help', description: '--description=evil -X DELETE' },
  ];

  for (const which of ['socket', 'sudo'] as const) {
    it(`over the ${which === 'socket' ? 'forwarded Incus socket' : 'sudo incus query'} path`, async () => {
      const host = which === 'socket' ? root1 : sudo1;
      await rm(marker, { force: true });
      const projects = await host.incus(['query', '/1.0/projects']);
      if (!projects.includes(encodeURIComponent(project)) && !projects.includes(project)) {
        await host.incus(['query', '-X', 'POST', '/1.0/projects', '--data', JSON.stringify({ name: project, config: {} })]);
      }
      const certs = await Promise.all(values.map((_, i) => makeCert(dir, `hostile-${which}-${i}`)));
      const clients = values.map((v, i) => ({
        name: v.name,
        description: v.description,
        certificate_file: certs[i]!.file,
        restricted: true,
        projects: [project, 'default'],
      }));
      const inv = await writeInventory(dir, [{ name: host.name, vars: host.inventoryVars() }], { incus_trusted_clients: clients }, `hostile-${which}.yaml`);

      const result = await runCli(['-i', inv, '--json'], env);
      expect(result.exitCode, result.stderr).toBe(0);
      const stored = await trustStore(host);
      expect(
        stored
          .map((c) => ({ name: c.name, description: c.description, projects: c.projects, fingerprint: c.fingerprint }))
          .sort((x, y) => x.fingerprint.localeCompare(y.fingerprint)),
      ).toEqual(
        values
          .map((v, i) => ({ name: v.name, description: v.description, projects: [project, 'default'].sort(), fingerprint: certs[i]!.fingerprint }))
          .sort((x, y) => x.fingerprint.localeCompare(y.fingerprint)),
      );
      expect(existsSync(marker)).toBe(false);
      note(
        `hostile names/descriptions/projects, ${which === 'socket' ? 'socket' : 'sudo incus query'} path`,
        `exit ${result.exitCode}; read back equal; ${marker} not created; --check afterwards exit 0`,
      );
      // Read back as equal: the next run plans nothing.
      expect((await runCli(['-i', inv, '--check'], env)).exitCode).toBe(0);
    });
  }
});
