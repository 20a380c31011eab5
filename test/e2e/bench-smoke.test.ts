/**
 * `npm run bench` still works: the smallest real run (2 lab hosts × 2 certificates, 1 round)
 * prints its table and writes JSON whose every scenario has a median and a ratio to the floor.
 * It asserts no speed: timings are only measured, by the bench itself (BENCHMARKS.md).
 * Needs `npm run build` first (npm test's pretest does it).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
let dir: string | undefined;

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function runBench(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'dist/test/support/bench.js'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ exitCode: code ?? 1, stdout, stderr }));
  });
}

it('runs 2 hosts × 2 certificates once: prints the table and valid JSON with ratios to the floor', async () => {
  dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
  const jsonFile = join(dir, 'bench.json');
  const { exitCode, stdout, stderr } = await runBench([
    '--hosts',
    '2',
    '--certs',
    '2',
    '--runs',
    '1',
    '--watch-rounds',
    '2',
    '--watch-events',
    '200',
    '--json',
    jsonFile,
  ]);
  expect(exitCode, stderr).toBe(0);

  expect(stdout).toMatch(/^reconcile bench: 2 hosts × 2 certificates, 1 run\(s\)/);
  expect(stdout).toMatch(/^scenario +median +min +max +× floor +× tight +CPU × tight +peak RSS +client CPU +hosts CPU$/m);
  for (const label of [
    'floor: ssh HOST incus query',
    'tight floor: ssh2, one GET per host',
    'tight floor + GET /1.0 per host',
    'reconcile --check, in sync',
    'reconcile --check over HTTPS, in sync',
    'reconcile --check, drift',
    'reconcile, apply drift',
  ]) {
    expect(stdout).toMatch(new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')} +\\d+ ms +\\d+ ms +\\d+ ms +\\d+\\.\\d\\d×`, 'm'));
  }
  expect(stdout).toMatch(/^goal: check in sync ≤ 1\.3× floor: [\d.]+ → (met|NOT met)$/m);

  const report = JSON.parse(await readFile(jsonFile, 'utf8'));
  expect(report).toMatchObject({ hosts: 2, certs: 2, runs: 1, connection: 'ssh' });
  expect(Object.keys(report.scenarios)).toEqual(['floor', 'tightFloor', 'tightFloorServerInfo', 'checkInSync', 'checkInSyncHttps', 'checkDrift', 'applyDrift']);
  expect(stdout).toMatch(
    /^check in sync \/ tight floor \+ GET \/1\.0 \(which a check asks only of clusters and of servers with changes\): \d+\.\d\d× wall, \d+\.\d\d× client CPU$/m,
  );
  expect(stdout).toMatch(/^check in sync over HTTPS \/ over SSH, same hosts: \d+\.\d\d× wall/m);
  expect(report.scenarios.tightFloor.tightRatio).toBe(1);
  // reconcile watch: change → drift in /metrics, and memory after many events.
  expect(stdout).toMatch(/^reconcile watch \(pruning on\): a certificate added by hand → drift in \/metrics, median \d+ ms over 2 rounds/m);
  expect(report.watch).toMatchObject({ rounds: 2, toDriftMs: [expect.any(Number), expect.any(Number)] });
  expect(report.watch.events).toBeGreaterThanOrEqual(200);
  expect(report.watch.rssAfter100Mb).toBeGreaterThan(10);
  expect(report.scenarios.floor.ratio).toBe(1);
  for (const name of ['checkInSync', 'checkInSyncHttps', 'checkDrift', 'applyDrift']) {
    const s = report.scenarios[name];
    expect(s.samplesMs).toHaveLength(1);
    expect(s.medianMs).toBeGreaterThan(0);
    expect(s.ratio).toBeCloseTo(s.medianMs / report.scenarios.floor.medianMs, 1);
    expect(s.tightRatio).toBeCloseTo(s.medianMs / report.scenarios.tightFloor.medianMs, 1);
    expect(s.tightCpuRatio).toBeGreaterThan(0);
    // The tool's peak memory was measured (GNU time or /proc).
    expect(s.peakRssMb).toBeGreaterThan(10);
  }
  expect(report.goals.map((g: { name: string }) => g.name)).toEqual([
    'check in sync ≤ 1.10× tight floor (wall)',
    'check in sync ≤ 1.3× tight floor (client CPU)',
    'peak RSS of check at 100 hosts ≤ 1.2× tight floor',
    'check in sync ≤ 1.3× floor',
    'apply drift ≤ 2× floor',
    'peak RSS at 100 hosts ≤ 150 MB',
    'watch: a change by hand shows as drift in /metrics, median ≤ 1 s',
    expect.stringMatching(/^watch: RSS after \d+ events ≤ 1\.1× RSS after 100$/),
  ]);
}, 120_000);
