/**
 * The test lab (see types.ts): real hosts on this machine. Each host is a real sshd on its
 * own loopback address 127.77.y.z:22 with its own host key, and (unless disabled) a real
 * incusd with its own INCUS_DIR. Everything the lab starts is a process group it owns and
 * stops by PID; a crashed test leaves no daemons behind (exit handlers).
 *
 * Jump hosts: a host with `jumpVia: J` must be reachable only through J. Loopback
 * addresses are all local to one network namespace, so its sshd runs inside a private
 * network namespace that belongs to J (its lo carries 127.77.y.z there, invisible from
 * outside: a direct connection is refused). J itself is served inetd-style: the lab
 * listens on J's address in the normal namespace and hands each connection to
 * `sshd -i` started inside J's namespace, so sessions on J can reach the hidden host.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm, writeFile, appendFile, readlink, unlink } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { stringify } from 'yaml';
import type { Lab, LabHost, LabHostOptions, StartLab } from './types.js';

const run = promisify(execFile);

const SSHD = '/usr/sbin/sshd';
const INCUSD = existsSync('/usr/libexec/incus/incusd') ? '/usr/libexec/incus/incusd' : '/usr/lib/incus/incusd';
const LXD = '/usr/bin/lxd';
/** The non-root login user of `user: 'sudoer'` hosts (created once per machine). */
export const SUDO_USER = 'reconcile-sudo';
/** Address reservations shared by every lab on this machine (one file per address). */
const RESERVATIONS = path.join(os.tmpdir(), 'reconcile-lab-addresses');
const START_TIMEOUT_MS = 30_000;
const LOGS_KEPT_MS = 24 * 3600_000;
const START_CONCURRENCY = 8;

