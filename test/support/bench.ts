/**
 * `npm run bench -- [--hosts N] [--certs M] [--runs R] [--forks F] [--json FILE] [--sweep] [--profile DIR]`
 *
 * Brings up N real lab hosts (sshd + incusd each) trusting M client certificates, then measures,
 * alternating the scenarios round after round (R rounds after one warm-up round, medians):
 *   floor        N concurrent `ssh HOST incus query /1.0/certificates?recursion=1` (OpenSSH, fresh connections)
 *   tight floor  one Node process, one ssh2 connection per host all at once, one GET of the trust store
 *                over the forwarded Incus socket (tight-floor.ts): the least any SSH-based reconciler can do
 *   check-sync   `reconcile --check` with an inventory naming exactly the M certificates (exit 0)
 *   check-drift  `reconcile --check` with 2 adds, 1 update, 1 remove per host (exit 2)
 *   apply-drift  `reconcile` applying that drift (exit 0); the hosts are reset after each one
 * and prints each median, its ratio to the floor, the tool's peak RSS and its phases (from its
 * log lines). --sweep adds how time grows with N (10/30/100, up to --hosts) and with M (5/20/100).
 * --profile DIR writes V8 CPU profiles of one check and one apply and prints where the time went.
 * --plot FILE (with --sweep) writes an SVG of wall time against hosts: reconcile --check, both floors.
 * Exit code: 0 when every run did what it should (the goals are reported, not enforced), 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLab } from '../lab/lab.js';
import { measureWatch, type WatchBench } from './bench-watch.js';
import type { Lab, LabHost } from '../lab/types.js';
import {
  closeIncusAgents,
  driftedEntries,
  generateCertificates,
  setTrustStores,
  undoDrift,
  verifyDriftApplied,
  trustBenchClient,
  BENCH_CLIENT,
  inSyncEntries,
  verifyInSync,
  writeBenchInventory,
  type BenchCertificates,
} from './bench-fixture.js';
import { hostsPlotSvg } from './bench-plot.js';
import { labDaemonsCpuMs, median, medianPhases, phasesOf, runFloor, summarizeCpuProfile, timedRun, type Phases, type TimedRun } from './bench-measure.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * Goals of issue 8 (ratios to the OpenSSH floor) and of issue 12 (ratios to the tight floor, wall
 * and CPU time, and peak memory), all measured in the same run.
 */
const GOALS = {
  checkInSyncRatio: 1.3,
  applyDriftRatio: 2,
  peakRssMbAt100Hosts: 150,
  checkInSyncTightWall: 1.1,
  checkInSyncTightCpu: 1.3,
  peakRssTightAt100Hosts: 1.2,
};

interface BenchOptions {
  hosts: number;
  certs: number;
  runs: number;
  forks: number;
  json?: string;
  sweep: boolean;
  profileDir?: string;
  /** ssh (the real thing) or local (the tool against each incusd socket, without its transport). */
  connection: 'ssh' | 'local';
  /** The CLI entry measured (default: this repository's bin/reconcile.js); another build for an A/B comparison. */
  cli: string;
  /** --plot FILE: an SVG of wall time against hosts (needs --sweep). */
  plot?: string;
  /** --sweep-certs 5,20,100: the certificate counts of the sweep. */
  sweepCerts: number[];
  /** reconcile watch: latency rounds, and the events its memory is measured after (0: not measured). */
  watchRounds: number;
  watchEvents: number;
}

type ScenarioName = 'floor' | 'tightFloor' | 'tightFloorServerInfo' | 'checkInSync' | 'checkInSyncHttps' | 'checkDrift' | 'applyDrift';

const SCENARIO_LABEL: Record<ScenarioName, string> = {
  floor: 'floor: ssh HOST incus query',
  tightFloor: 'tight floor: ssh2, one GET per host',
  tightFloorServerInfo: 'tight floor + GET /1.0 per host',
  checkInSync: 'reconcile --check, in sync',
  checkInSyncHttps: 'reconcile --check over HTTPS, in sync',
  checkDrift: 'reconcile --check, drift',
  applyDrift: 'reconcile, apply drift',
};

interface ScenarioResult {
  label: string;
  samplesMs: number[];
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** median / the floor's median. */
  ratio: number;
  /** median / the tight floor's median, and the same for client CPU time. */
  tightRatio?: number;
  tightCpuRatio?: number;
  /** Largest max RSS of the tool over the runs, in MB (absent for the floor). */
  peakRssMb?: number;
  /**
   * Median CPU time (user + system) on the client side: the tool's node process, or for the
   * floor the N ssh clients. sshd and incusd on the hosts are not in it.
   */
  clientCpuMs?: number;
  /** Median CPU time of the lab's sshd and incusd (and what they ran) during the run: the host side's work. */
  hostCpuMs?: number;
  phases?: Phases;
}

interface SweepCell {
  hosts: number;
  certs: number;
  floorMs: number;
  tightFloorMs: number;
  /** check in sync / tight floor, wall and client CPU. */
  checkInSyncTightRatio: number;
  checkInSyncTightCpuRatio: number;
  checkInSyncMs: number;
  applyDriftMs: number;
  checkInSyncRatio: number;
  applyDriftRatio: number;
  peakRssMb: number;
}

