/**
 * Helpers of the fault suite: the CLI as a subprocess (asserting what a user sees), each host's
 * trust store read independently of the tool (`incus query` on the host's own daemon),
 * certificates generated per test, and small fault injectors placed in front of a REAL incusd
 * socket (the daemon still does the work; only the one fault is injected).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { stringify } from 'yaml';
import { generateSelfSigned } from '../../src/pki/generate.js';
import type { RunReport } from '../../src/engine/report.js';
import type { LabHost } from '../lab/types.js';

export const REPO = resolve(import.meta.dirname, '../..');

export interface CliResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves when a stderr line matches. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<string>;
  done: Promise<CliResult>;
}

/** Starts `node bin/reconcile.js ARGS` as a user would (built CLI, own environment). */
export function startCli(args: string[], env: NodeJS.ProcessEnv): RunningCli {
  const child = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), ...args], { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    for (const w of Array.from(waiters)) {
      const line = stderr.split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const done = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ exitCode: code, signal, stdout, stderr })));
  return {
    child,
    done,
    waitForStderr: (pattern, timeoutMs = 30_000) =>
      new Promise((res, rej) => {
        const line = stderr.split('\n').find((l) => pattern.test(l));
        if (line !== undefined) return res(line);
        const t = setTimeout(() => rej(new Error(`no stderr line matching ${pattern} within ${timeoutMs} ms; stderr so far:\n${stderr}`)), timeoutMs);
        waiters.push({ pattern, resolve: (l) => (clearTimeout(t), res(l)) });
        void done.then(() => {
          clearTimeout(t);
          const l = stderr.split('\n').find((x) => pattern.test(x));
          if (l !== undefined) res(l);
          else rej(new Error(`the CLI ended without a stderr line matching ${pattern}; stderr:\n${stderr}`));
        });
      }),
  };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return startCli(args, env).done;
}

