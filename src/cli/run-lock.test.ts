/**
 * The run lock with real processes: each contender is a separate `node` process running the
 * compiled lock module (dist/, built by `npm run build` / `npm test`'s pretest).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { acquireRunLock, RunLockHeldError, runLockLocation, runLockPath } from './run-lock.js';

const REPO = resolve(import.meta.dirname, '../..');
const COMPILED = join(REPO, 'dist/src/cli/run-lock.js');

/** A contender: takes the lock, says so on stdout with timestamps, holds it, releases, exits. */
const CHILD = `
import { acquireRunLock } from ${JSON.stringify(pathToFileURL(COMPILED).href)};
const [inventory, folder, timeoutMs, holdMs, graceful] = process.argv.slice(2);
if (graceful) process.on('SIGTERM', () => { say({ event: 'stopping' }); setTimeout(() => process.exit(0), 700); });
const say = (o) => process.stdout.write(JSON.stringify({ pid: process.pid, t: Date.now(), ...o }) + '\\n');
try {
  const lock = await acquireRunLock({
    inventoryPath: inventory, folder, timeoutMs: Number(timeoutMs), pollMs: 50,
    onWait: (h) => say({ event: 'waiting', holderPid: h.pid, holderStartedAt: h.startedAt }),
    onStaleTakeover: (h) => say({ event: 'takeover', stalePid: h?.pid }),
  });
  say({ event: 'acquired', waitedMs: lock.waitedMs, waitedFor: lock.waitedFor?.pid, startedAt: lock.holder.startedAt });
  await new Promise((r) => setTimeout(r, Number(holdMs)));
  say({ event: 'releasing' });
  lock.release();
} catch (e) {
  say({ event: 'refused', message: e.message, holderPid: e.holder?.pid });
  process.exitCode = 1;
}
`;

interface ChildEvent {
  pid: number;
  t: number;
  event: 'waiting' | 'takeover' | 'acquired' | 'releasing' | 'refused' | 'stopping';
  [k: string]: unknown;
}

interface Contender {
  pid: number;
  events: ChildEvent[];
  /** Resolves with the exit code, or the signal name. */
  exited: Promise<number | string>;
  /** Resolves at the first event of that name. */
  on(event: ChildEvent['event']): Promise<ChildEvent>;
  kill(signal: NodeJS.Signals): void;
}

let root: string;
let childScript: string;

beforeAll(async () => {
  if (!existsSync(COMPILED) || statSync(COMPILED).mtimeMs < statSync(join(REPO, 'src/cli/run-lock.ts')).mtimeMs) {
    throw new Error('dist/src/cli/run-lock.js is missing or older than src/cli/run-lock.ts: run `npm run build` first');
  }
  root = await mkdtemp(join(tmpdir(), 'reconcile-lock-'));
  childScript = join(root, 'contender.mjs');
  await writeFile(childScript, CHILD);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
async function fixture(): Promise<{ inventory: string; folder: string }> {
  const dir = join(root, `case-${++seq}`);
  await mkdir(dir, { recursive: true });
  const inventory = join(dir, 'hosts.yaml');
  await writeFile(inventory, 'all: {}\n');
  return { inventory, folder: join(dir, 'locks') };
}

function contender(inventory: string, folder: string, timeoutMs: number, holdMs: number, graceful = false): Contender {
  const args = [childScript, inventory, folder, String(timeoutMs), String(holdMs), ...(graceful ? ['graceful'] : [])];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: ChildEvent[] = [];
  const waiters: { event: string; resolve(e: ChildEvent): void }[] = [];
  let partial = '';
  p.stdout!.on('data', (d: Buffer) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const e = JSON.parse(l) as ChildEvent;
      events.push(e);
      for (const w of waiters.filter((x) => x.event === e.event)) w.resolve(e);
    }
  });
  const exited = new Promise<number | string>((res) => p.on('exit', (code, signal) => res(code ?? signal ?? -1)));
  return {
    pid: p.pid!,
    events,
    exited,
    on: (event) => {
      const seen = events.find((e) => e.event === event);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ event, resolve }));
    },
    kill: (signal) => p.kill(signal),
  };
}

const names = (c: Contender) => c.events.map((e) => e.event);