interface BenchReport {
  tool: 'reconcile bench';
  date: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string };
  /** 1-minute load average when the measuring began and ended: others' work on the machine skews timings. */
  loadAverage: { start: number; end: number };
  hosts: number;
  certs: number;
  runs: number;
  forks: number;
  connection: 'ssh' | 'local';
  labStartMs: number;
  registerMs: number;
  startup: { nodeMs: number; versionMs: number };
  scenarios: Record<ScenarioName, ScenarioResult>;
  goals: { name: string; limit: number; value: number | null; met: boolean | null; note?: string }[];
  sweep?: SweepCell[];
  watch?: WatchBench;
  profile?: Record<string, { totalMs: number; byPlace: { what: string; selfMs: number }[]; topFunctions: { what: string; selfMs: number }[] }>;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      hosts: { type: 'string' },
      certs: { type: 'string' },
      runs: { type: 'string' },
      forks: { type: 'string' },
      json: { type: 'string' },
      sweep: { type: 'boolean' },
      profile: { type: 'string' },
      connection: { type: 'string' },
      cli: { type: 'string' },
      plot: { type: 'string' },
      'sweep-certs': { type: 'string' },
      'watch-rounds': { type: 'string' },
      'watch-events': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'Usage: npm run bench -- [--hosts N=30] [--certs M=20] [--runs R=5] [--forks F=N] [--json FILE] [--sweep] [--profile DIR] [--connection ssh|local] [--cli PATH] [--plot FILE.svg] [--sweep-certs 5,20,100] [--watch-rounds 10] [--watch-events 10000 (0: no watch measurement)]\n',
    );
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} takes a whole number ≥ ${min}, got "${raw}"`);
    return n;
  };
  const hosts = int('hosts', values.hosts, 30, 1);
  const connection = values.connection ?? 'ssh';
  if (connection !== 'ssh' && connection !== 'local') throw new Error(`--connection takes ssh or local, got "${connection}"`);
  return {
    connection,
    cli: resolve(values.cli ?? join(REPO, 'bin', 'reconcile.js')),
    hosts,
    certs: int('certs', values.certs, 20, 2),
    runs: int('runs', values.runs, 5, 1),
    forks: int('forks', values.forks, hosts, 1),
    json: values.json !== undefined ? resolve(values.json) : undefined,
    sweep: values.sweep ?? false,
    profileDir: values.profile !== undefined ? resolve(values.profile) : undefined,
    plot: values.plot !== undefined ? resolve(values.plot) : undefined,
    sweepCerts: (values['sweep-certs'] ?? '5,20,100').split(',').map((c) => int('sweep-certs', c, 0, 2)),
    watchRounds: int('watch-rounds', values['watch-rounds'], 10, 1),
    watchEvents: int('watch-events', values['watch-events'], 10_000, 0),
  };
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** The parts of a bench run that scenarios share. */
interface BenchContext {
  lab: Lab;
  dir: string;
  scratch: string;
  sshConfig: string;
  certs: BenchCertificates;
  forks: number;
  connection: 'ssh' | 'local';
  cli: string;
}

interface HostSet {
  hosts: LabHost[];
  certs: number;
  syncInventory: string;
  driftInventory: string;
  /** The same hosts and certificates reached through their HTTPS API instead of SSH. */
  httpsInventory: string;
  /** The tight floor's host list (tight-floor.ts). */
  tightHosts: string;
}

async function hostSet(ctx: BenchContext, hosts: LabHost[], certs: number): Promise<HostSet> {
  const tag = `${hosts.length}x${certs}`;
  const tightHosts = join(ctx.scratch, `tight-${tag}.json`);
  const list = hosts.map((h) => ({
    name: h.name,
    address: h.address,
    port: h.sshPort,
    user: h.user,
    socket: h.incusSocket,
    hostKeyFingerprint: h.hostKeyFingerprint,
  }));
  await writeFile(tightHosts, JSON.stringify(list));
  return {
    hosts,
    certs,
    tightHosts,
    syncInventory: await writeBenchInventory(ctx.dir, `inventory-sync-${tag}.yaml`, hosts, inSyncEntries(ctx.certs, certs), ctx.connection),
    driftInventory: await writeBenchInventory(ctx.dir, `inventory-drift-${tag}.yaml`, hosts, driftedEntries(ctx.certs, certs), ctx.connection),
    httpsInventory: await writeBenchInventory(ctx.dir, `inventory-https-${tag}.yaml`, hosts, inSyncEntries(ctx.certs, certs), 'https'),
  };
}

class BenchFailure extends Error {}

function expectExit(what: string, run: TimedRun, expected: number): void {
  if (run.exitCode === expected) return;
  const tail = (s: string) => s.trim().split('\n').slice(-15).join('\n');
  throw new BenchFailure(
    `${what}: exit code ${run.exitCode}, expected ${expected}\n--- stdout (tail)\n${tail(run.stdout)}\n--- stderr (tail)\n${tail(run.stderr)}`,
  );
}

async function floor(ctx: BenchContext, set: HostSet, validate: boolean): Promise<TimedRun> {
  const out = join(ctx.scratch, 'floor');
  await mkdir(out, { recursive: true });
  const run = await withHostCpu(() =>
    runFloor(
      set.hosts.map((h) => h.name),
      ctx.sshConfig,
      out,
      ctx.lab.env,
      ctx.scratch,
    ),
  );
  if (run.exitCode !== 0 || validate) {
    for (const h of set.hosts) {
      const text = await readFile(join(out, `${h.name}.json`), 'utf8').catch(() => '');
      let count = -1;
      try {
        count = (JSON.parse(text) as unknown[]).length;
      } catch {
        // reported below
      }
      if (count !== storeSize(set)) {
        const err = await readFile(join(out, `${h.name}.err`), 'utf8').catch(() => '');
        throw new BenchFailure(`floor: ${h.name} answered ${count < 0 ? 'no JSON list' : `${count} certificates`}, expected ${storeSize(set)}: ${err.trim()}`);
      }
    }
  }
  expectExit('floor', run, 0);
  return run;
}

/** What each host trusts: the set's certificates and the one the HTTPS scenario authenticates with. */
function storeSize(set: HostSet): number {
  return set.certs + 1;
}

const TIGHT_FLOOR = join(REPO, 'dist', 'test', 'support', 'tight-floor.js');

/**
 * The tight floor; with `serverInfo` it reads GET /1.0 beside the trust store (cluster, daemon, API
 * extensions): what a check asked of every host until it asked only servers with changes to make.
 */
async function tightFloor(ctx: BenchContext, set: HostSet, serverInfo = false): Promise<TimedRun> {
  const key = join(ctx.lab.env.HOME ?? '', '.ssh', 'id_ed25519');
  const args = [TIGHT_FLOOR, set.tightHosts, key, ...(serverInfo ? ['--server-info'] : [])];
  const run = await withHostCpu(() => timedRun(process.execPath, args, { env: ctx.lab.env, cwd: ctx.dir, memory: true, scratch: ctx.scratch }));
  expectExit('tight floor', run, 0);
  const wrong = run.stdout
    .trim()
    .split('\n')
    .filter((l) => l.split(' ')[1] !== String(storeSize(set)));
  if (wrong.length > 0 || run.stdout.trim().split('\n').length !== set.hosts.length) {
    throw new BenchFailure(`tight floor: expected ${storeSize(set)} certificates from each of ${set.hosts.length} hosts, got:\n${run.stdout}${run.stderr}`);
  }
  return run;
}

async function reconcile(ctx: BenchContext, inventory: string, check: boolean, extraNodeArgs: string[] = []): Promise<TimedRun> {
  const args = [...extraNodeArgs, ctx.cli, '-i', inventory, '--forks', String(ctx.forks)];
  if (check) args.push('--check');
  return withHostCpu(() => timedRun(process.execPath, args, { env: ctx.lab.env, cwd: ctx.dir, memory: true, scratch: ctx.scratch }));
}

/**
 * Runs and records the CPU time the lab's daemons spent on it, its sessions' closing included.
 * Each run starts on a quiet lab: the previous run's sessions, still closing (at 100 hosts ~0.1 s
 * of both cores), were charged to whichever scenario came next, in its time and its hosts' CPU.
 */
async function withHostCpu(measure: () => Promise<TimedRun>): Promise<TimedRun> {
  const before = await quietLab();
  const run = await measure();
  run.hostCpuMs = (await quietLab()) - before;
  return run;
}

/** Waits (at most 2 s) until the lab's daemons used no CPU for 100 ms; their CPU time then. */
async function quietLab(): Promise<number> {
  let last = await labDaemonsCpuMs();
  for (let waited = 0; waited < 2_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await labDaemonsCpuMs();
    if (now === last) break;
    last = now;
  }
  return last;
}

async function checkInSync(ctx: BenchContext, set: HostSet): Promise<TimedRun> {
  const run = await reconcile(ctx, set.syncInventory, true);
  expectExit('reconcile --check (in sync)', run, 0);
  return run;
}

async function checkInSyncHttps(ctx: BenchContext, set: HostSet): Promise<TimedRun> {
  const run = await reconcile(ctx, set.httpsInventory, true);
  expectExit('reconcile --check over HTTPS (in sync)', run, 0);
  return run;
}

async function checkDrift(ctx: BenchContext, set: HostSet): Promise<TimedRun> {
  const run = await reconcile(ctx, set.driftInventory, true);
  expectExit('reconcile --check (drift)', run, 2);
  return run;
}

/** Applies the drift, optionally verifies every host independently, then resets the hosts. */
async function applyDrift(ctx: BenchContext, set: HostSet, verify: boolean, nodeArgs: string[] = []): Promise<TimedRun> {
  const run = await reconcile(ctx, set.driftInventory, false, nodeArgs);
  expectExit('reconcile (apply drift)', run, 0);
  if (verify) {
    const problems = await verifyDriftApplied(set.hosts, ctx.certs, set.certs);
    if (problems.length > 0) throw new BenchFailure(`after apply, the hosts are not as the drifted inventory says:\n${problems.slice(0, 10).join('\n')}`);
  }
  await undoDrift(set.hosts, ctx.certs, set.certs);
  if (verify) {
    const problems = await verifyInSync(set.hosts, ctx.certs, set.certs);
    if (problems.length > 0) throw new BenchFailure(`reset after apply failed:\n${problems.slice(0, 10).join('\n')}`);
  }
  return run;
}

function result(label: string, runs: TimedRun[], floorMedian: number, tight?: { wallMs: number; cpuMs?: number }): ScenarioResult {
  const samples = runs.map((r) => r.wallMs);
  const med = median(samples);
  const rss = runs.map((r) => r.maxRssKb).filter((k): k is number => k !== undefined);
  const r: ScenarioResult = {
    label,
    samplesMs: samples.map(round1),
    medianMs: round1(med),
    minMs: round1(Math.min(...samples)),
    maxMs: round1(Math.max(...samples)),
    ratio: round2(med / floorMedian),
  };
  const cpu = runs.map((r) => r.cpuMs).filter((c): c is number => c !== undefined);
  if (cpu.length > 0) r.clientCpuMs = round1(median(cpu));
  if (tight) {
    r.tightRatio = round2(med / tight.wallMs);
    if (r.clientCpuMs !== undefined && tight.cpuMs) r.tightCpuRatio = round2(median(cpu) / tight.cpuMs);
  }
  const hostCpu = runs.map((r) => r.hostCpuMs).filter((c): c is number => c !== undefined);
  if (hostCpu.length > 0) r.hostCpuMs = round1(median(hostCpu));
  if (rss.length > 0 && label !== SCENARIO_LABEL.floor) r.peakRssMb = round1(Math.max(...rss) / 1024);
  if (label !== SCENARIO_LABEL.floor && label !== SCENARIO_LABEL.tightFloor) r.phases = roundPhases(medianPhases(runs.map(phasesOf)));
  return r;
}

async function measureMain(ctx: BenchContext, set: HostSet, runs: number): Promise<Record<ScenarioName, ScenarioResult>> {
  log(`warm-up round (not counted)`);
  await floor(ctx, set, true);
  await tightFloor(ctx, set);
  await tightFloor(ctx, set, true);
  await checkInSync(ctx, set);
  await checkInSyncHttps(ctx, set);
  await checkDrift(ctx, set);
  await applyDrift(ctx, set, true);
  const samples: Record<ScenarioName, TimedRun[]> = {
    floor: [],
    tightFloor: [],
    tightFloorServerInfo: [],
    checkInSync: [],
    checkInSyncHttps: [],
    checkDrift: [],
    applyDrift: [],
  };
  for (let round = 1; round <= runs; round++) {
    const scenarios: [ScenarioName, () => Promise<TimedRun>][] = [
      ['floor', () => floor(ctx, set, false)],
      ['tightFloor', () => tightFloor(ctx, set)],
      ['tightFloorServerInfo', () => tightFloor(ctx, set, true)],
      ['checkInSync', () => checkInSync(ctx, set)],
      ['checkInSyncHttps', () => checkInSyncHttps(ctx, set)],
      ['checkDrift', () => checkDrift(ctx, set)],
      ['applyDrift', () => applyDrift(ctx, set, round === 1)],
    ];
    // Every other round in reverse order: no scenario always follows the same one (the OpenSSH
    // floor's 100 processes, say) or always comes early or late in a round.
    for (const [name, run] of round % 2 === 1 ? scenarios : scenarios.reverse()) samples[name].push(await run());
    log(
      `round ${round}/${runs}: floor ${ms(samples.floor.at(-1)!.wallMs)}, tight floor ${ms(samples.tightFloor.at(-1)!.wallMs)} (+ /1.0 ${ms(samples.tightFloorServerInfo.at(-1)!.wallMs)}), check in sync ${ms(samples.checkInSync.at(-1)!.wallMs)}, over HTTPS ${ms(samples.checkInSyncHttps.at(-1)!.wallMs)}, ` +
        `check drift ${ms(samples.checkDrift.at(-1)!.wallMs)}, apply drift ${ms(samples.applyDrift.at(-1)!.wallMs)}`,
    );
  }
  const floorMedian = median(samples.floor.map((r) => r.wallMs));
  const tight = tightMedians(samples.tightFloor);
  return {
    floor: result(SCENARIO_LABEL.floor, samples.floor, floorMedian),
    tightFloor: result(SCENARIO_LABEL.tightFloor, samples.tightFloor, floorMedian, tight),
    tightFloorServerInfo: result(SCENARIO_LABEL.tightFloorServerInfo, samples.tightFloorServerInfo, floorMedian, tight),
    checkInSync: result(SCENARIO_LABEL.checkInSync, samples.checkInSync, floorMedian, tight),
    checkInSyncHttps: result(SCENARIO_LABEL.checkInSyncHttps, samples.checkInSyncHttps, floorMedian, tight),
    checkDrift: result(SCENARIO_LABEL.checkDrift, samples.checkDrift, floorMedian, tight),
    applyDrift: result(SCENARIO_LABEL.applyDrift, samples.applyDrift, floorMedian, tight),
  };
}

function tightMedians(runs: TimedRun[]): { wallMs: number; cpuMs?: number } {
  const cpu = runs.map((r) => r.cpuMs).filter((c): c is number => c !== undefined);
  return { wallMs: median(runs.map((r) => r.wallMs)), ...(cpu.length > 0 ? { cpuMs: median(cpu) } : {}) };
}

async function measureStartup(ctx: BenchContext, runs: number): Promise<{ nodeMs: number; versionMs: number }> {
  const node: number[] = [];
  const version: number[] = [];
  for (let i = 0; i < runs; i++) {
    const opts = { env: ctx.lab.env, cwd: ctx.dir, memory: false, scratch: ctx.scratch };
    node.push((await timedRun(process.execPath, ['-e', '0'], opts)).wallMs);
    const v = await timedRun(process.execPath, [ctx.cli, '--version'], opts);
    expectExit('reconcile --version', v, 0);
    version.push(v.wallMs);
  }
  return { nodeMs: round1(median(node)), versionMs: round1(median(version)) };
}

/** How time grows with N and M: every (n, m) of the lists, floor / check in sync / apply drift. */
async function measureSweep(ctx: BenchContext, hostCounts: number[], certCounts: number[], runs: number): Promise<SweepCell[]> {
  const cells: SweepCell[] = [];
  for (const m of certCounts) {
    await setTrustStores(ctx.lab.hosts, ctx.certs, m);
    for (const n of hostCounts) {
      const set = await hostSet(ctx, ctx.lab.hosts.slice(0, n), m);
      await floor(ctx, set, true);
      await tightFloor(ctx, set);
      await checkInSync(ctx, set);
      const f: TimedRun[] = [];
      const t: TimedRun[] = [];
      const c: TimedRun[] = [];
      const a: TimedRun[] = [];
      for (let round = 1; round <= runs; round++) {
        f.push(await floor(ctx, set, false));
        t.push(await tightFloor(ctx, set));
        c.push(await checkInSync(ctx, set));
        a.push(await applyDrift(ctx, set, round === 1));
      }
      const fm = median(f.map((r) => r.wallMs));
      const cm = median(c.map((r) => r.wallMs));
      const am = median(a.map((r) => r.wallMs));
      const rss = Math.max(...[...c, ...a].map((r) => r.maxRssKb ?? 0)) / 1024;
      const tight = tightMedians(t);
      const checkCpu = median(c.map((r) => r.cpuMs ?? NaN));
      const cell: SweepCell = {
        hosts: n,
        certs: m,
        floorMs: round1(fm),
        tightFloorMs: round1(tight.wallMs),
        checkInSyncTightRatio: round2(cm / tight.wallMs),
        checkInSyncTightCpuRatio: tight.cpuMs ? round2(checkCpu / tight.cpuMs) : NaN,
        checkInSyncMs: round1(cm),
        applyDriftMs: round1(am),
        checkInSyncRatio: round2(cm / fm),
        applyDriftRatio: round2(am / fm),
        peakRssMb: round1(rss),
      };
      cells.push(cell);
      log(
        `sweep ${n} hosts × ${m} certs: floor ${ms(fm)}, tight floor ${ms(tight.wallMs)}, check ${ms(cm)} (${cell.checkInSyncRatio}× floor, ${cell.checkInSyncTightRatio}× tight), apply ${ms(am)} (${cell.applyDriftRatio}×), ${cell.peakRssMb} MB`,
      );
    }
  }
  return cells;
}

async function profile(ctx: BenchContext, set: HostSet, dir: string): Promise<BenchReport['profile']> {
  await mkdir(dir, { recursive: true });
  const out: NonNullable<BenchReport['profile']> = {};
  for (const [name, run] of [
    ['checkInSync', () => reconcile(ctx, set.syncInventory, true, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'check-in-sync')])],
    ['applyDrift', () => applyDrift(ctx, set, false, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'apply-drift')])],
  ] as const) {
    const r = await run();
    expectExit(`profile ${name}`, r, name === 'checkInSync' ? 0 : 0);
    const sub = join(dir, name === 'checkInSync' ? 'check-in-sync' : 'apply-drift');
    const file = (await readdir(sub))
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort()
      .at(-1);
    if (!file) continue;
    const s = await summarizeCpuProfile(join(sub, file));
    out[name] = {
      totalMs: round1(s.totalMs),
      byPlace: s.byPlace.slice(0, 12).map((e) => ({ what: e.what, selfMs: round1(e.selfMs) })),
      topFunctions: s.byFunction.slice(0, 15).map((e) => ({ what: e.what, selfMs: round1(e.selfMs) })),
    };
  }
  return out;
}

function goalsOf(o: BenchOptions, s: Record<ScenarioName, ScenarioResult>): BenchReport['goals'] {
  const at100 = o.hosts >= 100;
  const peak = Math.max(s.checkInSync.peakRssMb ?? 0, s.checkDrift.peakRssMb ?? 0, s.applyDrift.peakRssMb ?? 0);
  const tightPeak = s.tightFloor.peakRssMb ?? NaN;
  const peakTight = round2((s.checkInSync.peakRssMb ?? NaN) / tightPeak);
  return [
    {
      name: 'check in sync ≤ 1.10× tight floor (wall)',
      limit: GOALS.checkInSyncTightWall,
      value: s.checkInSync.tightRatio ?? null,
      met: s.checkInSync.tightRatio !== undefined ? s.checkInSync.tightRatio <= GOALS.checkInSyncTightWall : null,
    },
    {
      name: 'check in sync ≤ 1.3× tight floor (client CPU)',
      limit: GOALS.checkInSyncTightCpu,
      value: s.checkInSync.tightCpuRatio ?? null,
      met: s.checkInSync.tightCpuRatio !== undefined ? s.checkInSync.tightCpuRatio <= GOALS.checkInSyncTightCpu : null,
    },
    {
      name: 'peak RSS of check at 100 hosts ≤ 1.2× tight floor',
      limit: GOALS.peakRssTightAt100Hosts,
      value: Number.isFinite(peakTight) ? peakTight : null,
      met: at100 && Number.isFinite(peakTight) ? peakTight <= GOALS.peakRssTightAt100Hosts : null,
      ...(at100 ? {} : { note: `measured at ${o.hosts} hosts; run with --hosts 100` }),
    },
    { name: 'check in sync ≤ 1.3× floor', limit: GOALS.checkInSyncRatio, value: s.checkInSync.ratio, met: s.checkInSync.ratio <= GOALS.checkInSyncRatio },
    { name: 'apply drift ≤ 2× floor', limit: GOALS.applyDriftRatio, value: s.applyDrift.ratio, met: s.applyDrift.ratio <= GOALS.applyDriftRatio },
    {
      name: 'peak RSS at 100 hosts ≤ 150 MB',
      limit: GOALS.peakRssMbAt100Hosts,
      value: peak,
      met: at100 ? peak <= GOALS.peakRssMbAt100Hosts : null,
      ...(at100 ? {} : { note: `measured at ${o.hosts} hosts; run with --hosts 100` }),
    },
  ];
}

const WATCH_GOALS = { medianToDriftMs: 1000, rssRatio: 1.1 };

function watchGoals(w: WatchBench | undefined): BenchReport['goals'] {
  if (!w) return [];
  return [
    {
      name: 'watch: a change by hand shows as drift in /metrics, median ≤ 1 s',
      limit: WATCH_GOALS.medianToDriftMs,
      value: w.medianToDriftMs,
      met: w.medianToDriftMs <= WATCH_GOALS.medianToDriftMs,
    },
    {
      name: `watch: RSS after ${w.events} events ≤ 1.1× RSS after 100`,
      limit: WATCH_GOALS.rssRatio,
      value: w.rssRatio,
      met: w.rssRatio <= WATCH_GOALS.rssRatio,
    },
  ];
}

function renderTable(report: BenchReport): string {
  const lines: string[] = [];
  lines.push(
    `reconcile bench: ${report.hosts} hosts × ${report.certs} certificates, ${report.runs} run(s) after a warm-up, medians; ` +
      `--forks ${report.forks}; ${report.connection === 'local' ? 'ansible_connection: local (no SSH); ' : ''}${report.machine.cpus} CPUs; node ${report.machine.node}`,
  );
  lines.push(`load average (1 min) ${report.loadAverage.start} at start, ${report.loadAverage.end} at end of the main rounds`);
  lines.push(
    `lab start ${ms(report.labStartMs)}, registering certificates ${ms(report.registerMs)}; node -e 0: ${ms(report.startup.nodeMs)}, reconcile --version: ${ms(report.startup.versionMs)}`,
  );
  lines.push('');
  const header = ['scenario', 'median', 'min', 'max', '× floor', '× tight', 'CPU × tight', 'peak RSS', 'client CPU', 'hosts CPU'];
  const rows = (Object.keys(report.scenarios) as ScenarioName[]).map((k) => {
    const s = report.scenarios[k];
    return [
      s.label,
      ms(s.medianMs),
      ms(s.minMs),
      ms(s.maxMs),
      `${s.ratio.toFixed(2)}×`,
      s.tightRatio !== undefined ? `${s.tightRatio.toFixed(2)}×` : '-',
      s.tightCpuRatio !== undefined ? `${s.tightCpuRatio.toFixed(2)}×` : '-',
      s.peakRssMb !== undefined ? `${s.peakRssMb.toFixed(1)} MB` : '-',
      opt(s.clientCpuMs),
      opt(s.hostCpuMs),
    ];
  });
  lines.push(...table([header, ...rows]));
  lines.push('');
  const phaseHeader = ['phases (medians)', 'start+load', 'connect', 'observe+plan', 'apply/report', 'exit'];
  const https = report.scenarios.checkInSyncHttps;
  const ssh = report.scenarios.checkInSync;
  const withInfo = report.scenarios.tightFloorServerInfo;
  lines.push(
    `check in sync / tight floor + GET /1.0 (which a check asks only of clusters and of servers with changes): ${(ssh.medianMs / withInfo.medianMs).toFixed(2)}× wall` +
      `${ssh.clientCpuMs && withInfo.clientCpuMs ? `, ${(ssh.clientCpuMs / withInfo.clientCpuMs).toFixed(2)}× client CPU` : ''}`,
  );
  lines.push(
    `check in sync over HTTPS / over SSH, same hosts: ${(https.medianMs / ssh.medianMs).toFixed(2)}× wall, ` +
      `${https.clientCpuMs && ssh.clientCpuMs ? `${(https.clientCpuMs / ssh.clientCpuMs).toFixed(2)}× client CPU, ` : ''}` +
      `${https.hostCpuMs && ssh.hostCpuMs ? `${(https.hostCpuMs / ssh.hostCpuMs).toFixed(2)}× hosts CPU` : ''}`,
  );
  lines.push('');
  const phaseRows = (['checkInSync', 'checkInSyncHttps', 'checkDrift', 'applyDrift'] as const).map((k) => {
    const p = report.scenarios[k].phases ?? {};
    return [report.scenarios[k].label, opt(p.startupAndLoadMs), opt(p.connectMs), opt(p.observeAndPlanMs), opt(p.applyMs), opt(p.exitMs)];
  });
  lines.push(...table([phaseHeader, ...phaseRows]));
  lines.push('');
  if (report.watch) {
    const w = report.watch;
    lines.push(
      `reconcile watch (pruning on): a certificate added by hand → drift in /metrics, median ${w.medianToDriftMs} ms over ${w.rounds} rounds ` +
        `(${w.toDriftMs.join(', ')} ms); removed → in sync, median ${w.medianToSyncMs} ms; RSS ${w.rssAfter100Mb} MB after 100 events, ` +
        `${w.rssAfterAllMb} MB after ${w.events} (${w.rssRatio.toFixed(2)}×)`,
    );
    lines.push('');
  }
  for (const g of report.goals) {
    const verdict = g.met === null ? 'n/a' : g.met ? 'met' : 'NOT met';
    lines.push(`goal: ${g.name}: ${g.value ?? '-'} → ${verdict}${g.note ? ` (${g.note})` : ''}`);
  }
  if (report.sweep) {
    lines.push('');
    lines.push(
      ...table([
        ['hosts', 'certs', 'floor', 'tight floor', 'check in sync', '× floor', '× tight', 'CPU × tight', 'apply drift', '× floor', 'peak RSS'],
        ...report.sweep.map((c) => [
          String(c.hosts),
          String(c.certs),
          ms(c.floorMs),
          ms(c.tightFloorMs),
          ms(c.checkInSyncMs),
          `${c.checkInSyncRatio.toFixed(2)}×`,
          `${c.checkInSyncTightRatio.toFixed(2)}×`,
          `${c.checkInSyncTightCpuRatio.toFixed(2)}×`,
          ms(c.applyDriftMs),
          `${c.applyDriftRatio.toFixed(2)}×`,
          `${c.peakRssMb.toFixed(1)} MB`,
        ]),
      ]),
    );
  }
  if (report.profile) {
    for (const [name, p] of Object.entries(report.profile)) {
      lines.push('');
      lines.push(`CPU profile of ${name} (${ms(p.totalMs)} sampled): self time by place`);
      for (const e of p.byPlace) lines.push(`  ${ms(e.selfMs).padStart(9)}  ${e.what}`);
      lines.push('  top functions:');
      for (const e of p.topFunctions) lines.push(`  ${ms(e.selfMs).padStart(9)}  ${e.what}`);
    }
  }
  return lines.join('\n') + '\n';
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;
const ms = (n: number) => `${Math.round(n)} ms`;
const opt = (n: number | undefined) => (n === undefined ? '-' : ms(n));

function roundPhases(p: Phases): Phases {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round1(v as number)])) as Phases;
}

/**
 * The lab's ~/.ssh/config for OpenSSH: OpenSSH expands `~` from the passwd entry, not $HOME, so
 * the lab's key and known_hosts are named explicitly. Fresh connections (no ControlMaster), and
 * only the lab's key is offered, as the tool does.
 */
async function floorSshConfig(lab: Lab, scratch: string): Promise<string> {
  const home = lab.env.HOME ?? '';
  const labConfig = await readFile(join(home, '.ssh', 'config'), 'utf8');
  const file = join(scratch, 'ssh_config');
  const head = [
    'Host *',
    `  UserKnownHostsFile ${join(home, '.ssh', 'known_hosts')}`,
    '  IdentitiesOnly yes',
    '  ControlMaster no',
    '  ControlPath none',
    '  BatchMode yes',
    '',
  ];
  await writeFile(file, head.join('\n') + labConfig.replaceAll('~/', `${home}/`), { mode: 0o600 });
  return file;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js'))) {
    log('dist/ is missing: run `npm run build` first (npm run bench does)');
    return 1;
  }
  const dir = await mkdtemp(join(tmpdir(), 'reconcile-bench-'));
  const scratch = join(dir, 'scratch');
  await mkdir(scratch);
  let lab: Lab | undefined;
  let failed = false;
  const stop = async () => {
    closeIncusAgents();
    await lab?.stop();
    // The lab keeps its daemons' logs; they only matter when something failed.
    if (lab && !failed) await rm(lab.dir, { recursive: true, force: true });
    else if (lab) log(`lab logs kept in ${join(lab.dir, 'logs')}`);
  };
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let t = performance.now();
    log(`starting a lab of ${options.hosts} hosts`);
    // Every host also listens for HTTPS: the same hosts are measured over SSH and over their API.
    lab = await startLab({ hosts: Array.from({ length: options.hosts }, () => ({ https: true })), name: 'bench' });
    const labStartMs = performance.now() - t;
    log(`lab up in ${ms(labStartMs)}`);

    const sweepHosts = options.sweep ? [...new Set([10, 30, 100, options.hosts].filter((n) => n <= options.hosts))].sort((a, b) => a - b) : [];
    const sweepCerts = options.sweep ? [...new Set([...options.sweepCerts, options.certs])].sort((a, b) => a - b) : [];
    const maxCerts = Math.max(options.certs, ...sweepCerts);
    t = performance.now();
    const certs = await generateCertificates(dir, maxCerts, new Date());
    await setTrustStores(lab.hosts, certs, options.certs);
    await trustBenchClient(lab.hosts, lab.clientCertFile);
    const registerMs = performance.now() - t;
    log(`${options.certs} certificates on each host in ${ms(registerMs)}`);

    const ctx: BenchContext = {
      lab,
      dir,
      scratch,
      sshConfig: await floorSshConfig(lab, scratch),
      certs,
      forks: options.forks,
      connection: options.connection,
      cli: options.cli,
    };
    const set = await hostSet(ctx, lab.hosts, options.certs);
    const loadAtStart = loadavg()[0]!;
    const startup = await measureStartup(ctx, options.runs);
    const scenarios = await measureMain(ctx, set, options.runs);
    const watch =
      options.watchEvents > 0
        ? await measureWatch({
            cli: options.cli,
            env: lab.env,
            cwd: dir,
            // Pruning on, so a certificate added by hand is drift; the HTTPS scenario's own certificate is protected.
            inventory: await writeBenchInventory(dir, 'inventory-watch.yaml', lab.hosts, inSyncEntries(certs, options.certs), 'ssh', {
              incus_trust_protected: [BENCH_CLIENT],
            }),
            hosts: lab.hosts,
            extra: certs.added[0],
            rounds: options.watchRounds,
            events: options.watchEvents,
            log,
          })
        : undefined;
    const report: BenchReport = {
      tool: 'reconcile bench',
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', node: process.version, platform: `${process.platform} ${process.arch}` },
      loadAverage: { start: round2(loadAtStart), end: round2(loadavg()[0]!) },
      hosts: options.hosts,
      certs: options.certs,
      runs: options.runs,
      forks: options.forks,
      connection: options.connection,
      labStartMs: round1(labStartMs),
      registerMs: round1(registerMs),
      startup,
      scenarios,
      ...(watch ? { watch } : {}),
      goals: [...goalsOf(options, scenarios), ...watchGoals(watch)],
    };
    if (options.profileDir) {
      log(`profiling one check and one apply into ${options.profileDir}`);
      report.profile = await profile(ctx, set, options.profileDir);
    }
    if (options.sweep) {
      log(`sweep: hosts ${sweepHosts.join('/')} × certificates ${sweepCerts.join('/')}`);
      report.sweep = await measureSweep(ctx, sweepHosts, sweepCerts, options.runs);
    }
    process.stdout.write(renderTable(report));
    if (options.plot) {
      if (!report.sweep) log('--plot needs --sweep (time against hosts): no plot written');
      else {
        const cells = report.sweep.filter((c) => c.certs === options.certs);
        const svg = hostsPlotSvg(`wall time against hosts (${options.certs} certificates each; medians of ${options.runs})`, [
          { label: 'reconcile --check (in sync)', colour: '#1f77b4', points: cells.map((c) => [c.hosts, c.checkInSyncMs]) },
          { label: 'tight floor (ssh2, one GET per host)', colour: '#2ca02c', points: cells.map((c) => [c.hosts, c.tightFloorMs]) },
          { label: 'OpenSSH floor (ssh HOST incus query)', colour: '#d62728', points: cells.map((c) => [c.hosts, c.floorMs]) },
        ]);
        await writeFile(options.plot, svg);
        log(`plot written to ${options.plot}`);
      }
    }
    if (options.json) {
      await writeFile(options.json, JSON.stringify(report, null, 2) + '\n');
      log(`JSON written to ${options.json}`);
    }
    return 0;
  } catch (e) {
    failed = true;
    log(e instanceof BenchFailure ? e.message : `failed: ${(e as Error).stack ?? String(e)}`);
    return 1;
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
