/**
 * Helpers of the metrics end-to-end tests: a real Prometheus (Debian's package) per test file
 * on a free loopback port with its own storage folder and --web.enable-lifecycle, stopped by
 * its PID; its targets read from /api/v1/targets; and /1.0/metrics fetched with a given pair,
 * independently of reconcile with curl --cert --key -k.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from '../lab/lab.js';

const run = promisify(execFile);

export interface TestPrometheus {
  url: string;
  port: number;
  configFile: string;
  dir: string;
  targets(): Promise<PromTarget[]>;
  stop(): Promise<void>;
}

export interface PromTarget {
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  labels: Record<string, string>;
}

export { freePort };

/** Starts prometheus with an empty configuration in DIR/prometheus; ready when /-/ready answers 200. */
export async function startPrometheus(root: string): Promise<TestPrometheus> {
  const dir = join(root, 'prometheus');
  await mkdir(join(dir, 'data'), { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, 'scrape_configs: []\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = createWriteStream(join(root, 'prometheus.log'), { flags: 'a' });
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--web.enable-lifecycle'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((r) => child.on('exit', (code) => ((exitCode = code), r())));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`prometheus exited (code ${exitCode}) before it was ready; see ${root}/prometheus.log`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus not ready within 30 s; see ${root}/prometheus.log`);
    }
    const ok = await fetch(`${url}/-/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    port,
    configFile,
    dir,
    targets: async () => {
      const body = (await (await fetch(`${url}/api/v1/targets?state=active`)).json()) as { data: { activeTargets: PromTarget[] } };
      return body.data.activeTargets;
    },
    stop: async () => {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until `check` returns true (polling), or fails with `what` and the last value seen. */
export async function eventually<T>(what: string, read: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (check(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * HTTP status of GET https://ADDRESS/1.0/metrics as `curl -k --cert CERT --key KEY` gets it (the
 * server certificate is not verified, only ours is presented). The pair is written to `dir` (key 0600).
 */
export async function metricsStatus(address: string, cert: string, key: string, dir: string): Promise<number> {
  const id = randomBytes(4).toString('hex');
  const certFile = join(dir, `curl-${id}.crt`);
  const keyFile = join(dir, `curl-${id}.key`);
  await writeFile(certFile, cert);
  await writeFile(keyFile, key, { mode: 0o600 });
  try {
    const { stdout } = await run('curl', [
      '-sk',
      '--cert',
      certFile,
      '--key',
      keyFile,
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `https://${address}/1.0/metrics`,
    ]);
    return Number(stdout.trim());
  } finally {
    await rm(certFile, { force: true });
    await rm(keyFile, { force: true });
  }
}
