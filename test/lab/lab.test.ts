/**
 * The lab itself, checked with OpenSSH's own client (not our transport): every variant
 * behaves as types.ts promises, and stop() leaves no process behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, startLab } from './lab.js';
import type { Lab } from './types.js';

const run = promisify(execFile);

/** PIDs whose command line or environment mentions `text` (sshd: its config; incusd: INCUS_DIR). */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(text) || environ.includes(text)) found.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

function ssh(lab: Lab, args: string[]) {
  // OpenSSH finds ~ through the password database, not HOME: name the lab's files.
  const ssh = `${lab.env.HOME}/.ssh`;
  const files = ['-F', `${ssh}/config`, '-o', `UserKnownHostsFile=${ssh}/known_hosts`];
  return run('ssh', ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', ...files, ...args], { env: lab.env }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('test lab', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({
      name: 'lab-self',
      hosts: [
        { name: 'plain', https: true },
        { name: 'sudo', user: 'sudoer', incus: false },
        { name: 'jump', incus: false },
        { name: 'hidden', jumpVia: 'jump' },
        { name: 'wrongkey', incus: false, wrongHostKey: true },
        { name: 'down', down: true },
        { name: 'dom0', incus: false, dom0: true },
      ],
    });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('a plain host runs commands as root with its own INCUS_DIR and an empty HOME', async () => {
    const r = await ssh(lab, ['plain', 'id -un; echo $HOME; incus query /1.0 | head -c 200 >/dev/null && echo incus-ok']);
    const [user, home, incus] = r.stdout.trim().split('\n');
    expect(user).toBe('root');
    expect(home).toMatch(/hosts\/plain\/home$/);
    expect(incus).toBe('incus-ok');
    expect(lab.host('plain').incusSocket && existsSync(lab.host('plain').incusSocket!)).toBe(true);
  });

  it('https: true opens the HTTPS API on ADDRESS:8443', async () => {
    const plain = lab.host('plain');
    expect((await plain.incus(['config', 'get', 'core.https_address'])).trim()).toBe(`${plain.address}:8443`);
    const r = await run('curl', ['-sk', `https://${plain.address}:8443/1.0`]);
    expect(JSON.parse(r.stdout).metadata.auth).toBe('untrusted');
  });

  it('a dom0 stand-in has its qvm-* stand-ins first on PATH, recording calls', async () => {
    const r = await ssh(lab, ['dom0', 'qvm-service --enable work prometheus-qubes-proxy']);
    expect(r.code).toBe(0);
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(lab.host('dom0').qvmCallLog!, 'utf8')).toContain('qvm-service --enable work prometheus-qubes-proxy');
  });

  it('the sudoer host logs in as the sudoer, who has passwordless sudo', async () => {
    const r = await ssh(lab, ['sudo', 'id -un; sudo -n id -un']);
    expect(r.stdout.trim().split('\n')).toEqual(['reconcile-sudo', 'root']);
  });

  it('the hidden host refuses a direct connection and answers through its jump host', async () => {
    const direct = await ssh(lab, ['-o', 'ProxyJump=none', `root@${lab.host('hidden').address}`, 'true']);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/Connection refused/);
    const jumped = await ssh(lab, ['hidden', 'echo via-jump; incus query /1.0 >/dev/null && echo incus-ok']);
    expect(jumped.stdout.trim().split('\n'), jumped.stderr).toEqual(['via-jump', 'incus-ok']);
  });

  it('the wrong-key host fails host key verification', async () => {
    const r = await ssh(lab, ['wrongkey', 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED/);
  });

  it('the down host refuses connections', async () => {
    const r = await ssh(lab, ['down', 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Connection refused/);
  });

  it('known_hosts holds hashed entries for some hosts', async () => {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(`${lab.env.HOME}/.ssh/known_hosts`, 'utf8');
    expect(text).toMatch(/^\|1\|/m);
    expect(text).toMatch(/^127\.77\./m);
  });

  it('daemons stop and start again on demand (down for a while, then back)', async () => {
    const plain = lab.host('plain');
    await plain.stopSshd();
    expect((await ssh(lab, ['plain', 'true'])).stderr).toMatch(/Connection refused/);
    await plain.startSshd();
    expect((await ssh(lab, ['plain', 'echo back'])).stdout).toBe('back\n');
    await plain.stopIncus();
    expect(existsSync(plain.incusSocket!)).toBe(false);
    await plain.startIncus();
    expect(JSON.parse(await plain.incus(['query', '/1.0'])).auth).toBe('trusted');
    // The jump host too: its inetd listener closes and opens again.
    await lab.host('jump').stopSshd();
    expect((await ssh(lab, ['hidden', 'true'])).code).not.toBe(0);
    await lab.host('jump').startSshd();
    expect((await ssh(lab, ['hidden', 'echo via-jump'])).stdout).toBe('via-jump\n');
  });

  it('stop() ends every process it started and removes incusd state', async () => {
    const incusDir = lab.host('plain').incusDir!;
    expect(processesMentioning(lab.dir).length).toBeGreaterThan(2);
    await lab.stop();
    expect(processesMentioning(lab.dir)).toEqual([]);
    expect(existsSync(incusDir)).toBe(false);
  });
});

describe('starting a daemon', () => {
  it('"exited" and "timed out" are told apart, each with the log tail', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/reconcile-daemon-`);
    const crashing = new Daemon('crasher', 'sh', ['-c', 'echo "bind: address in use" >&2; exit 3'], `${dir}/crasher.log`);
    await crashing.start();
    await expect(crashing.waitReady('ready', async () => false, 5000)).rejects.toThrow(
      /^crasher exited before ready \(code 3, signal null\); \S+crasher\.log:\nbind: address in use/,
    );
    const silent = new Daemon('sleeper', 'sh', ['-c', 'echo starting; exec sleep 30'], `${dir}/sleeper.log`);
    await silent.start();
    try {
      await expect(silent.waitReady('ready', async () => false, 300)).rejects.toThrow(/^sleeper still not ready after 300 ms; \S+sleeper\.log:\nstarting/);
    } finally {
      await silent.stop();
    }
    expect(silent.running).toBe(false);
    const { rm } = await import('node:fs/promises');
    await rm(dir, { recursive: true, force: true });
  });
});