/** The JSON report of a `--json` run (stdout holds only it). */
export function reportOf(r: CliResult): RunReport {
  try {
    return JSON.parse(r.stdout) as RunReport;
  } catch {
    throw new Error(`stdout is not a JSON report (exit ${r.exitCode}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** A stack trace line of Node (`    at fn (file:line:col)`): never shown to a user. */
export const STACK_LINE = /^\s+at .+(\(|:\d+:\d+)/m;

/**
 * A run where some hosts misbehave, as every such test wants it: over within 20 s (a hanging host
 * costs one of the short timeouts the test sets, not the default minute), exit 1, no stack trace.
 * Its report, and the report's hosts by name.
 */
export async function runWithFaults(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ report: RunReport; byHost: Record<string, RunReport['hosts'][number]> }> {
  const started = Date.now();
  const result = await runCli(args, env);
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(result.exitCode).toBe(1);
  expect(result.stderr).not.toMatch(STACK_LINE);
  const report = reportOf(result);
  return { report, byHost: Object.fromEntries(report.hosts.map((h) => [h.host, h])) };
}

export interface LiveEntry {
  name: string;
  type: string;
  restricted: boolean;
  projects: string[];
  description: string;
  fingerprint: string;
}

/** The host's trust store read with the host's own `incus` client, not with reconcile. Sorted by name. */
export async function trustStore(host: LabHost): Promise<LiveEntry[]> {
  const raw = JSON.parse(await host.incus(['query', '/1.0/certificates?recursion=1'])) as LiveEntry[];
  return raw
    .map((c) => ({
      name: c.name,
      type: c.type,
      restricted: c.restricted,
      projects: [...(c.projects ?? [])].sort(),
      description: c.description,
      fingerprint: c.fingerprint,
    }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.fingerprint.localeCompare(b.fingerprint));
}

/** Removes every client/metrics certificate (tests share one lab per file). */
export async function clearTrustStore(host: LabHost): Promise<void> {
  for (const c of await trustStore(host)) {
    if (c.type !== 'server') await host.incus(['query', '-X', 'DELETE', `/1.0/certificates/${c.fingerprint}`]);
  }
}

export interface TestCert {
  /** Path relative to the inventory folder. */
  file: string;
  fingerprint: string;
  pem: string;
}

/** Writes a public certificate (never its key) under DIR/certs/. */
export async function makeCert(dir: string, name: string): Promise<TestCert> {
  const pair = await generateSelfSigned({ commonName: name, validityDays: 365, now: new Date(), type: 'client' });
  await mkdir(join(dir, 'certs'), { recursive: true });
  const file = `certs/${name.replace(/[^A-Za-z0-9_-]/g, '_')}-${pair.info.fingerprint.slice(0, 8)}.crt`;
  await writeFile(join(dir, file), pair.certificatePem);
  return { file, fingerprint: pair.info.fingerprint, pem: pair.certificatePem };
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `reconcile-faults-${prefix}-`));
}

/**
 * Writes DIR/hosts.yaml. Hosts are reached with `connection` vars: the lab host's own SSH
 * variables, or `ansible_connection: local` on its incusd socket.
 */
export async function writeInventory(
  dir: string,
  hosts: { name: string; vars: Record<string, unknown> }[],
  allVars: Record<string, unknown>,
  file = 'hosts.yaml',
): Promise<string> {
  const doc = { all: { vars: allVars, hosts: Object.fromEntries(hosts.map((h) => [h.name, h.vars])) } };
  const path = join(dir, file);
  await writeFile(path, stringify(doc));
  return path;
}

/** `ansible_connection: local` on the lab host's own incusd socket (or another socket). */
export function localVars(host: LabHost, socket = host.incusSocket): Record<string, unknown> {
  return { ansible_connection: 'local', incus_socket: socket };
}

export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A fault injector: decides per request whether to forward it to the real socket. */
export type Injector = (req: IncomingMessage, body: Buffer, res: ServerResponse) => 'forward' | 'handled';

export interface SocketServer {
  socket: string;
  /** Requests seen, as "METHOD path". */
  seen: string[];
  close(): Promise<void>;
}

/**
 * An HTTP server on a unix socket. With `upstream`, every request the injector does not handle
 * is forwarded to that (real incusd) socket with its headers (If-Match included) and answered
 * with the daemon's own status, headers and body.
 */
export async function startSocketServer(socket: string, inject: Injector, upstream?: string): Promise<SocketServer> {
  const seen: string[] = [];
  const open = new Set<import('node:net').Socket>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push(`${req.method} ${req.url}`);
      if (inject(req, body, res) === 'handled') return;
      if (!upstream) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: 'not found', error_code: 404 }));
        return;
      }
      const up = httpRequest({ socketPath: upstream, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => res.writeHead(502).end(String(e)));
      up.end(body);
    });
  });
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((res) => server.listen(socket, res));
  return {
    socket,
    seen,
    close: () =>
      new Promise((res) => {
        for (const s of open) s.destroy();
        server.close(() => res());
      }),
  };
}

/** An Incus-style JSON answer. */
export function incusJson(res: ServerResponse, metadata: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'sync', status: 'Success', status_code: 200, metadata }));
}

/**
 * Records an observed result for docs/faults.md: with RECONCILE_FAULTS_NOTES=FILE the suite
 * appends one line per fault (what was tried → status, step, message, exit code) to FILE.
 */
export function note(fault: string, observed: string): void {
  const file = process.env.RECONCILE_FAULTS_NOTES;
  if (file) appendFileSync(file, `${fault}\t${observed.replace(/\s+/g, ' ')}\n`);
}

/** `status | step | message` of a host in a report, for note(). */
export function describeHost(report: RunReport, host: string): string {
  const h = report.hosts.find((x) => x.host === host);
  if (!h) return `no host ${host} in the report`;
  const applied = h.actions.filter((a) => a.applied).length;
  return `${h.status} | step: ${h.error?.step ?? '-'} | ${h.error?.message ?? '-'} | ${applied}/${h.actions.length} actions applied | exit ${report.exitCode}`;
}
