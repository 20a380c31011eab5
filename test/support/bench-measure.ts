/**
 * Measuring for the benchmark: wall-clock time of a child process (from spawn to exit), its
 * peak memory (max RSS, from GNU time, else by polling /proc/PID/status VmHWM), its output
 * lines stamped with their arrival time (the CLI's log lines mark its phases), the OpenSSH
 * floor, medians, and a summary of a V8 CPU profile.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface OutputLine {
  /** Milliseconds since spawn when the line arrived. */
  atMs: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface TimedRun {
  wallMs: number;
  exitCode: number;
  /** Peak resident memory of the measured process, in kB (undefined when not measured). */
  maxRssKb?: number;
  /** CPU time (user + system) of the process and the children it waited for, from GNU time. */
  cpuMs?: number;
  /** CPU time the lab's sshd and incusd spent meanwhile (set by the caller, see labDaemonsCpuMs). */
  hostCpuMs?: number;
  stdout: string;
  stderr: string;
  lines: OutputLine[];
}

const GNU_TIME = '/usr/bin/time';

export interface TimedRunOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Measure the peak RSS and CPU time of the command (through GNU time when installed). */
  memory: boolean;
  /** Scratch folder for GNU time's output. */
  scratch: string;
}

let runCounter = 0;

export async function timedRun(command: string, args: string[], options: TimedRunOptions): Promise<TimedRun> {
  const useGnuTime = options.memory && existsSync(GNU_TIME);
  const rssFile = join(options.scratch, `rss-${process.pid}-${++runCounter}.txt`);
  const argv = useGnuTime ? ['-f', '%M %U %S', '-o', rssFile, command, ...args] : args;
  const started = process.hrtime.bigint();
  const child = spawn(useGnuTime ? GNU_TIME : command, argv, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  const lines: OutputLine[] = [];
  const text = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr'] as const) {
    let partial = '';
    child[stream].setEncoding('utf8');
    child[stream].on('data', (chunk: string) => {
      const at = elapsed();
      text[stream] += chunk;
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) lines.push({ atMs: at, stream, text: p });
    });
  }
  let polledHwmKb: number | undefined;
  const poller = options.memory && !useGnuTime ? setInterval(() => void pollHwm(child.pid).then((kb) => (polledHwmKb = kb ?? polledHwmKb)), 10) : undefined;
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const wallMs = elapsed();
  if (poller) clearInterval(poller);
  let maxRssKb = polledHwmKb;
  let cpuMs: number | undefined;
  if (useGnuTime) {
    const out = await readFile(rssFile, 'utf8').catch(() => '');
    await rm(rssFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the format when it fails.
    const [kb, user, sys] = (out.trim().split('\n').pop() ?? '').split(' ').map(Number);
    if (kb !== undefined && Number.isFinite(kb) && kb > 0) maxRssKb = kb;
    if (user !== undefined && sys !== undefined && Number.isFinite(user + sys)) cpuMs = (user + sys) * 1000;
  }
  return { wallMs, exitCode, maxRssKb, cpuMs, stdout: text.stdout, stderr: text.stderr, lines };
}

async function pollHwm(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(status);
  return m ? Number(m[1]) : undefined;
}

/**
 * The floor: every host at once, `incus query /1.0/certificates?recursion=1` through OpenSSH
 * over a fresh connection each (no ControlMaster), started by one small shell so that the cost
 * of starting N processes is the shell's, as when a user types the loop. Outputs land in
 * outDir/HOST.json so the first run can be checked.
 */
export function floorScript(): string {
  return [
    'cfg=$1; out=$2; shift 2',
    'pids=()',
    'for h in "$@"; do',
    `  ssh -F "$cfg" -o ControlMaster=no -o ControlPath=none -o BatchMode=yes "$h" "incus query '/1.0/certificates?recursion=1'" >"$out/$h.json" 2>"$out/$h.err" &`,
    '  pids+=($!)',
    'done',
    'rc=0',
    'for p in "${pids[@]}"; do wait "$p" || rc=1; done',
    'exit $rc',
  ].join('\n');
}

export async function runFloor(hosts: string[], sshConfig: string, outDir: string, env: NodeJS.ProcessEnv, scratch: string): Promise<TimedRun> {
  // Measured through GNU time too: its CPU time is that of the N ssh clients (bash waits for them).
  return timedRun('bash', ['-c', floorScript(), 'floor', sshConfig, outDir, ...hosts], { env, cwd: scratch, memory: true, scratch });
}