describe('run lock, real processes', () => {
  it('two runs started together with no wait: exactly one holds it, the other exits 1 naming the holder PID and start time', async () => {
    const { inventory, folder } = await fixture();
    const [a, b] = [contender(inventory, folder, 0, 1500), contender(inventory, folder, 0, 1500)];
    const codes = await Promise.all([a!.exited, b!.exited]);
    const winner = names(a!).includes('acquired') ? a! : b!;
    const loser = winner === a ? b! : a!;
    expect(codes.sort()).toEqual([0, 1]);
    expect(names(winner)).toEqual(['acquired', 'releasing']);
    expect(names(loser)).toEqual(['refused']);
    const refused = loser.events[0]!;
    const acquired = winner.events[0]!;
    expect(refused.holderPid).toBe(winner.pid);
    expect(refused.message).toContain(`PID ${winner.pid} on ${hostname()}, started ${acquired.startedAt as string}`);
    expect(refused.message).toContain('did not wait');
    expect(existsSync(runLockPath(folder, inventory).path)).toBe(false);
  });

  it('with a timeout, the second waits, names whom it waits for, and takes the lock only after the first released it', async () => {
    const { inventory, folder } = await fixture();
    const first = contender(inventory, folder, 10_000, 800);
    await first.on('acquired');
    const second = contender(inventory, folder, 10_000, 100);
    expect(await Promise.all([first.exited, second.exited])).toEqual([0, 0]);
    expect(names(second)).toEqual(['waiting', 'acquired', 'releasing']);
    expect(second.events[0]!.holderPid).toBe(first.pid);
    const released = first.events.find((e) => e.event === 'releasing')!;
    const acquired = second.events.find((e) => e.event === 'acquired')!;
    expect(acquired.t).toBeGreaterThanOrEqual(released.t);
    expect(acquired.waitedFor).toBe(first.pid);
  });

  it('a wait that runs out exits 1 saying how long it waited and who holds it', async () => {
    const { inventory, folder } = await fixture();
    const first = contender(inventory, folder, 0, 3000);
    await first.on('acquired');
    const second = contender(inventory, folder, 500, 0);
    expect(await second.exited).toBe(1);
    const refused = second.events.find((e) => e.event === 'refused')!;
    expect(refused.message).toMatch(new RegExp(`PID ${first.pid} .* waited 0\\.[5-9] s`));
    first.kill('SIGTERM');
    await first.exited;
  });

  it('a lock left by a killed process (SIGKILL) is stale: the next run takes it over at once', async () => {
    const { inventory, folder } = await fixture();
    const dead = contender(inventory, folder, 0, 60_000);
    await dead.on('acquired');
    dead.kill('SIGKILL');
    expect(await dead.exited).toBe('SIGKILL');
    const lockFile = runLockPath(folder, inventory).path;
    expect(JSON.parse(await readFile(lockFile, 'utf8'))).toMatchObject({ pid: dead.pid, hostname: hostname() });

    // Three at once on the stale lock: one takes it, the others find it live and give up.
    const next = [contender(inventory, folder, 0, 1000), contender(inventory, folder, 0, 1000), contender(inventory, folder, 0, 1000)];
    const codes = await Promise.all(next.map((c) => c.exited));
    expect(codes.filter((c) => c === 0)).toHaveLength(1);
    const winner = next[codes.indexOf(0)]!;
    expect(names(winner).filter((n) => n !== 'takeover')).toEqual(['acquired', 'releasing']);
    expect(
      next
        .flatMap((c) => c.events)
        .filter((e) => e.event === 'takeover')
        .map((e) => e.stalePid),
    ).toEqual([dead.pid]);
    for (const loser of next.filter((c) => c !== winner)) {
      expect(loser.events.at(-1)).toMatchObject({ event: 'refused', holderPid: winner.pid });
    }
  });

  it('SIGTERM and SIGINT release the lock, and the process still dies of the signal', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const { inventory, folder } = await fixture();
      const holder = contender(inventory, folder, 0, 60_000);
      await holder.on('acquired');
      expect(existsSync(runLockPath(folder, inventory).path)).toBe(true);
      holder.kill(signal);
      expect(await holder.exited).toBe(signal);
      expect(existsSync(runLockPath(folder, inventory).path)).toBe(false);
    }
  });

  it('a program that stops gracefully on SIGTERM keeps the lock until it exits', async () => {
    const { inventory, folder } = await fixture();
    const lockFile = runLockPath(folder, inventory).path;
    const holder = contender(inventory, folder, 0, 60_000, true);
    await holder.on('acquired');
    holder.kill('SIGTERM');
    await holder.on('stopping');
    expect(existsSync(lockFile)).toBe(true);
    const meanwhile = contender(inventory, folder, 0, 0);
    expect(await meanwhile.exited).toBe(1);
    expect(meanwhile.events.at(-1)).toMatchObject({ event: 'refused', holderPid: holder.pid });
    expect(await holder.exited).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });
});

