/** The default command's own interface: help, usage errors and an unusable inventory, as a user sees them. */
import { describe, expect, it } from 'vitest';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import { join } from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { client, makeCert, makeTempDir, reconcile, REPO, startHosts, stopHosts, writeInventory } from './trust-support.js';

describe('reconcile [PLAYBOOK] -i INVENTORY', () => {
  it('--help lists the options and the exit codes', async () => {
    const r = await reconcile(['-i', 'x', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Usage: reconcile [PLAYBOOK] -i INVENTORY [options]');
    for (const flag of [
      '--check',
      '--diff',
      '--limit PATTERN',
      '--forks N',
      '--prune',
      '--json',
      '--metrics-file FILE',
      '--accept-new-host-keys',
      '-v, --verbose',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('2  --check found something an apply would change, and nothing failed');
  });

  it('out-of-range numbers are one-line usage errors, never an internal error', async () => {
    expect(await reconcile(['cert', 'generate', 'x', '--days', '99999999'])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: "reconcile: cert generate: --days takes at most 36500 (100 years), not '99999999'\n",
    });
    expect(await reconcile(['-i', 'x', '--check'], { env: { ...process.env, RECONCILE_CONNECT_TIMEOUT_MS: '2147483648' } })).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: "reconcile: RECONCILE_CONNECT_TIMEOUT_MS takes a whole number of milliseconds from 1 to 2147483647, not '2147483648'\n",
    });
  });

  it('usage errors are one line, exit 1', async () => {
    expect(await reconcile([])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: "reconcile: -i INVENTORY is required, or an inventory in ansible.cfg ([defaults] inventory) or ANSIBLE_INVENTORY (see 'reconcile --help')\n",
    });
    expect(await reconcile(['-i', 'x', '--forks', '0'])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: "reconcile: --forks takes a whole number of at least 1, not '0'\n",
    });
    expect(await reconcile(['a.yaml', 'b.yaml', '-i', 'x'])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: "reconcile: one playbook at most, got 2: a.yaml b.yaml (see 'reconcile --help')\n",
    });
  });

  it('--warn-days sets the window in which trusted certificates are reported as expiring', async () => {
    const dir = await makeTempDir('trust-warn');
    const hosts = await startHosts(dir, ['w1']);
    try {
      const cert = await makeCert(dir, 'soon', 45);
      const inv = await writeInventory(dir, hosts, { incus_trusted_clients: [client('soon', cert)] });
      expect((await reconcile(['-i', inv, '--lock-timeout', '0'])).exitCode).toBe(0);
      const expiring = async (...flags: string[]) => {
        const r = await reconcile(['-i', inv, '--check', '--json', '--lock-timeout', '0', ...flags]);
        expect(r.exitCode, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { hosts: { expiring: { name: string }[] }[] }).hosts[0]!.expiring.map((c) => c.name);
      };
      expect(await expiring()).toEqual([]);
      expect(await expiring('--warn-days', '60')).toEqual(['soon']);
      expect(await reconcile(['-i', inv, '--warn-days', 'soon'])).toEqual({
        exitCode: 1,
        stdout: '',
        stderr: "reconcile: --warn-days takes a whole number of at least 1, not 'soon'\n",
      });
    } finally {
      await stopHosts(hosts, dir);
    }
  });

  it('an invalid inventory stops the run before any connection, naming file:line:column', async () => {
    const dir = await makeTempDir('trust-cli');
    try {
      const inv = join(dir, 'hosts.yaml');
      await writeFile(inv, 'all:\n  hosts:\n    web1:\n      incus_trusted_clients:\n        - name: a\n          certificate_file: certs/missing.crt\n');
      const r = await reconcile(['-i', inv, '--check', '--lock-timeout', '0']);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^${inv.replace(/[.]/g, '\\.')}:6:\\d+: error: .*certificate_file.*missing\\.crt`, 'm'));
      expect(r.stderr).toContain('nothing was changed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("on a terminal, listr2 draws each host's progress; the plan and recap are printed between and after", async () => {
    const dir = await makeTempDir('trust-tty');
    const hosts = await startHosts(dir, ['t1', 't2']);
    try {
      const cert = await makeCert(dir, 'alice');
      const inv = await writeInventory(dir, hosts, { incus_trusted_clients: [client('alice', cert)] });
      // `script` gives the CLI a real pseudo-terminal (stdout.isTTY), as an operator's shell would.
      const cmd = `stty cols 120 rows 40; ${process.execPath} ${join(REPO, 'bin/reconcile.js')} -i ${inv} --lock-timeout 0 --yes`;
      const { stdout } = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, NO_COLOR: '1' } });
      const text = stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
      expect(text).toMatch(/✔ t1: read live state/);
      expect(text).toMatch(/✔ t2: apply/);
      expect(text).toContain('Plan: 2 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged');
      expect(text).toContain('Recap:\n  t1    changed      1 applied\n  t2    changed      1 applied\n');
      for (const h of hosts) expect((await h.trust()).map((r) => r.name)).toEqual(['alice']);
    } finally {
      await stopHosts(hosts, dir);
    }
  });

  it('on a terminal, apply asks first as terraform apply does: anything but "yes" changes nothing; "yes" applies; cron and pipes are never asked', async () => {
    const dir = await makeTempDir('trust-ask');
    const hosts = await startHosts(dir, ['q1']);
    try {
      const cert = await makeCert(dir, 'alice');
      const inv = await writeInventory(dir, hosts, { incus_trusted_clients: [client('alice', cert)] });
      // `script` gives the CLI a pseudo-terminal for stdin and stdout; what we write is typed at it.
      const onTerminal = (answer: string) =>
        new Promise<{ code: number; text: string }>((resolve) => {
          const cmd = `stty cols 120 rows 40; ${process.execPath} ${join(REPO, 'bin/reconcile.js')} -i ${inv} --lock-timeout 0`;
          const p = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, NO_COLOR: '1' } });
          let text = '';
          let answered = false;
          const seen = (d: Buffer) => {
            text += d.toString();
            if (!answered && text.includes("Only 'yes' will be accepted: ")) {
              answered = true;
              p.stdin.write(`${answer}\n`);
            }
          };
          p.stdout.on('data', seen);
          p.stderr.on('data', seen);
          p.on('close', (code) => resolve({ code: code ?? -1, text: text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '') }));
        });

      const no = await onTerminal('no');
      expect(no.code, no.text).toBe(1);
      expect(no.text).toContain('Plan: 1 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged\nDo you want to apply these changes on 1 host(s)?');
      expect(no.text).toContain('reconcile: apply cancelled; nothing was changed');
      expect(await hosts[0]!.trust()).toEqual([]);

      const yes = await onTerminal('yes');
      expect(yes.code, yes.text).toBe(0);
      expect(yes.text).toContain('Recap:\n  q1    changed      1 applied');
      expect((await hosts[0]!.trust()).map((r) => r.name)).toEqual(['alice']);

      // Without a terminal nothing is asked (the other tests apply this way every time).
      expect((await reconcile(['-i', inv, '--lock-timeout', '0'])).exitCode).toBe(0);
    } finally {
      await stopHosts(hosts, dir);
    }
  });

  it("the seed's layout plus a NAS outside the incus group: incus_trust never connects to the NAS, and the run converges", async () => {
    const lab = await startLab({ name: 'trust-group', hosts: [{ name: 'incus1' }, { name: 'nas', incus: false }] });
    try {
      const cert = await makeCert(lab.dir, 'admin');
      const inv = join(lab.dir, 'hosts.yaml');
      const write = (vars: Record<string, unknown> = {}, groups: Record<string, unknown> = {}) =>
        writeFile(
          inv,
          stringify({
            all: {
              vars: { incus_trusted_clients: [{ name: 'admin', certificate_file: cert.file }], ...vars },
              children: {
                incus: { hosts: { incus1: lab.host('incus1').inventoryVars() } },
                storage: { hosts: { nas: lab.host('nas').inventoryVars() } },
                ...groups,
              },
            },
          }),
        );
      await write();
      const env = lab.env;
      const check = await reconcile(['-i', inv, '--check', '--lock-timeout', '0'], { env });
      expect(check.exitCode, check.stdout + check.stderr).toBe(2);
      expect(check.stderr).toContain('checking 1 host(s): incus1\n');
      expect((await reconcile(['-i', inv, '--lock-timeout', '0'], { env })).exitCode).toBe(0);
      expect((await reconcile(['-i', inv, '--check', '--lock-timeout', '0'], { env })).exitCode).toBe(0);
      // sshd logs every TCP connection (LogLevel VERBOSE): the NAS saw none.
      const nasLog = await readFile(join(lab.dir, 'logs', 'nas.sshd.log'), 'utf8');
      expect(nasLog).not.toMatch(/Connection from/);
      // Another name for the group: a group without the NAS still leaves it alone; naming its group takes it in.
      await write({ incus_trust_group: 'servers' }, { servers: { children: { incus: {} } } });
      expect((await reconcile(['-i', inv, '--check', '--lock-timeout', '0'], { env })).exitCode).toBe(0);
      await write({ incus_trust_group: 'storage' });
      const nas = await reconcile(['-i', inv, '--check', '--lock-timeout', '0'], { env });
      expect(nas.stderr).toContain('checking 1 host(s): nas\n');
      expect(nas.exitCode).toBe(1); // the NAS runs no Incus: it fails, as it would for any Incus host without one
    } finally {
      await lab.stop();
    }
  });
});