/**
 * CPU time used so far by the lab's daemons, in ms: every sshd and incusd that this process
 * started (its direct children), with what their exited children used (an sshd listener reaps
 * its per-connection processes, and through them the shells and `incus` clients they ran).
 * The difference around a run is the host side's work for it, which the wall clock on a shared
 * 2-core machine mixes with everyone else's.
 */
export async function labDaemonsCpuMs(): Promise<number> {
  const ticksPerSecond = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    if (comm !== 'sshd' && comm !== 'incusd') continue;
    // Fields after "(comm)": state ppid … utime(14) stime(15) cutime(16) cstime(17), counted from 1 with pid.
    const fields = stat.slice(close + 2).split(' ');
    if (Number(fields[1]) !== process.pid) continue;
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return (ticks * 1000) / ticksPerSecond;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A phase's boundaries, from the CLI's plain log lines (stderr without a terminal). */
export interface Phases {
  /** spawn → "checking|reconciling N host(s)": node start-up, imports, inventory load, validation, desired state. */
  startupAndLoadMs?: number;
  /** → the last "HOST: reading live state": every SSH connection up. */
  connectMs?: number;
  /** → the plan on stdout: every host's trust store read and planned. */
  observeAndPlanMs?: number;
  /** → the last per-host status line: apply (check mode: only reporting). */
  applyMs?: number;
  /** → process exit: closing, flushing, exit. */
  exitMs?: number;
}

/** Log lines may start with an ISO 8601 timestamp; the arrival time is what counts here. */
const TIMESTAMP = /^\d{4}-\d\d-\d\dT[\d:.]+Z /;

export function phasesOf(run: TimedRun): Phases {
  const log = run.lines.filter((l) => l.stream === 'stderr').map((l) => ({ atMs: l.atMs, text: l.text.replace(TIMESTAMP, '') }));
  const selected = log.find((l) => /^(checking|reconciling) \d+ host/.test(l.text));
  const reading = log.filter((l) => l.text.endsWith(': reading live state'));
  const planned = run.lines.find((l) => l.stream === 'stdout' && l.text.trim() !== '');
  const statuses = log.filter((l) => /^\S+: (ok|changed|drift|failed|unreachable|covered)\b/.test(l.text));
  const lastReading = reading.at(-1);
  const lastStatus = statuses.at(-1);
  const phases: Phases = {};
  if (selected) phases.startupAndLoadMs = selected.atMs;
  if (selected && lastReading) phases.connectMs = lastReading.atMs - selected.atMs;
  if (lastReading && planned) phases.observeAndPlanMs = planned.atMs - lastReading.atMs;
  if (planned && lastStatus) phases.applyMs = lastStatus.atMs - planned.atMs;
  if (lastStatus) phases.exitMs = run.wallMs - lastStatus.atMs;
  return phases;
}

export function medianPhases(all: Phases[]): Phases {
  const out: Phases = {};
  for (const key of ['startupAndLoadMs', 'connectMs', 'observeAndPlanMs', 'applyMs', 'exitMs'] as const) {
    const values = all.map((p) => p[key]).filter((v): v is number => v !== undefined);
    if (values.length > 0) out[key] = median(values);
  }
  return out;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  what: string;
  selfMs: number;
}

/**
 * Self time of a V8 CPU profile (node --cpu-prof), grouped by where the code lives: a package
 * under node_modules, a folder of our dist/, node's internals, or V8's pseudo-frames
 * ((garbage collector), (program), (idle) = waiting on I/O).
 */
export async function summarizeCpuProfile(file: string): Promise<{ totalMs: number; byPlace: ProfileEntry[]; byFunction: ProfileEntry[] }> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const nodeById = new Map(profile.nodes.map((n) => [n.id, n]));
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const frame = nodeById.get(id)?.callFrame;
    if (!frame) return;
    const place = placeOf(frame.url, frame.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  });
  const sorted = (m: Map<string, number>) => [...m.entries()].map(([what, us]) => ({ what, selfMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: total / 1000, byPlace: sorted(byPlace), byFunction: sorted(byFunction) };
}

function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const ours = /\/dist\/((?:src|test)\/[^/]+)/.exec(url);
  if (ours) return ours[1]!;
  return shortUrl(url);
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/');
}