/** Every process group any lab in this process started, for the exit handler. */
const livePids = new Set<number>();
const liveReservations = new Set<string>();
const liveLabDirs = new Set<string>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  // Synchronous last resort: a crashed or interrupted test must not leak daemons.
  process.on('exit', () => {
    for (const pid of livePids) killGroup(pid, 'SIGTERM');
    // incusd unmounts its tmpfs on TERM: give it a moment (synchronously: we are exiting).
    const deadline = Date.now() + 3000;
    while ([...livePids].some(alive) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    for (const pid of livePids) killGroup(pid, 'SIGKILL');
    for (const r of liveReservations) rmSync(r, { force: true });
    for (const d of liveLabDirs) removeLabDirSync(d);
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** Mount points (deepest first) at or under `dir`. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
}

/** Removes a lab's folder except its logs, unmounting what a killed incusd left mounted. */
function removeLabDirSync(dir: string): void {
  for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m]);
  for (const entry of existsSync(dir) ? readdirSync(dir) : []) {
    if (entry !== 'logs') rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

/** Labs of processes that died without cleaning up (SIGKILL, OOM): unmount and remove them. */
function sweepAbandonedLabs(): void {
  for (const entry of readdirSync(os.tmpdir())) {
    if (!entry.startsWith('reconcile-lab-') || entry === 'reconcile-lab-addresses') continue;
    const dir = path.join(os.tmpdir(), entry);
    let owner = 0;
    try {
      owner = Number(readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
    } catch {
      // Stopped already: only its logs are left, kept a day for whoever looks into a failure.
      if (Date.now() - statSync(dir).mtimeMs > LOGS_KEPT_MS) rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (owner && !alive(owner)) removeLabDirSync(dir);
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A daemon the lab started: its own process group, stdout+stderr appended to a log file. Exported for its own tests. */
export class Daemon {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;

  constructor(
    readonly label: string,
    readonly command: string,
    readonly args: string[],
    readonly logFile: string,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitCode === null && this.exitSignal === null;
  }

  async start(): Promise<void> {
    const log = await open(this.logFile, 'a');
    try {
      const child = spawn(this.command, this.args, {
        env: this.env,
        stdio: ['ignore', log.fd, log.fd],
        detached: true, // own process group: teardown signals the whole group
      });
      this.exitCode = null;
      this.exitSignal = null;
      this.child = child;
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      livePids.add(child.pid!);
      this.exited = new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          this.exitCode = code;
          this.exitSignal = signal;
          livePids.delete(child.pid!);
          resolve();
        }),
      );
    } finally {
      await log.close();
    }
  }

  /**
   * Races `ready()` against the process exiting and a timeout; each outcome has its own
   * message with the log's last lines.
   */
  async waitReady(what: string, ready: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        throw new Error(`${this.label} exited before ${what} (code ${this.exitCode}, signal ${this.exitSignal}); ${this.logFile}:\n${await this.logTail()}`);
      }
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.label} still not ${what} after ${timeoutMs} ms; ${this.logFile}:\n${await this.logTail()}`);
      }
      await Promise.race([sleep(50), this.exited]);
    }
  }

  async logTail(lines = 15): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  }

  /** TERM the process group, wait, then KILL. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    killGroup(child.pid, 'SIGTERM');
    const done = await Promise.race([this.exited!.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!done) {
      killGroup(child.pid, 'SIGKILL');
      await this.exited;
    }
    // Children of the group (sshd sessions) may outlive the leader for a moment.
    killGroup(child.pid, 'SIGKILL');
  }
}

/** Every process below `pid` (children, grandchildren …), from /proc. */
export function descendantsOf(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parentOf.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

/** OpenSSH's SHA256 fingerprint of a public key line ("ssh-ed25519 AAAA… comment"). */
export function sshFingerprint(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1] ?? '', 'base64');
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** A hashed known_hosts host field: |1|base64(salt)|base64(HMAC-SHA1(salt, host)). */
export function hashKnownHost(hostField: string): string {
  const salt = randomBytes(20);
  const mac = createHmac('sha1', salt).update(hostField).digest();
  return `|1|${salt.toString('base64')}|${mac.toString('base64')}`;
}

async function keygen(file: string, comment: string): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return (await readFile(`${file}.pub`, 'utf8')).trim();
}

/** Can something bind address:port right now? */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Reserves a free loopback address: a random 127.77.y.z, claimed with an exclusive file so
 * concurrent labs (other test files, other people) never pick the same one, and probed so
 * that nothing else listens on :22 or :8443 there.
 */
async function reserveAddress(): Promise<{ address: string; reservation: string }> {
  await mkdir(RESERVATIONS, { recursive: true });
  for (let attempt = 0; attempt < 200; attempt++) {
    const address = `127.77.${randomInt(0, 256)}.${randomInt(2, 255)}`;
    const reservation = path.join(RESERVATIONS, address);
    try {
      await writeFile(reservation, `${process.pid}\n`, { flag: 'wx' });
    } catch {
      // Taken; reclaim it only if its owner is gone.
      const owner = Number((await readFile(reservation, 'utf8').catch(() => '')).trim());
      if (owner && alive(owner)) continue;
      await unlink(reservation).catch(() => {});
      continue;
    }
    if ((await portFree(address, 22)) && (await portFree(address, 8443))) {
      liveReservations.add(reservation);
      return { address, reservation };
    }
    await unlink(reservation).catch(() => {});
  }
  throw new Error('lab: found no free 127.77.y.z address');
}

let sudoUserReady: Promise<void> | undefined;

/** Creates the sudoer login user once per machine: NOPASSWD sudo, no password, not locked. */
function ensureSudoUser(): Promise<void> {
  sudoUserReady ??= (async () => {
    const exists = await run('id', ['-u', SUDO_USER]).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await run('useradd', ['--system', '--create-home', '--shell', '/bin/bash', SUDO_USER]).catch(async (e) => {
        // Another lab created it at the same moment.
        if (
          !(await run('id', ['-u', SUDO_USER]).then(
            () => true,
            () => false,
          ))
        )
          throw e;
      });
    }
    // '*' = no password but not locked ('!' would make sshd refuse the key login).
    await run('usermod', ['-p', '*', SUDO_USER]);
    const sudoers = `/etc/sudoers.d/${SUDO_USER}`;
    if (!existsSync(sudoers)) {
      await writeFile(`${sudoers}.tmp`, `${SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
      await run('mv', [`${sudoers}.tmp`, sudoers]);
    }
  })();
  return sudoUserReady;
}

