/**
 * Drift detection as cron runs it, end to end on lab hosts (real incusd per host): drift made
 * out of band with the real `incus` client is reported with exit 2 in text, in --json (checked
 * against schema/report.schema.json), in -q lines and in the --metrics-file (checked by the real
 * promtool); after apply everything reads in sync (exit 0), read back from the hosts with
 * `incus config trust list`; a host down makes the run exit 1; two runs started together never
 * both apply, and the one that waited or stopped says why.
 *
 * Needs `npm run build` (the CLI runs as `node bin/reconcile.js`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import type { RunReport } from '../../src/engine/report.js';
import { makeCert, reconcile, REPO, type CliResult, type GeneratedCert } from './trust-support.js';
import { spawn } from 'node:child_process';

const run = promisify(execFile);
const schema = JSON.parse(readFileSync(join(REPO, 'schema/report.schema.json'), 'utf8'));
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(schema);

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

let lab: Lab;
let dir: string;
let env: NodeJS.ProcessEnv;
let certs: Record<'alice' | 'bob' | 'mallory', GeneratedCert>;

/** Over SSH to the lab host's sshd, then its incusd, as a user's inventory would. */
function connectionVars(h: LabHost): Record<string, unknown> {
  return h.inventoryVars();
}

async function writeInventory(
  hosts: LabHost[],
  extraHosts: LabHost[] = [],
  overrides: Record<string, Record<string, unknown>> = {},
  name?: string,
): Promise<string> {
  const doc = {
    all: {
      vars: {
        incus_trusted_clients: [
          { name: 'alice', description: 'Alice laptop', certificate_file: certs.alice.file, restricted: true, projects: ['p1'] },
          { name: 'bob', certificate_file: certs.bob.file },
        ],
      },
      hosts: {
        ...Object.fromEntries(hosts.map((h) => [h.name, { ...connectionVars(h), ...(overrides[h.name] ?? {}) }])),
        // A host that is down: nothing listens on its address.
        ...Object.fromEntries(extraHosts.map((h) => [h.name, h.inventoryVars()])),
      },
    },
  };
  const file = join(dir, name ?? (extraHosts.length ? 'with-down-host.yaml' : 'hosts.yaml'));
  await writeFile(file, stringify(doc));
  return file;
}

interface TrustRow {
  name: string;
  type: string;
  restricted: boolean;
  projects: string[] | null;
  fingerprint: string;
}

/** The host's trust store read with the real incus client, as `name restricted [projects]`. */
async function trustOf(h: LabHost): Promise<string[]> {
  const rows = JSON.parse(await h.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[];
  return rows.map((r) => `${r.name} ${r.fingerprint.slice(0, 12)} restricted=${r.restricted} projects=[${[...(r.projects ?? [])].sort().join(',')}]`).sort();
}

const fp = (c: GeneratedCert) => c.fingerprint.slice(0, 12);

function cli(args: string[]): Promise<CliResult> {
  return reconcile(args, { env });
}

/** Every stderr line is a timestamped log line without colour codes. */
function expectLogLines(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) expect(l).toMatch(TIMESTAMP);
  expect(stderr).not.toContain('\u001b');
  return lines.map((l) => l.replace(TIMESTAMP, ''));
}

