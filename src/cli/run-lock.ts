/**
 * One run per inventory at a time. Two runs applying to the same hosts at once would read the
 * same live state, plan the same actions and race each other's writes; a cron check overlapping
 * an apply would report half-applied drift. So every run holds a lock for its inventory.
 *
 * Where: `.reconcile.lock` beside the inventory (in the folder of an inventory file, inside an
 * inventory folder), found through the inventory's real path, so `-i inv`, `-i ./inv/` and a
 * symlink share one lock, and so do a systemd timer, cron and a login shell, whatever their
 * environment. Inventories in one folder take turns. When that folder is not writable (a
 * read-only checkout), or $RECONCILE_LOCK_DIR is set, the lock is `<name>-<hash of the real
 * path>.lock` in $RECONCILE_LOCK_DIR, /run/reconcile (root) or <tmpdir>/reconcile-<uid>.
 * The file holds the holder's PID, start time and host name as JSON.
 *
 * - Created with O_EXCL: exactly one process creates it.
 * - Held by a live process: the next run waits up to its timeout, then fails naming the holder.
 * - Held by a dead process (same host, PID gone or reused since): stale, taken over. Taking over
 *   goes through a second O_EXCL file so two waiters cannot both delete and recreate it.
 * - Released when the run ends, on process exit, and on SIGINT/SIGTERM/SIGHUP (at once when
 *   nothing else handles the signal; else when the program, stopping gracefully, ends or exits).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** What the lock file says (JSON). */
export interface LockHolder {
  pid: number;
  /** ISO 8601, when the holder took the lock. */
  startedAt: string;
  hostname: string;
  /** The inventory's real path. */
  inventory: string;
  /** Random token: a release only removes the lock it created. */
  token: string;
}

export interface RunLockOptions {
  /** The -i argument (file or folder). */
  inventoryPath: string;
  /** Folder of lock files keyed by inventory; default: beside the inventory (see runLockLocation). */
  folder?: string;
  /** For the default location: RECONCILE_LOCK_DIR. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for a live holder; 0 fails at once. */
  timeoutMs: number;
  /** How often to look again while waiting (default 200 ms). */
  pollMs?: number;
  /** Called once, when a live run holds the lock and this one starts waiting. */
  onWait?(holder: LockHolder, lockFile: string, timeoutMs: number): void;
  /** Called when a stale lock (its holder is gone) is taken over. */
  onStaleTakeover?(holder: LockHolder | undefined, lockFile: string): void;
  now?: () => Date;
}

export interface RunLock {
  path: string;
  holder: LockHolder;
  /** How long acquiring waited for another run (0 when the lock was free). */
  waitedMs: number;
  /** The run that held the lock while this one waited, if any. */
  waitedFor?: LockHolder;
  /** Idempotent. */
  release(): void;
}

/** The lock is held by another live run and the wait ran out. Exit code 1, one line. */
export class RunLockHeldError extends UsageError {
  constructor(
    readonly holder: LockHolder | undefined,
    readonly lockFile: string,
    readonly waitedMs: number,
    timeoutMs: number,
  ) {
    super(
      `another reconcile run holds the lock for ${holder?.inventory ?? 'this inventory'}: ` +
        (holder ? `PID ${holder.pid} on ${holder.hostname}, started ${holder.startedAt}` : 'holder unknown (lock file being written)') +
        ` (lock file ${lockFile}); ${timeoutMs > 0 ? `waited ${(waitedMs / 1000).toFixed(1)} s` : 'did not wait (--lock-timeout 0)'}` +
        `; nothing was done (raise --lock-timeout to wait longer)`,
    );
  }
}

/** Default --lock-timeout: long enough for a cron check to outwait a typical run, short enough to notice a stuck one. */
export const DEFAULT_LOCK_TIMEOUT_SECONDS = 30;

/** --lock-timeout SECONDS: a whole number, 0 or more. */
export function parseLockTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LOCK_TIMEOUT_SECONDS;
  if (!/^\d+$/.test(value)) throw new UsageError(`--lock-timeout takes a whole number of seconds (0 or more), not '${value}'`);
  return Number(value);
}