/** A network namespace for hosts only reachable through a jump host; lives while its holder runs. */
class HiddenNetwork {
  holder: Daemon;
  constructor(dir: string, label: string) {
    this.holder = new Daemon(`${label} namespace holder`, 'unshare', ['--net', 'sleep', 'infinity'], path.join(dir, `${label}.netns.log`));
  }
  get nsPath(): string {
    return `/proc/${this.holder.pid}/ns/net`;
  }
  async start(): Promise<void> {
    const ours = await readlink('/proc/self/ns/net');
    await this.holder.start();
    await this.holder.waitReady('in its own network namespace', async () => (await readlink(this.nsPath)) !== ours, 10_000);
    await run('nsenter', [`--net=${this.nsPath}`, 'ip', 'link', 'set', 'lo', 'up']);
  }
}

interface HostState {
  options: LabHostOptions;
  name: string;
  address: string;
  reservation: string;
  dir: string;
  user: string;
  configFile: string;
  hostKeyPublic: string;
  sshd?: Daemon;
  /** incusd, or lxd for server: 'lxd' hosts. */
  incusd?: Daemon;
  /** Set on a jump host: the namespace its jump-only hosts live in, and its inetd listener. */
  hidden?: HiddenNetwork;
  inetd?: net.Server;
  inetdChildren: Set<ChildProcess>;
  policy?: { policyDir: string; qvmCallLog: string; binDir: string };
}