/** Metric samples of a textfile: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function promtoolCheck(file: string): Promise<void> {
  const { stdout, stderr } = await run('sh', ['-c', `promtool check metrics < "${file}"`]);
  expect({ stdout, stderr }).toEqual({ stdout: '', stderr: '' });
}

beforeAll(async () => {
  lab = await startLab({ name: 'drift', hosts: [{ name: 'web1' }, { name: 'web2' }, { name: 'web3', incus: false, down: true }] });
  dir = join(lab.dir, 'inventory');
  await mkdir(dir, { recursive: true });
  // The lock's default place: .reconcile.lock beside the inventory (in the lab's folder).
  env = { ...lab.env };
  delete env.RECONCILE_LOCK_DIR;
  certs = { alice: await makeCert(dir, 'alice'), bob: await makeCert(dir, 'bob'), mallory: await makeCert(dir, 'mallory') };
  for (const h of [lab.host('web1'), lab.host('web2')]) {
    // `incus project create` would read a config from stdin when it is not a terminal: use the API.
    for (const name of ['p1', 'p2']) await h.incus(['query', '-X', 'POST', '/1.0/projects', '--data', JSON.stringify({ name })]);
  }
});

afterAll(async () => {
  await lab?.stop();
});

describe('drift detection (cron use)', () => {
  it('reports out-of-band drift with exit 2 in text, JSON, -q and metrics; after apply all reads in sync with exit 0', async () => {
    const web1 = lab.host('web1');
    const web2 = lab.host('web2');
    const inv = await writeInventory([web1, web2]);
    const metricsFile = join(dir, 'reconcile.prom');

    const first = await cli(['-i', inv]);
    expect(first.exitCode, first.stderr).toBe(0);
    const synced = [`alice ${fp(certs.alice)} restricted=true projects=[p1]`, `bob ${fp(certs.bob)} restricted=false projects=[]`];
    expect(await trustOf(web1)).toEqual(synced);
    expect(await trustOf(web2)).toEqual(synced);

    // Drift by hand: a certificate added on web1, alice's projects changed on web1, bob removed on web2.
    await web1.incus(['config', 'trust', 'add-certificate', join(dir, certs.mallory.file), '--name', 'mallory']);
    await web1.incus(['query', '-X', 'PATCH', `/1.0/certificates/${certs.alice.fingerprint}`, '--data', JSON.stringify({ projects: ['p1', 'p2'] })]);
    await web2.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);

    // Text: plan lines on stdout, timestamped log lines on stderr.
    const text = await cli(['-i', inv, '--check']);
    expect(text.exitCode, text.stderr).toBe(2);
    expect(text.stdout).toContain(`web1:\n  ~ incus certificate "alice" [${fp(certs.alice)}]: update in place`);
    expect(text.stdout).toContain(`  ? incus certificate "mallory" [${fp(certs.mallory)}]: unmanaged, still trusted`);
    expect(text.stdout).toContain(`web2:\n  + incus certificate "bob" [${fp(certs.bob)}]: add (missing)`);
    const logged = expectLogLines(text.stderr);
    expect(logged).toEqual(expect.arrayContaining(['checking 2 host(s): web1, web2', 'web1: drift', 'web2: drift']));

    // JSON: the report object, valid against the schema.
    const json = await cli(['-i', inv, '--check', '--json']);
    expect(json.exitCode).toBe(2);
    const report = JSON.parse(json.stdout) as RunReport;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report.exitCode).toBe(2);
    const actionsOf = (host: string) =>
      report.hosts
        .find((h) => h.host === host)!
        .actions.map((a) => `${a.action} ${a.name} ${a.fingerprint?.slice(0, 12)} applied=${a.applied}`)
        .sort();
    expect(report.hosts.map((h) => `${h.host} ${h.status}`)).toEqual(['web1 drift', 'web2 drift']);
    expect(actionsOf('web1')).toEqual([`unmanaged mallory ${fp(certs.mallory)} applied=false`, `update alice ${fp(certs.alice)} applied=false`]);
    expect(actionsOf('web2')).toEqual([`add bob ${fp(certs.bob)} applied=false`]);

    // -q: nothing on stdout, one timestamped line per drifted thing on stderr (unmanaged kept: not drift).
    const quiet = await cli(['-i', inv, '--check', '-q']);
    expect(quiet.exitCode).toBe(2);
    expect(quiet.stdout).toBe('');
    expect(expectLogLines(quiet.stderr).sort()).toEqual([
      expect.stringMatching(new RegExp(`^web1: drift: ~ update incus certificate "alice" \\[${fp(certs.alice)}\\] \\(.*projects.*\\)$`)),
      `web2: drift: + add incus certificate "bob" [${fp(certs.bob)}] (missing)`,
    ]);

    // Metrics file: drift per host and kind, unmanaged count, certificate expiry; promtool accepts it.
    const metrics = await cli(['-i', inv, '--check', '-q', '--metrics-file', metricsFile]);
    expect(metrics.exitCode).toBe(2);
    const m = samples(await readFile(metricsFile, 'utf8'));
    const I = `inventory="${inv}"`;
    expect(m.get(`reconcile_last_run_success{${I}}`)).toBe(1);
    expect(m.get(`reconcile_last_run_exit_code{${I}}`)).toBe(2);
    expect(m.get(`reconcile_host_status{${I},host="web1",status="drift"}`)).toBe(1);
    expect(m.get(`reconcile_host_status{${I},host="web2",status="drift"}`)).toBe(1);
    expect(m.get(`reconcile_host_pending_actions{${I},host="web1",action="update"}`)).toBe(1);
    expect(m.get(`reconcile_host_pending_actions{${I},host="web1",action="add"}`)).toBe(0);
    expect(m.get(`reconcile_host_pending_actions{${I},host="web2",action="add"}`)).toBe(1);
    expect(m.get(`reconcile_host_unmanaged_certificates{${I},host="web1"}`)).toBe(1);
    expect(m.get(`reconcile_host_unmanaged_certificates{${I},host="web2"}`)).toBe(0);
    const notAfter = (c: GeneratedCert) => report.hosts[0]!.certificates.find((x) => x.fingerprint === c.fingerprint)!.notAfter;
    expect(
      m.get(`reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="mallory",fingerprint="${certs.mallory.fingerprint}",type="client"}`),
    ).toBe(Date.parse(notAfter(certs.mallory)) / 1000);
    expect([...m.keys()].filter((k) => k.startsWith('reconcile_certificate_expiry_timestamp_seconds{') && k.includes('host="web2"'))).toHaveLength(1);
    await promtoolCheck(metricsFile);

    // Apply (pruning the hand-added certificate), then everything reads in sync.
    const apply = await cli(['-i', inv, '--prune']);
    expect(apply.exitCode, apply.stderr).toBe(0);
    expect(await trustOf(web1)).toEqual(synced);
    expect(await trustOf(web2)).toEqual(synced);

    const after = await cli(['-i', inv, '--check', '--metrics-file', metricsFile]);
    expect(after.exitCode).toBe(0);
    expect(after.stdout).toContain('web1: no changes');
    expect(after.stdout).toContain('web2: no changes');
    const m2 = samples(await readFile(metricsFile, 'utf8'));
    expect(m2.get(`reconcile_last_run_exit_code{${I}}`)).toBe(0);
    expect(m2.get(`reconcile_host_status{${I},host="web1",status="ok"}`)).toBe(1);
    expect(m2.get(`reconcile_host_status{${I},host="web2",status="ok"}`)).toBe(1);
    expect([...m2].filter(([k, v]) => k.startsWith('reconcile_host_pending_actions') && v !== 0)).toEqual([]);
    expect(m2.get(`reconcile_host_unmanaged_certificates{${I},host="web1"}`)).toBe(0);
    await promtoolCheck(metricsFile);

    // In sync, -q prints nothing at all: cron sends no mail.
    const silent = await cli(['-i', inv, '--check', '-q']);
    expect(silent).toEqual({ exitCode: 0, stdout: '', stderr: '' });
  });

  it('a converged inventory stays green: a hand-added certificate without pruning is reported (text, JSON, metrics), never drift', async () => {
    const web1 = lab.host('web1');
    const web2 = lab.host('web2');
    const inv = await writeInventory([web1, web2], [], {}, 'converged.yaml');
    const metricsFile = join(dir, 'converged.prom');
    expect((await cli(['-i', inv, '--prune'])).exitCode).toBe(0);
    await web1.incus(['config', 'trust', 'add-certificate', join(dir, certs.mallory.file), '--name', 'mallory']);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await cli(['-i', inv, '--check', '--json', '--metrics-file', metricsFile]);
        expect(res.exitCode, res.stderr).toBe(0);
        const report = JSON.parse(res.stdout) as RunReport;
        expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
        expect(report.hosts.map((h) => `${h.host} ${h.status}`)).toEqual(['web1 ok', 'web2 ok']);
        expect(report.hosts[0]!.actions.map((a) => `${a.action} ${a.name} ${a.reason}`)).toEqual(['unmanaged mallory not-in-inventory']);
        expect(report.summary.actions.unmanaged).toBe(1);
        const m = samples(await readFile(metricsFile, 'utf8'));
        expect(m.get(`reconcile_last_run_exit_code{inventory="${inv}"}`)).toBe(0);
        expect(m.get(`reconcile_host_unmanaged_certificates{inventory="${inv}",host="web1"}`)).toBe(1);
        expect(m.get(`reconcile_host_status{inventory="${inv}",host="web1",status="ok"}`)).toBe(1);
      }
      const text = await cli(['-i', inv, '--check']);
      expect(text.exitCode).toBe(0);
      expect(text.stdout).toContain(
        `  ? incus certificate "mallory" [${fp(certs.mallory)}]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${fp(certs.mallory)})`,
      );
      expect(text.stdout).toContain('Plan: 0 to add, 0 to change, 0 to rotate, 0 to remove; 1 unmanaged');
      expect((await cli(['-i', inv, '--check', '-q'])).stderr).toBe('');
    } finally {
      await web1.incus(['config', 'trust', 'remove', certs.mallory.fingerprint]);
    }
  });

  it('a typo in a variable name is caught: validate names file, line and the variable meant (an error with --strict); --check exits 1 saying nothing was checked', async () => {
    const web1 = lab.host('web1');
    const web2 = lab.host('web2');
    const inv = join(dir, 'typo.yaml');
    await writeFile(
      inv,
      stringify({
        all: {
          vars: { incus_trusted_client: [{ name: 'alice', certificate_file: certs.alice.file }] },
          hosts: Object.fromEntries([web1, web2].map((h) => [h.name, connectionVars(h)])),
        },
      }),
    );
    const validate = await cli(['validate', '-i', inv]);
    expect(validate.exitCode, validate.stderr).toBe(0);
    expect(validate.stderr).toBe(
      `${inv}:3:5: warning: all.vars.incus_trusted_client: "incus_trusted_client" is not a variable reconcile reads: did you mean "incus_trusted_clients"? As written it is ignored (an error with --strict)\n` +
        '        incus_trusted_client:\n        ^\n',
    );
    const strict = await cli(['validate', '-i', inv, '--strict']);
    expect(strict.exitCode).toBe(1);
    expect(strict.stderr).toContain(
      `${inv}:3:5: error: all.vars.incus_trusted_client: "incus_trusted_client" is not a variable reconcile reads: did you mean "incus_trusted_clients"?`,
    );

    const check = await cli(['-i', inv, '--check']);
    expect(check.exitCode).toBe(1);
    expect(check.stdout).toBe('');
    expect(check.stderr).toContain(`warning: all.vars.incus_trusted_client: "incus_trusted_client" is not a variable reconcile reads`);
    expect(check.stderr).toContain(
      [
        'reconcile: nothing to reconcile: no selected host sets anything the plays reconcile',
        '  play "Incus trust stores" (hosts: all) matched web1, web2',
        '    incus_trust needs incus_trusted_clients, incus_metrics_certificates, incus_trust_prune or incus_trust_protected on a host',
      ].join('\n'),
    );
    expect(check.stderr).toContain("(a misspelled variable name is the usual cause: 'reconcile validate -i INVENTORY' names near misses)\n");
  });

  it('a host down is an error even when others drifted: exit 1, and metrics say the run failed', async () => {
    const web1 = lab.host('web1');
    const inv = await writeInventory([web1], [lab.host('web3')]);
    const metricsFile = join(dir, 'down.prom');
    await web1.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);
    try {
      const res = await cli(['-i', inv, '--check', '--json', '--metrics-file', metricsFile]);
      expect(res.exitCode).toBe(1);
      const report = JSON.parse(res.stdout) as RunReport;
      expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
      expect(report.hosts.map((h) => `${h.host} ${h.status}`)).toEqual(['web1 drift', 'web3 unreachable']);
      const m = samples(await readFile(metricsFile, 'utf8'));
      expect(m.get(`reconcile_last_run_success{inventory="${inv}"}`)).toBe(0);
      expect(m.get(`reconcile_last_run_exit_code{inventory="${inv}"}`)).toBe(1);
      expect(m.get(`reconcile_host_status{inventory="${inv}",host="web3",status="unreachable"}`)).toBe(1);
      await promtoolCheck(metricsFile);
      // As text, the error is read once: in the plan; the recap and the log name only the step.
      const text = await cli(['-i', inv, '--check']);
      const message = /^web3: unreachable: connect: (.+)$/m.exec(text.stdout)?.[1];
      expect(message, text.stdout).toBeDefined();
      expect((text.stdout + text.stderr).split(message!).length - 1).toBe(1);
      expect(text.stdout).toContain('\n  web3  unreachable  connect (error above)\n');
      expect(text.stderr).toContain(' web3: unreachable: connect (see the plan)\n');
    } finally {
      await web1.incus(['config', 'trust', 'add-certificate', join(dir, certs.bob.file), '--name', 'bob']);
    }
  });

  it('an invalid inventory exits 1 and still tells Prometheus the run failed', async () => {
    const inv = join(dir, 'broken.yaml');
    await writeFile(inv, 'all:\n  hosts:\n    web1:\n      ansible_port: [not, a, port]\n');
    const metricsFile = join(dir, 'broken.prom');
    const res = await cli(['-i', inv, '--check', '-q', '--metrics-file', metricsFile]);
    expect(res.exitCode).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(`${inv}:4:`);
    const m = samples(await readFile(metricsFile, 'utf8'));
    expect(m.get(`reconcile_last_run_success{inventory="${inv}"}`)).toBe(0);
    expect(m.get(`reconcile_last_run_exit_code{inventory="${inv}"}`)).toBe(1);
    expect([...m.keys()].filter((k) => k.startsWith('reconcile_host_'))).toEqual([]);
    await promtoolCheck(metricsFile);
  });

  it('two runs started together never both apply; the second says it waited for the first (PID, start time)', async () => {
    const web1 = lab.host('web1');
    const web2 = lab.host('web2');
    const road = await slowRoad(web1, 2000);
    const inv = await writeInventory([web1, web2], [], { web1: road.vars }, 'together.yaml');
    // The relay's address is new to known_hosts: recorded once here, before the two runs.
    expect((await cli(['-i', inv, '--prune', '--accept-new-host-keys'])).exitCode).toBe(0);
    await web1.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);
    await web2.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);

    const [a, b] = await startedTogether([
      ['-i', inv, '--json'],
      ['-i', inv, '--json'],
    ]).finally(road.close);
    expect([a!.exitCode, b!.exitCode], a!.stderr + b!.stderr).toEqual([0, 0]);
    const applied = [a!, b!].flatMap((r) =>
      (JSON.parse(r.stdout) as RunReport).hosts.flatMap((h) => h.actions.filter((x) => x.applied).map((x) => `${h.host} ${x.action} ${x.name}`)),
    );
    // Exactly one run added bob on each host; the other found nothing left to do.
    expect(applied.sort()).toEqual(['web1 add bob', 'web2 add bob']);
    const waiter = [a!, b!].find((r) => r.stderr.includes('waiting up to'))!;
    const holder = waiter === a ? b! : a!;
    expect(waiter, `one run waited for the other:\n${a!.stderr}\n${b!.stderr}`).toBeDefined();
    expect(expectLogLines(waiter.stderr)[0]).toMatch(
      new RegExp(`^waiting up to 30 s for the run lock: another run holds it, PID ${holder.pid} on \\S+, started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(`),
    );
    expect(waiter.stderr).toContain(`got the run lock after waiting`);
    expect(waiter.stderr).toContain(`for PID ${holder.pid}`);
    expect(await trustOf(web1)).toEqual([`alice ${fp(certs.alice)} restricted=true projects=[p1]`, `bob ${fp(certs.bob)} restricted=false projects=[]`]);
  });

  it('with --lock-timeout 0 the second run stops at once, exit 1, naming the holder, and changes nothing', async () => {
    const web1 = lab.host('web1');
    const web2 = lab.host('web2');
    const road = await slowRoad(web1, 2000);
    const inv = await writeInventory([web1, web2], [], { web1: road.vars }, 'together.yaml');
    expect((await cli(['-i', inv, '--prune', '--accept-new-host-keys'])).exitCode).toBe(0);
    await web1.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);
    await web2.incus(['config', 'trust', 'remove', certs.bob.fingerprint]);

    const results = await startedTogether([
      ['-i', inv, '--lock-timeout', '0'],
      ['-i', inv, '--lock-timeout', '0'],
    ]).finally(road.close);
    const stopped = results.find((r) => r.exitCode === 1)!;
    const winner = results.find((r) => r !== stopped)!;
    expect(results.map((r) => r.exitCode).sort()).toEqual([0, 1]);
    expect(stopped.stdout).toBe('');
    expect(stopped.stderr).toMatch(
      new RegExp(
        `^reconcile: another reconcile run holds the lock for ${escape(inv)}: PID ${winner.pid} on \\S+, started [\\d:.TZ-]+ \\(lock file .*\\); did not wait \\(--lock-timeout 0\\); nothing was done`,
      ),
    );
    expect(stopped.stderr.trim().split('\n')).toHaveLength(1);
    expect(winner.stdout).toContain('Recap:');
    const bob = `bob ${fp(certs.bob)} restricted=false projects=[]`;
    expect(await trustOf(web1)).toContain(bob);
    expect(await trustOf(web2)).toContain(bob);
  });

  it('a run stuck on a host holds the lock: the next one names it after --lock-timeout; SIGTERM releases it', async () => {
    // A "host" that accepts the TCP connection and never says a word: the run waits in connect.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const inv = join(dir, 'stuck', 'hosts.yaml');
    await mkdir(join(dir, 'stuck'), { recursive: true });
    await writeFile(inv, stringify({ all: { vars: { incus_trusted_clients: [] }, hosts: { slow: { ansible_host: '127.0.0.1', ansible_port: port } } } }));
    const lockFile = join(dir, 'stuck', '.reconcile.lock');
    const stuck = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), '-i', inv, '--check'], { env, cwd: REPO, stdio: 'ignore' });
    const stuckExit = new Promise<string | number>((res) => stuck.on('exit', (code, signal) => res(signal ?? code ?? -1)));
    try {
      await waitFor(() => existsSync(lockFile));
      expect(JSON.parse(await readFile(lockFile, 'utf8'))).toMatchObject({ pid: stuck.pid });

      const second = await cli(['-i', inv, '--check', '--lock-timeout', '1']);
      expect(second.exitCode).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`^\\S+ waiting up to 1 s for the run lock: another run holds it, PID ${stuck.pid} on `));
      expect(second.stderr).toMatch(
        new RegExp(`\\nreconcile: another reconcile run holds the lock for ${escape(inv)}: PID ${stuck.pid} .*; waited 1\\.\\d s; nothing was done`),
      );

      stuck.kill('SIGTERM');
      // Killed by the signal, or (a graceful stop) exit status 128 + 15 once the run has ended.
      expect(['SIGTERM', 143]).toContain(await stuckExit);
      expect(existsSync(lockFile)).toBe(false);
    } finally {
      stuck.kill('SIGKILL');
      silent.close();
    }
  });

  it('on a terminal NO_COLOR turns colours off; a host down is a recap line there too, not a crash', async () => {
    const inv = await writeInventory([], [lab.host('web3')]);
    // `script` gives the CLI a real pseudo-terminal, so listr2 draws the progress.
    const onTerminal = async (extraEnv: NodeJS.ProcessEnv) => {
      const command = `stty cols 120; node bin/reconcile.js -i '${inv}' --check; echo "exit=$?"`;
      const { stdout } = await run('script', ['-qec', command, '/dev/null'], { cwd: REPO, env: { ...env, TERM: 'xterm-256color', ...extraEnv } });
      return stdout;
    };
    const SGR = /\u001b\[[0-9;]*m/;
    const plain = await onTerminal({ NO_COLOR: '1' });
    expect(plain).toMatch(/Recap:\r?\n {2}web3 +unreachable +connect \(error above\)/);
    expect(plain).toContain('exit=1');
    expect(plain).not.toMatch(/^\s+at /m);
    expect(plain).not.toMatch(SGR);
    // Without NO_COLOR the same run is coloured: the check above is not vacuous.
    const coloured = await onTerminal({ NO_COLOR: undefined, FORCE_COLOR: undefined });
    expect(coloured).toContain('exit=1');
    expect(coloured).toMatch(SGR);
  });

  it('exit codes and the lock are documented in --help; a bad --lock-timeout is a one-line usage error', async () => {
    const top = await cli(['--help']);
    expect(top.exitCode).toBe(0);
    expect(top.stdout).toContain(
      'Exit codes: 0 in sync or applied cleanly; 2 --check found changes to apply and nothing failed;\n1 anything failed (a host down counts, even when others drifted).',
    );
    const help = await cli(['--check', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain(
      '  0  in sync (--check), or every change applied cleanly (unmanaged certificates kept are reported, not drift)\n  2  --check found something an apply would change, and nothing failed\n  1  anything failed',
    );
    expect(help.stdout).toContain('--lock-timeout SECONDS');
    expect(help.stdout).toContain('-q, --quiet');
    const bad = await cli(['-i', 'x.yaml', '--lock-timeout', 'soon']);
    expect(bad).toMatchObject({ exitCode: 1, stdout: '' });
    expect(bad.stderr).toBe("reconcile: --lock-timeout takes a whole number of seconds (0 or more), not 'soon'\n");
  });
});

/**
 * A slow road to a lab host's sshd: a TCP relay that waits `delayMs` before connecting through.
 * Every run connecting this way holds the run lock at least that long, so two runs started
 * together overlap whatever the machine's load does to their start-up times.
 */
async function slowRoad(h: LabHost, delayMs: number): Promise<{ vars: Record<string, unknown>; close(): void }> {
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    sockets.add(client);
    client.pause();
    setTimeout(() => {
      const upstream = connect(22, h.address, () => {
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    }, delayMs);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    vars: { ansible_host: '127.0.0.1', ansible_port: (relay.address() as AddressInfo).port },
    close: () => {
      for (const so of sockets) so.destroy();
      relay.close();
    },
  };
}

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Starts every command at the same moment; resolves with each result and its PID. */
function startedTogether(argvs: string[][]): Promise<(CliResult & { pid: number })[]> {
  return Promise.all(
    argvs.map(
      (args) =>
        new Promise<CliResult & { pid: number }>((res) => {
          const p = spawn(process.execPath, [join(REPO, 'bin/reconcile.js'), ...args], { env, cwd: REPO });
          let stdout = '';
          let stderr = '';
          p.stdout.on('data', (d) => (stdout += d));
          p.stderr.on('data', (d) => (stderr += d));
          p.on('close', (code) => res({ exitCode: code ?? -1, stdout, stderr, pid: p.pid! }));
        }),
    ),
  );
}