describe('run lock, in process', () => {
  it('keys the lock by the inventory real path: a symlink and the file share it; another inventory does not', async () => {
    const { inventory, folder } = await fixture();
    const link = join(root, `link-${seq}.yaml`);
    await symlink(inventory, link);
    const other = join(root, `other-${seq}.yaml`);
    await writeFile(other, 'all: {}\n');

    const lock = await acquireRunLock({ inventoryPath: link, folder, timeoutMs: 0 });
    try {
      expect(lock.path).toBe(runLockPath(folder, inventory).path);
      expect(lock.holder.inventory).toBe(inventory);
      const err = await acquireRunLock({ inventoryPath: inventory, folder, timeoutMs: 0 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RunLockHeldError);
      const otherLock = await acquireRunLock({ inventoryPath: other, folder, timeoutMs: 0 });
      otherLock.release();
    } finally {
      lock.release();
    }
    expect(existsSync(lock.path)).toBe(false);
    // Released: free again.
    (await acquireRunLock({ inventoryPath: inventory, folder, timeoutMs: 0 })).release();
  });

  it('by default lives beside the inventory as .reconcile.lock (inside an inventory folder); RECONCILE_LOCK_DIR moves it', async () => {
    const { inventory } = await fixture();
    const folderInventory = join(root, `inv-folder-${seq}`);
    await mkdir(folderInventory);
    expect(runLockLocation(inventory, {})).toEqual({ path: join(root, `case-${seq}`, '.reconcile.lock'), inventory, beside: true });
    expect(runLockLocation(`${folderInventory}/`, {}).path).toBe(join(folderInventory, '.reconcile.lock'));
    const elsewhere = join(root, 'elsewhere');
    expect(runLockLocation(inventory, { RECONCILE_LOCK_DIR: elsewhere })).toEqual({ ...runLockPath(elsewhere, inventory), beside: false });

    const lock = await acquireRunLock({ inventoryPath: inventory, env: {}, timeoutMs: 0 });
    expect(JSON.parse(await readFile(join(root, `case-${seq}`, '.reconcile.lock'), 'utf8'))).toMatchObject({ pid: process.pid, inventory });
    lock.release();
    expect(existsSync(lock.path)).toBe(false);
  });

  it('a lock file left half-written (unreadable) is stale once it is older than a few seconds', async () => {
    const { inventory, folder } = await fixture();
    await mkdir(folder, { recursive: true });
    const lockFile = runLockPath(folder, inventory).path;
    await writeFile(lockFile, '');
    const fresh = await acquireRunLock({ inventoryPath: inventory, folder, timeoutMs: 0 }).catch((e: unknown) => e);
    expect(fresh).toBeInstanceOf(RunLockHeldError);
    expect((fresh as Error).message).toContain('holder unknown (lock file being written)');
    const tenSecondsAgo = new Date(Date.now() - 10_000);
    await utimes(lockFile, tenSecondsAgo, tenSecondsAgo);
    const taken: unknown[] = [];
    const lock = await acquireRunLock({ inventoryPath: inventory, folder, timeoutMs: 0, onStaleTakeover: (h) => taken.push(h) });
    expect(taken).toEqual([undefined]);
    lock.release();
  });

  it('does not remove a lock that another run took over meanwhile', async () => {
    const { inventory, folder } = await fixture();
    const lock = await acquireRunLock({ inventoryPath: inventory, folder, timeoutMs: 0 });
    const foreign = { pid: 1, startedAt: new Date().toISOString(), hostname: hostname(), inventory, token: 'someone-else' };
    await writeFile(lock.path, JSON.stringify(foreign));
    lock.release();
    expect(JSON.parse(await readFile(lock.path, 'utf8'))).toEqual(foreign);
    await rm(lock.path);
  });
});