export const startLab: StartLab = async (options) => {
  installExitHandlers();
  try {
    sweepAbandonedLabs();
  } catch {
    /* best effort */
  }
  await mkdir('/run/sshd', { recursive: true }); // sshd's privilege separation folder
  const specs: LabHostOptions[] = typeof options.hosts === 'number' ? Array.from({ length: options.hosts }, () => ({})) : options.hosts;
  const names = specs.map((s, i) => s.name ?? `host${i + 1}`);
  if (new Set(names).size !== names.length) throw new Error(`lab: duplicate host names in ${names.join(', ')}`);
  for (const s of specs) {
    if (s.jumpVia && !names.includes(s.jumpVia)) throw new Error(`lab: jumpVia ${s.jumpVia} is not a host of this lab`);
  }
  if (specs.some((s) => s.user === 'sudoer')) await ensureSudoUser();
  if (specs.some((s) => s.dom0)) {
    // test/lab/dom0.ts belongs to the Qubes work; loaded only when a dom0 host is asked for.
    await import('./dom0.js');
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), `reconcile-lab-${options.name ?? 'x'}-`));
  // The sudoer's sshd reads authorized_keys as that user: the folders must be traversable.
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'owner.pid'), `${process.pid}\n`);
  liveLabDirs.add(dir);
  const logs = path.join(dir, 'logs');
  const home = path.join(dir, 'home');
  await mkdir(logs, { recursive: true });
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const clientKeyFile = path.join(home, '.ssh', 'id_ed25519');
  const clientPublic = await keygen(clientKeyFile, 'reconcile-lab-client');
  const authorizedKeys = path.join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, clientPublic + '\n', { mode: 0o644 });
  const clientPair = await clientCertificatePair(home);

  const states: HostState[] = [];
  const byName = new Map<string, HostState>();
  let stopped = false;

  const stopAll = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      states.map(async (s) => {
        s.inetd?.close();
        for (const c of s.inetdChildren) if (c.pid) killGroup(c.pid, 'SIGTERM');
        await s.sshd?.stop();
      }),
    );
    await Promise.all(states.map(async (s) => s.hidden?.holder.stop()));
    await Promise.all(states.map(async (s) => s.incusd?.stop()));
    for (const s of states) {
      await unlink(s.reservation).catch(() => {});
      liveReservations.delete(s.reservation);
    }
    // Keep logs (under logs/) for a failed test; drop keys and daemon state.
    removeLabDirSync(dir);
    liveLabDirs.delete(dir);
  };

  try {
    // Reserve addresses one after the other (cheap), then set hosts up concurrently.
    for (const [i, spec] of specs.entries()) {
      const name = names[i]!;
      const { address, reservation } = await reserveAddress();
      const hostDir = path.join(dir, 'hosts', name);
      await mkdir(path.join(hostDir, 'home'), { recursive: true });
      await chmod(path.join(dir, 'hosts'), 0o755);
      await chmod(hostDir, 0o755);
      states.push({
        options: spec,
        name,
        address,
        reservation,
        dir: hostDir,
        user: spec.user === 'sudoer' ? SUDO_USER : 'root',
        configFile: path.join(hostDir, 'sshd_config'),
        hostKeyPublic: '',
        inetdChildren: new Set(),
      });
    }
    for (const s of states) byName.set(s.name, s);
    for (const s of states) {
      if (s.options.jumpVia) {
        const jump = byName.get(s.options.jumpVia)!;
        if (jump.options.jumpVia) throw new Error(`lab: ${jump.name} is itself behind a jump host; one level only`);
        jump.hidden ??= new HiddenNetwork(logs, jump.name);
      }
    }
    for (const s of states) if (s.hidden) await s.hidden.start();

    const setUp = async (s: HostState): Promise<void> => {
      const keyFile = path.join(s.dir, 'ssh_host_ed25519_key');
      s.hostKeyPublic = await keygen(keyFile, `${s.name}-host-key`);
      if (s.user !== 'root') await chown(path.join(s.dir, 'home'), ...(await uidGid(s.user)));
      const incusDir = path.join(s.dir, 'incus');
      if (s.options.dom0) {
        const { setUpDom0StandIn } = await import('./dom0.js');
        s.policy = await setUpDom0StandIn(s.dir);
      }
      await writeFile(s.configFile, sshdConfig(s, keyFile, authorizedKeys, incusDir));
      if (s.options.incus !== false && !s.options.down) {
        await mkdir(incusDir, { recursive: true });
        const lxd = s.options.server === 'lxd';
        s.incusd = lxd
          ? new Daemon(`lxd of ${s.name}`, LXD, ['--group', 'root'], path.join(logs, `${s.name}.lxd.log`), { ...process.env, LXD_DIR: incusDir })
          : new Daemon(`incusd of ${s.name}`, INCUSD, [], path.join(logs, `${s.name}.incusd.log`), { ...process.env, INCUS_DIR: incusDir });
        await startIncusd(s);
        if (s.options.https || s.options.ssh === false) {
          await daemonCli(s, ['config', 'set', 'core.https_address', `${s.address}:8443`]);
        }
        if (s.options.ssh === false) {
          await daemonCli(s, trustAddArgs(s, clientPair.cert));
          // What `incus remote add` keeps under servercerts/: a copy, so a server whose certificate changes no longer matches it.
          await mkdir(path.join(dir, 'pinned'), { recursive: true });
          await writeFile(pinnedCertOf(s), await readFile(path.join(incusDir, 'server.crt')));
        }
      }
      if (!s.options.down && s.options.ssh !== false) await startSshd(s, byName, logs);
    };
    // allSettled: when one host fails to start, the others must have finished starting before
    // stopAll runs, or their daemons would be started after it and leak.
    // At most a few hosts start at once: a burst of 30 incusd starving the 2-core machine slows
    // every other test running beside this lab.
    const startSlot = pLimit(START_CONCURRENCY);
    const started = await Promise.allSettled(states.map((s) => startSlot(() => setUp(s))));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    await writeClientFiles(home, states);
  } catch (e) {
    await stopAll();
    throw e;
  }

  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.SSH_AUTH_SOCK; // the lab's key file, not whatever agent the tester runs

  const hosts: LabHost[] = states.map((s) => {
    const incusDir = s.options.incus === false ? undefined : path.join(s.dir, 'incus');
    const jump = s.options.jumpVia ? byName.get(s.options.jumpVia) : undefined;
    const httpsOnly = s.options.ssh === false;
    const apiUrl = incusDir && (s.options.https || httpsOnly) ? `https://${s.address}:8443` : undefined;
    const host: LabHost = {
      name: s.name,
      address: s.address,
      sshPort: 22,
      user: s.user,
      incusDir,
      incusSocket: incusDir ? path.join(incusDir, 'unix.socket') : undefined,
      server: s.options.server ?? 'incus',
      apiUrl,
      serverCertFile: incusDir ? path.join(incusDir, 'server.crt') : undefined,
      pinnedServerCertFile: httpsOnly ? pinnedCertOf(s) : undefined,
      hostKeyFingerprint: sshFingerprint(s.hostKeyPublic),
      qubesPolicyDir: s.policy?.policyDir,
      qvmCallLog: s.policy?.qvmCallLog,
      inventoryVars() {
        if (httpsOnly) {
          // As IncusOS is reached: its API, the server certificate pinned; the client pair is the incus client's own.
          const vars: Record<string, unknown> = { incus_api_url: apiUrl, incus_server_cert_file: pinnedCertOf(s) };
          if (s.options.server === 'lxd') vars.incus_server = 'lxd';
          return vars;
        }
        const vars: Record<string, unknown> = { ansible_host: s.address, ansible_port: 22, ansible_user: s.user };
        if (incusDir) vars.incus_socket = path.join(incusDir, 'unix.socket');
        if (s.options.server === 'lxd') vars.incus_server = 'lxd';
        if (s.user !== 'root') vars.ansible_become = true;
        if (jump) vars.ansible_ssh_common_args = `-J ${jump.user}@${jump.address}`;
        return vars;
      },
      async incus(args, stdin) {
        if (!incusDir) throw new Error(`lab: ${s.name} has no incusd`);
        return daemonCli(s, args, stdin);
      },
      async stopIncus() {
        await s.incusd?.stop();
      },
      async startIncus() {
        if (!s.incusd) throw new Error(`lab: ${s.name} has no incusd`);
        if (!s.incusd.running) await startIncusd(s);
      },
      async stopSshd(options = {}) {
        // The sessions are collected first: once the listener is gone they belong to init.
        const sessions = options.dropSessions && s.sshd?.pid !== undefined ? descendantsOf(s.sshd.pid) : [];
        if (s.inetd) {
          await new Promise<void>((r) => s.inetd!.close(() => r()));
          s.inetd = undefined;
          for (const c of s.inetdChildren) if (c.pid) killGroup(c.pid, 'SIGTERM');
        }
        await s.sshd?.stop();
        for (const pid of sessions) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      },
      async startSshd() {
        if (s.sshd?.running || s.inetd) return;
        await startSshd(s, byName, logs);
      },
    };
    return host;
  });

  const lab: Lab = {
    dir,
    hosts,
    env,
    clientCertFile: clientPair.cert,
    clientKeyFile: clientPair.key,
    host(name) {
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new Error(`lab: no host ${name} (hosts: ${hosts.map((x) => x.name).join(', ')})`);
      return h;
    },
    async writeInventory(opts = {}) {
      const chosen = opts.hosts ? opts.hosts.map((n) => lab.host(n)) : hosts;
      const doc = {
        all: {
          ...(opts.allVars ? { vars: opts.allVars } : {}),
          children: {
            [opts.group ?? 'lab']: { hosts: Object.fromEntries(chosen.map((h) => [h.name, h.inventoryVars()])) },
          },
        },
      };
      const file = opts.file ?? path.join(dir, 'inventory.yaml');
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, stringify(doc));
      return file;
    },
    stop: stopAll,
  };
  return lab;
};

