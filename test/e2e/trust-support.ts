/**
 * Helpers of the incus_trust end-to-end tests: real incusd daemons (each its own INCUS_DIR),
 * certificates generated per run, the CLI run as a subprocess, and each host's trust store read
 * independently of the tool (`incus config trust list --format json`).
 */
import { spawn, execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { generateSelfSigned } from '../../src/pki/generate.js';
import type { LabHost } from '../lab/types.js';

const run = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../..');
const INCUSD = '/usr/libexec/incus/incusd';

export interface TrustRow {
  name: string;
  type: string;
  restricted: boolean;
  projects: string[] | null;
  description: string;
  fingerprint: string;
}

/** A real incusd with its own state folder, reached by the tool with `ansible_connection: local`. */
export interface TestIncus {
  name: string;
  dir: string;
  socket: string;
  pid(): number | undefined;
  incus(args: string[], stdin?: string): Promise<string>;
  /** The trust store as `incus config trust list --format json` shows it, sorted by name. */
  trust(): Promise<TrustRow[]>;
  start(): Promise<void>;
  /** SIGTERM (or SIGKILL), then wait for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  inventoryVars(): Record<string, unknown>;
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `reconcile-${prefix}-`));
}

/**
 * Runs the local `incus` client on INCUS_DIR. stdin is always closed (or fed): `incus project
 * create` and friends read YAML from a stdin that is not a terminal and would wait forever.
 */
export function incusClient(incusDir: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('incus', args, { env: { ...process.env, INCUS_DIR: incusDir } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`incus ${args.join(' ')}: ${err}`))));
    p.stdin.end(stdin ?? '');
  });
}

export function startTestIncus(root: string, name: string): TestIncus {
  const dir = join(root, `incus-${name}`);
  const socket = join(dir, 'unix.socket');
  let child: ReturnType<typeof spawn> | undefined;
  let exited: Promise<void> = Promise.resolve();
  const env = { ...process.env, INCUS_DIR: dir };
  const self: TestIncus = {
    name,
    dir,
    socket,
    pid: () => child?.pid,
    incus: (args, stdin) => incusClient(dir, args, stdin),
    trust: async () => {
      const rows = JSON.parse(await self.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[];
      return rows.sort((a, b) => a.name.localeCompare(b.name) || a.fingerprint.localeCompare(b.fingerprint));
    },
    start: async () => {
      await mkdir(dir, { recursive: true });
      const log = createWriteStream(join(root, `incusd-${name}.log`), { flags: 'a' });
      const c = spawn(INCUSD, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout!.pipe(log);
      c.stderr!.pipe(log);
      child = c;
      let exitCode: number | null = null;
      exited = new Promise((res) => c.on('exit', (code) => ((exitCode = code), res())));
      // Race "ready" against "exited" against the timeout, each with its own message.
      const ready = run('incus', ['admin', 'waitready', '--timeout', '30'], { env }).then(() => 'ready' as const);
      const outcome = await Promise.race([ready, exited.then(() => 'exited' as const)]).catch((e: Error) => e);
      if (outcome === 'exited') throw new Error(`incusd ${name} exited (code ${exitCode}) before it was ready; see ${root}/incusd-${name}.log`);
      if (outcome instanceof Error) throw new Error(`incusd ${name} not ready within 30 s: ${outcome.message}`);
    },
    stop: async (signal = 'SIGTERM') => {
      if (!child || child.exitCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child?.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
    inventoryVars: () => ({ ansible_connection: 'local', incus_socket: socket }),
  };
  return self;
}

export async function startHosts(root: string, names: string[]): Promise<TestIncus[]> {
  const hosts = names.map((n) => startTestIncus(root, n));
  await Promise.all(hosts.map((h) => h.start()));
  return hosts;
}

export async function stopHosts(hosts: TestIncus[], root?: string): Promise<void> {
  await Promise.all(hosts.map((h) => h.stop()));
  if (root) await rm(root, { recursive: true, force: true }).catch(() => undefined);
}

export interface GeneratedCert {
  /** Path relative to the inventory folder. */
  file: string;
  fingerprint: string;
}

/** Writes a public certificate (never the key) under DIR/certs/NAME.crt. */
export async function makeCert(dir: string, name: string, days = 365): Promise<GeneratedCert> {
  const pair = await generateSelfSigned({ commonName: name, validityDays: days, now: new Date(), type: 'client' });
  await mkdir(join(dir, 'certs'), { recursive: true });
  const file = `certs/${name}-${pair.info.fingerprint.slice(0, 8)}.crt`;
  await writeFile(join(dir, file), pair.certificatePem);
  return { file, fingerprint: pair.info.fingerprint };
}

/** Writes DIR/NAME (YAML inventory): every host under `all.hosts` with its connection vars. */
export async function writeInventory(
  dir: string,
  hosts: TestIncus[],
  allVars: Record<string, unknown>,
  hostVars: Record<string, Record<string, unknown>> = {},
  name = 'hosts.yaml',
): Promise<string> {
  const inv = {
    all: {
      vars: allVars,
      hosts: Object.fromEntries(hosts.map((h) => [h.name, { ...h.inventoryVars(), ...(hostVars[h.name] ?? {}) }])),
    },
  };
  const path = join(dir, name);
  await writeFile(path, stringify(inv));
  return path;
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`node bin/reconcile.js`) as a user would; `onStderrLine` sees progress live. */
export function reconcile(args: string[], options: { onStderrLine?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), ...args], { env: options.env ?? process.env, cwd: REPO });
    let stdout = '';
    let stderr = '';
    let partial = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => {
      stderr += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) options.onStderrLine?.(l);
    });
    p.on('close', (code) => res({ exitCode: code ?? -1, stdout, stderr }));
  });
}