/** A lock file that cannot be half-written for longer than this is stale when unreadable. */
const UNREADABLE_STALE_MS = 5_000;
const TAKEOVER_STALE_MS = 10_000;

/** Where lock files live when not beside the inventory. */
export function runLockFolder(env: NodeJS.ProcessEnv): string {
  if (env.RECONCILE_LOCK_DIR) return resolve(env.RECONCILE_LOCK_DIR);
  const uid = process.getuid?.() ?? -1;
  if (uid === 0 && existsSync('/run')) return '/run/reconcile';
  return join(os.tmpdir(), `reconcile-${uid}`);
}

/**
 * The lock file of an inventory: `.reconcile.lock` beside it when that folder is writable and
 * RECONCILE_LOCK_DIR is unset, else a keyed file in runLockFolder(env).
 */
export function runLockLocation(inventoryPath: string, env: NodeJS.ProcessEnv): { path: string; inventory: string; beside: boolean } {
  const real = realPath(inventoryPath);
  if (!env.RECONCILE_LOCK_DIR) {
    let folder: string | undefined;
    try {
      folder = statSync(real).isDirectory() ? real : dirname(real);
      accessSync(folder, constants.W_OK);
    } catch {
      folder = undefined;
    }
    if (folder !== undefined) return { path: join(folder, '.reconcile.lock'), inventory: real, beside: true };
  }
  return { ...runLockPath(runLockFolder(env), inventoryPath), beside: false };
}

function realPath(inventoryPath: string): string {
  try {
    return realpathSync(resolve(inventoryPath));
  } catch {
    // A missing inventory fails later with its own message; lock on the path as given.
    return resolve(inventoryPath);
  }
}

/** The lock file of an inventory in a lock folder: `<name>-<sha256(real path), 16 hex>.lock`. */
export function runLockPath(folder: string, inventoryPath: string): { path: string; inventory: string } {
  const real = realPath(inventoryPath);
  const key = createHash('sha256').update(real).digest('hex').slice(0, 16);
  const name = basename(real).replace(/[^A-Za-z0-9_.-]/g, '_') || 'inventory';
  return { path: join(folder, `${name}-${key}.lock`), inventory: real };
}

export async function acquireRunLock(options: RunLockOptions): Promise<RunLock> {
  const now = options.now ?? (() => new Date());
  let location: { path: string; inventory: string; beside: boolean };
  if (options.folder !== undefined) location = { ...runLockPath(options.folder, options.inventoryPath), beside: false };
  else location = runLockLocation(options.inventoryPath, options.env ?? process.env);
  if (!location.beside) ensureFolder(dirname(location.path));
  const { path, inventory } = location;
  const pollMs = options.pollMs ?? 200;
  const began = Date.now();
  let waitedFor: LockHolder | undefined;

  for (;;) {
    const holder: LockHolder = { pid: process.pid, startedAt: now().toISOString(), hostname: os.hostname(), inventory, token: randomBytes(8).toString('hex') };
    if (tryCreate(path, holder)) {
      const waitedMs = Date.now() - began;
      const lock = held(path, holder, waitedMs);
      if (waitedFor) lock.waitedFor = waitedFor;
      return lock;
    }
    const current = readLock(path);
    if (current === 'missing') continue;
    if (isStale(current, path)) {
      if (takeOver(path, current)) options.onStaleTakeover?.(current === 'unreadable' ? undefined : current, path);
      else await sleep(pollMs);
      continue;
    }
    // Created (O_EXCL) but not written yet: its holder is a moment away from naming itself.
    if (current === 'unreadable' && Date.now() - began < options.timeoutMs + 1_000) {
      await sleep(10);
      continue;
    }
    const holderNow = current === 'unreadable' ? undefined : current;
    const waited = Date.now() - began;
    if (waited >= options.timeoutMs) throw new RunLockHeldError(holderNow, path, waited, options.timeoutMs);
    if (holderNow && (!waitedFor || waitedFor.token !== holderNow.token)) {
      if (!waitedFor) options.onWait?.(holderNow, path, options.timeoutMs);
      waitedFor = holderNow;
    }
    await sleep(Math.min(pollMs, Math.max(1, options.timeoutMs - waited)));
  }
}