async function uidGid(user: string): Promise<[number, number]> {
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const gid = Number((await run('id', ['-g', user])).stdout.trim());
  return [uid, gid];
}

function sshdConfig(s: HostState, hostKey: string, authorizedKeys: string, incusDir: string): string {
  const pathDirs = [s.policy?.binDir, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter(Boolean);
  return [
    `# reconcile test lab: ${s.name}`,
    `ListenAddress ${s.address}:22`,
    `HostKey ${hostKey}`,
    `PidFile ${path.join(s.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    `PermitRootLogin prohibit-password`,
    `PasswordAuthentication no`,
    `KbdInteractiveAuthentication no`,
    `UsePAM no`,
    // Keys and folders live under the lab's temporary folder, owned by root.
    `StrictModes no`,
    `AllowStreamLocalForwarding ${s.options.streamLocalForwarding === false ? 'no' : 'yes'}`,
    `AllowTcpForwarding yes`,
    `LogLevel VERBOSE`,
    // Debian's 10:30:100 drops connections when many clients arrive at once.
    `MaxStartups 200:30:400`,
    `PrintMotd no`,
    // An empty HOME: root's ~/.bashrc on these machines is slow (see LAB-NOTES).
    `SetEnv INCUS_DIR=${incusDir} HOME=${path.join(s.dir, 'home')} PATH=${pathDirs.join(':')}`,
    `Subsystem sftp internal-sftp`,
    '',
  ].join('\n');
}

async function startIncusd(s: HostState): Promise<void> {
  const incusd = s.incusd!;
  await incusd.start();
  const incusDir = path.join(s.dir, 'incus');
  const waitready =
    s.options.server === 'lxd'
      ? () => run(LXD, ['waitready', '--timeout', '30'], { env: { ...process.env, LXD_DIR: incusDir } })
      : () => incusCli(incusDir, ['admin', 'waitready', '--timeout', '30']);
  let waiting: Promise<boolean> | undefined;
  await incusd.waitReady('ready', () => {
    // One `waitready` at a time; it returns when the daemon answers.
    waiting ??= waitready().then(
      () => true,
      () => {
        waiting = undefined;
        return false;
      },
    );
    return Promise.race([waiting, sleep(200).then(() => false)]);
  });
}

async function startSshd(s: HostState, byName: Map<string, HostState>, logs: string): Promise<void> {
  const logFile = path.join(logs, `${s.name}.sshd.log`);
  if (s.hidden) {
    await serveInetd(s, logFile);
    return;
  }
  const jump = s.options.jumpVia ? byName.get(s.options.jumpVia) : undefined;
  const command = jump ? 'nsenter' : SSHD;
  const args = ['-D', '-e', '-f', s.configFile];
  s.sshd = new Daemon(`sshd of ${s.name}`, command, jump ? [`--net=${jump.hidden!.nsPath}`, SSHD, ...args] : args, logFile);
  const before = (await readFile(logFile, 'utf8').catch(() => '')).length;
  await s.sshd.start();
  // sshd logs "Server listening on ADDRESS port 22." once bound (also inside a namespace).
  await s.sshd.waitReady('listening', async () => (await readFile(logFile, 'utf8')).slice(before).includes(`Server listening on ${s.address} port 22`));
}

/** A jump host: each connection on ADDRESS:22 goes to `sshd -i` inside the hidden namespace. */
async function serveInetd(s: HostState, logFile: string): Promise<void> {
  const log = await open(logFile, 'a');
  const logFd = log.fd;
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const child = spawn('nsenter', [`--net=${s.hidden!.nsPath}`, SSHD, '-i', '-e', '-f', s.configFile], {
      stdio: [socket, socket, logFd],
      detached: true,
    });
    s.inetdChildren.add(child);
    if (child.pid) livePids.add(child.pid);
    child.once('exit', () => {
      s.inetdChildren.delete(child);
      if (child.pid) livePids.delete(child.pid);
    });
    child.once('error', () => socket.destroy());
    // The child holds its own copy of the connection.
    child.once('spawn', () => socket.destroy());
  });
  server.once('close', () => void log.close().catch(() => {}));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: s.address, port: 22, exclusive: true }, resolve);
  });
  await appendFile(logFile, `lab: serving ${s.address}:22 inetd-style (sshd -i in a private network namespace)\n`);
  s.inetd = server;
}

/** Where the lab keeps an HTTPS-only host's pinned server certificate. */
function pinnedCertOf(s: HostState): string {
  return path.join(path.dirname(path.dirname(s.dir)), 'pinned', `${s.name}.crt`);
}

/** The daemon's own client (incus, or lxc for LXD) against one lab host's daemon. */
function daemonCli(s: HostState, args: string[], stdin?: string): Promise<string> {
  const dir = path.join(s.dir, 'incus');
  return s.options.server === 'lxd' ? incusCli(dir, args, stdin, 'lxc') : incusCli(dir, args, stdin);
}

/** `config trust add`: Incus 6 names it add-certificate, LXD 5.0 takes the file directly. */
function trustAddArgs(s: HostState, certFile: string): string[] {
  return s.options.server === 'lxd' ? ['config', 'trust', 'add', certFile] : ['config', 'trust', 'add-certificate', certFile];
}

/** A self-signed ECDSA pair made by openssl (key unencrypted, mode 0600): client or server certificates for tests. */
export async function selfSignedPair(cn: string, keyFile: string, certFile: string, options: { curve?: string; days?: number } = {}): Promise<void> {
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    `ec_paramgen_curve:${options.curve ?? 'prime256v1'}`,
    '-nodes',
    '-days',
    String(options.days ?? 2),
    '-subj',
    `/CN=${cn}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  await chmod(keyFile, 0o600);
}

/** A free TCP port on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The lab's incus client pair (ECDSA P-384, as the incus client makes it), also where lxc looks. */
async function clientCertificatePair(home: string): Promise<{ cert: string; key: string }> {
  const dir = path.join(home, '.config', 'incus');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cert = path.join(dir, 'client.crt');
  const key = path.join(dir, 'client.key');
  await selfSignedPair('reconcile-lab-client', key, cert, { curve: 'secp384r1', days: 30 });
  await chmod(key, 0o600);
  const lxc = path.join(home, '.config', 'lxc');
  await mkdir(lxc, { recursive: true, mode: 0o700 });
  await writeFile(path.join(lxc, 'client.crt'), await readFile(cert));
  await writeFile(path.join(lxc, 'client.key'), await readFile(key), { mode: 0o600 });
  return { cert, key };
}

/** Runs the local incus (or lxc) client against one daemon; stdin closed (some commands read YAML from it). */
function incusCli(incusDir: string, args: string[], stdin?: string, client: 'incus' | 'lxc' = 'incus'): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = client === 'lxc' ? { ...process.env, LXD_DIR: incusDir } : { ...process.env, INCUS_DIR: incusDir };
    const child = spawn(client, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      reject(
        new Error(
          `${client} ${args.join(' ')} (${client === 'lxc' ? 'LXD_DIR' : 'INCUS_DIR'}=${incusDir}): ${Buffer.concat(err).toString('utf8').trim() || `exit ${code}`}`,
        ),
      );
    });
    // incus may exit without reading its input (most commands do): that EPIPE is not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

/**
 * The client side: ~/.ssh/known_hosts (hashed entries for every second host, a wrong key for
 * `wrongHostKey` hosts, none for down hosts' keys since they have none) and ~/.ssh/config.
 */
async function writeClientFiles(home: string, states: HostState[]): Promise<void> {
  const known: string[] = [];
  for (const [i, s] of states.entries()) {
    if (s.options.down || s.options.ssh === false) continue;
    let keyLine = s.hostKeyPublic.split(/\s+/).slice(0, 2).join(' ');
    if (s.options.wrongHostKey) {
      const other = path.join(s.dir, 'not-the-host-key');
      keyLine = (await keygen(other, 'wrong')).split(/\s+/).slice(0, 2).join(' ');
      await rm(other, { force: true });
      await rm(`${other}.pub`, { force: true });
    }
    known.push(`${i % 2 === 1 ? hashKnownHost(s.address) : s.address} ${keyLine}`);
  }
  await writeFile(path.join(home, '.ssh', 'known_hosts'), known.join('\n') + '\n', { mode: 0o644 });
  const config: string[] = ['# written by the reconcile test lab', ''];
  for (const s of states) {
    if (s.options.ssh === false) continue;
    config.push(`Host ${s.name}`, `  HostName ${s.address}`, `  User ${s.user}`, `  Port 22`, `  IdentityFile ${path.join(home, '.ssh', 'id_ed25519')}`);
    if (s.options.jumpVia) config.push(`  ProxyJump ${s.options.jumpVia}`);
    config.push('');
  }
  // OpenSSH itself finds ~ through the password database, not HOME: name the file.
  config.push('Host *', `  UserKnownHostsFile ${path.join(home, '.ssh', 'known_hosts')}`, '');
  await writeFile(path.join(home, '.ssh', 'config'), config.join('\n'), { mode: 0o600 });
}