/** A client trust entry as the inventory writes it. */
export function client(name: string, cert: GeneratedCert, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, certificate_file: cert.file, ...extra };
}

/** name → fingerprint/type/restricted/projects(sorted)/description, for whole-value asserts. */
export function storeView(rows: TrustRow[]): Record<string, string> {
  return Object.fromEntries(
    rows.map((r) => [
      `${r.name}@${r.fingerprint.slice(0, 12)}`,
      `${r.type} restricted=${r.restricted} projects=[${[...(r.projects ?? [])].sort().join(',')}] description=${JSON.stringify(r.description)}`,
    ]),
  );
}

/**
 * Forms a real Incus cluster: the first member enables clustering on its HTTPS address, each
 * other member joins with a token from `incus cluster add` through `incus admin init --preseed`.
 */
export async function formCluster(members: TestIncus[], addresses: string[]): Promise<void> {
  const [first, ...others] = members;
  await first!.incus(['config', 'set', 'core.https_address', `${addresses[0]}:8443`]);
  await first!.incus(['cluster', 'enable', first!.name]);
  for (const [i, m] of others.entries()) {
    const out = await first!.incus(['cluster', 'add', m.name]);
    const token = out.trim().split('\n').pop()!.trim();
    const address = `${addresses[i + 1]}:8443`;
    await m.incus(
      ['admin', 'init', '--preseed'],
      stringify({
        config: { 'core.https_address': address },
        cluster: { enabled: true, server_name: m.name, server_address: address, cluster_token: token },
      }),
    );
  }
}

/**
 * A lab host (real sshd + incusd, reached over SSH) seen through the TestIncus interface: the
 * tool connects with ssh, the test reads the store with the local `incus` on the host's INCUS_DIR.
 */
export function fromLabHost(h: LabHost): TestIncus {
  const self: TestIncus = {
    name: h.name,
    dir: h.incusDir ?? '',
    socket: h.incusSocket ?? '',
    pid: () => undefined,
    // With stdin (a preseed), run the local client on the host's INCUS_DIR directly.
    incus: (args, stdin) => (stdin === undefined ? h.incus(args) : incusClient(h.incusDir!, args, stdin)),
    trust: async () => {
      const rows = JSON.parse(await h.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[];
      return rows.sort((a, b) => a.name.localeCompare(b.name) || a.fingerprint.localeCompare(b.fingerprint));
    },
    start: () => h.startIncus(),
    stop: () => h.stopIncus(),
    inventoryVars: () => h.inventoryVars(),
  };
  return self;
}