function ensureFolder(folder: string): void {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const st = lstatSync(folder);
  const uid = process.getuid?.();
  // A shared temporary folder: refuse a symlink or a folder someone else planted there.
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid && st.uid !== 0)) {
    throw new UsageError(`run lock folder ${folder} is not a folder owned by this user; set RECONCILE_LOCK_DIR`);
  }
}

function tryCreate(path: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new UsageError(`cannot create the run lock ${path}: ${(e as Error).message}`);
  }
  try {
    // Not fsynced (1–10 ms of every run on a virtual disk): other processes see it at once, and a
    // power cut leaves it empty at worst, which counts as stale after UNREADABLE_STALE_MS.
    writeSync(fd, JSON.stringify(holder) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(path: string): LockHolder | 'unreadable' | 'missing' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return 'unreadable';
  }
  try {
    const v = JSON.parse(text) as LockHolder;
    if (typeof v.pid === 'number' && typeof v.startedAt === 'string' && typeof v.hostname === 'string' && typeof v.token === 'string') return v;
  } catch {
    /* being written, or garbage */
  }
  return 'unreadable';
}

function isStale(current: LockHolder | 'unreadable', path: string): boolean {
  if (current === 'unreadable') {
    // Created with O_EXCL and written right after: unreadable for long means its writer died.
    try {
      return Date.now() - statSync(path).mtimeMs > UNREADABLE_STALE_MS;
    } catch {
      return false;
    }
  }
  // Another machine's PID cannot be checked from here: a live holder until removed by hand.
  if (current.hostname !== os.hostname()) return false;
  if (!processAlive(current.pid)) return true;
  // The PID lives, but a process started after the lock was taken is a reuse of that PID.
  const started = processStartTime(current.pid);
  return started !== undefined && started.getTime() > Date.parse(current.startedAt) + 2_000;
}

/** Deletes a stale lock, once, under a second O_EXCL file; true when this process did it. */
function takeOver(path: string, seen: LockHolder | 'unreadable'): boolean {
  const guard = `${path}.takeover`;
  let fd: number;
  try {
    fd = openSync(guard, 'wx', 0o600);
  } catch {
    // Another waiter is taking over; a guard left by a crash is cleared after a while.
    try {
      if (Date.now() - statSync(guard).mtimeMs > TAKEOVER_STALE_MS) unlinkSync(guard);
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
  closeSync(fd);
  try {
    const again = readLock(path);
    // Only if it is still the stale lock we judged: another waiter may have replaced it already.
    const same = again === seen || (again !== 'missing' && again !== 'unreadable' && seen !== 'unreadable' && again.token === seen.token);
    if (!same) return false;
    try {
      unlinkSync(path);
    } catch {
      /* gone meanwhile */
    }
    return true;
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      /* ignore */
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, owned by someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Linux: boot time + the process's start in clock ticks (/proc/PID/stat field 22). */
function processStartTime(pid: number): Date | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    // USER_HZ is 100 on every Linux architecture Node runs on.
    return new Date((btime + ticks / 100) * 1000);
  } catch {
    return undefined;
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function held(path: string, holder: LockHolder, waitedMs: number): RunLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    for (const s of SIGNALS) process.removeListener(s, onSignal[s]);
    const current = readLock(path);
    if (current !== 'missing' && current !== 'unreadable' && current.token === holder.token) {
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
  };
  // A signal nobody else handles would kill the process without running 'exit' handlers: release,
  // then die of the same signal (exit status 128+n). When the program handles it (a graceful stop
  // that lets actions in flight finish), the run still holds the lock until it ends or exits.
  const onSignal = Object.fromEntries(
    SIGNALS.map((s) => [
      s,
      () => {
        if (process.listenerCount(s) > 1) return;
        release();
        process.kill(process.pid, s);
      },
    ]),
  ) as Record<(typeof SIGNALS)[number], () => void>;
  process.on('exit', release);
  for (const s of SIGNALS) process.on(s, onSignal[s]);
  return { path, holder, waitedMs, release };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
