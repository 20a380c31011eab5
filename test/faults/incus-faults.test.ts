/**
 * Faults of the Incus side, on real lab hosts (real incusd each): the daemon stopped before the
 * run and in the middle of a host's actions, the trust store changed by someone else between
 * plan and apply, SIGTERM/SIGINT during apply, a rotation interrupted between its add and its
 * remove. Each test asserts what was applied and what was not (the trust store read with the
 * host's own `incus` client), the JSON report, the exit code, and that a rerun converges.
 *
 * Hosts are reached with `ansible_connection: local` on their incusd socket: the faults here are
 * the daemon's, not the SSH connection's (test/faults/ssh-faults.test.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import {
  clearTrustStore,
  REPO,
  localVars,
  makeCert,
  reportOf,
  runCli,
  STACK_LINE,
  note,
  describeHost,
  startCli,
  startSocketServer,
  tempDir,
  trustStore,
  until,
  writeInventory,
  type TestCert,
} from './support.js';

let lab: Lab;
let a: LabHost;
let b: LabHost;
let dir: string;
let lockDir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  lab = await startLab({ name: 'faults-incus', hosts: [{ name: 'a' }, { name: 'b' }] });
  a = lab.host('a');
  b = lab.host('b');
  dir = await tempDir('incus');
  lockDir = join(dir, 'locks');
  env = { ...lab.env, RECONCILE_LOCK_DIR: lockDir };
});

afterAll(async () => {
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await a.startIncus();
  await b.startIncus();
  await clearTrustStore(a);
  await clearTrustStore(b);
});

async function certs(prefix: string, n: number): Promise<{ name: string; cert: TestCert }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => ({ name: `${prefix}-${String(i).padStart(2, '0')}`, cert: await makeCert(dir, `${prefix}-${i}`) })),
  );
}

function clients(list: { name: string; cert: TestCert }[], extra: Record<string, unknown> = {}) {
  return list.map((c) => ({ name: c.name, certificate_file: c.cert.file, ...extra }));
}

const names = (store: { name: string }[]) => store.map((c) => c.name).sort();

describe('faults of the Incus daemon', () => {
  it('incusd stopped before the run: that host fails, the other is applied, a rerun converges', async () => {
    const list = await certs('before', 2);
    const inv = await writeInventory(
      dir,
      [
        { name: 'a', vars: localVars(a) },
        { name: 'b', vars: localVars(b) },
      ],
      { incus_trusted_clients: clients(list) },
    );
    await b.stopIncus();

    const first = await runCli(['-i', inv, '--json'], env);
    expect(first.exitCode).toBe(1);
    expect(first.stderr).not.toMatch(STACK_LINE);
    const report = reportOf(first);
    note('incusd of host b stopped before the run (a, b each get 2 adds)', `b: ${describeHost(report, 'b')}; a: ${report.hosts[0]!.status}`);
    expect(report.hosts.find((h) => h.host === 'a')!.status).toBe('changed');
    const hb = report.hosts.find((h) => h.host === 'b')!;
    expect(['unreachable', 'failed']).toContain(hb.status);
    expect(hb.actions.filter((x) => x.applied)).toEqual([]);
    expect(hb.error?.message).toBeTruthy();
    expect(hb.error!.message).not.toMatch(/internal error/);
    expect(names(await trustStore(a))).toEqual(['before-00', 'before-01']);

    await b.startIncus();
    expect(await trustStore(b)).toEqual([]);
    const rerun = await runCli(['-i', inv, '--json'], env);
    expect(rerun.exitCode).toBe(0);
    expect(Object.fromEntries(reportOf(rerun).hosts.map((h) => [h.host, h.status]))).toEqual({ a: 'ok', b: 'changed' });
    expect(names(await trustStore(b))).toEqual(['before-00', 'before-01']);
    expect((await runCli(['-i', inv, '--check'], env)).exitCode).toBe(0);
  });

  it("incusd stopped in the middle of a host's adds: the report says exactly what reached the store; a rerun adds the rest", async () => {
    const list = await certs('mid', 40);
    // Only host a gets the 40 adds; b one, so that b's success shows the run went on.
    const inv = await writeInventory(
      dir,
      [
        { name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(list) } },
        { name: 'b', vars: { ...localVars(b), incus_trusted_clients: clients(list.slice(0, 1)) } },
      ],
      {},
      'mid.yaml',
    );
    const cli = startCli(['-i', inv, '--json', '-v'], env);
    // Stop the daemon as soon as the first add is visible in the store (read independently).
    await until('the first add on a', async () => ((await trustStore(a)).length > 0 ? true : undefined), 30_000, 10);
    await a.stopIncus();
    const result = await cli.done;

    expect(result.exitCode).toBe(1);
    expect(result.stderr).not.toMatch(STACK_LINE);
    const report = reportOf(result);
    const ha = report.hosts.find((h) => h.host === 'a')!;
    note('incusd of host a stopped once the first of its 40 adds is visible', describeHost(report, 'a'));
    expect(ha.status).toBe('failed');
    expect(ha.error!.step).toMatch(/^add certificate mid-\d\d$/);
    expect(report.hosts.find((h) => h.host === 'b')!.status).toBe('changed');

    await a.startIncus();
    const stored = names(await trustStore(a));
    const applied = ha.actions
      .filter((x) => x.applied)
      .map((x) => x.name)
      .sort();
    expect(applied.length).toBeGreaterThan(0);
    expect(applied.length).toBeLessThan(40);
    // Everything reported applied is there; at most the one add in flight when the daemon went
    // away may have landed without being reported.
    expect(stored).toEqual(expect.arrayContaining(applied));
    expect(stored.length - applied.length).toBeGreaterThanOrEqual(0);
    expect(stored.length - applied.length).toBeLessThanOrEqual(1);
    // Nothing half-written: every entry present carries the certificate the inventory names.
    const byName = new Map(list.map((c) => [c.name, c.cert.fingerprint]));
    for (const c of await trustStore(a)) expect(c.fingerprint).toBe(byName.get(c.name));

    const rerun = await runCli(['-i', inv, '--json'], env);
    expect(rerun.exitCode).toBe(0);
    const ra = reportOf(rerun).hosts.find((h) => h.host === 'a')!;
    expect(ra.actions.filter((x) => x.action === 'add')).toHaveLength(40 - stored.length);
    expect(names(await trustStore(a))).toEqual(list.map((c) => c.name));
    expect((await runCli(['-i', inv, '--check'], env)).exitCode).toBe(0);
  });

  it('the trust store changed by someone else between plan and apply: the update is refused (ETag), not forced', async () => {
    const [victim] = await certs('etag', 1);
    await a.incus(['config', 'trust', 'add-certificate', join(dir, victim!.cert.file), '--name', victim!.name, '--description', 'before']);
    const inv = await writeInventory(
      dir,
      [{ name: 'a', vars: localVars(a) }],
      { incus_trusted_clients: clients([victim!], { description: 'wanted' }) },
      'etag.yaml',
    );

    const cli = startCli(['-i', inv, '--json'], { ...env, RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS: '4000' });
    await cli.waitForStderr(/pausing \d+ ms before apply/);
    // Someone else edits the entry while reconcile holds its plan.
    await a.incus(['query', '-X', 'PATCH', `/1.0/certificates/${victim!.cert.fingerprint}`, '--data', JSON.stringify({ description: 'someone else' })]);
    const result = await cli.done;

    expect(result.exitCode).toBe(1);
    const ha = reportOf(result).hosts[0]!;
    note('description edited by someone else between plan and apply (socket path)', describeHost(reportOf(result), 'a'));
    expect(ha.status).toBe('failed');
    expect(ha.error!.step).toBe(`update certificate ${victim!.name}`);
    expect(ha.error!.message).toMatch(/412|precondition|changed/i);
    expect(ha.actions.map((x) => [x.action, x.applied])).toEqual([['update', false]]);
    expect((await trustStore(a))[0]!.description).toBe('someone else');

    const rerun = await runCli(['-i', inv, '--json'], env);
    expect(rerun.exitCode).toBe(0);
    expect((await trustStore(a))[0]!.description).toBe('wanted');
  });

  it('the trust store changed by someone else between plan and apply: a remove is refused, not forced', async () => {
    const [victim] = await certs('guard', 1);
    await a.incus(['config', 'trust', 'add-certificate', join(dir, victim!.cert.file), '--name', victim!.name, '--description', 'before']);
    const inv = await writeInventory(
      dir,
      [{ name: 'a', vars: localVars(a) }],
      { incus_trusted_clients: clients([victim!], { state: 'absent' }) },
      'guard.yaml',
    );

    const cli = startCli(['-i', inv, '--json'], { ...env, RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS: '4000' });
    await cli.waitForStderr(/pausing \d+ ms before apply/);
    // Someone else re-scopes the entry while reconcile holds a plan that revokes it.
    await a.incus([
      'query',
      '-X',
      'PATCH',
      `/1.0/certificates/${victim!.cert.fingerprint}`,
      '--data',
      JSON.stringify({ description: 'someone else', restricted: true }),
    ]);
    const result = await cli.done;

    expect(result.exitCode).toBe(1);
    expect(result.stderr).not.toMatch(STACK_LINE);
    const ha = reportOf(result).hosts[0]!;
    note('entry edited by someone else between a plan that removes it and apply', describeHost(reportOf(result), 'a'));
    expect(ha.status).toBe('failed');
    expect(ha.error!.step).toBe(`remove certificate ${victim!.name}`);
    expect(ha.error!.message).toMatch(/changed by someone else since it was read \(description, restricted\)/);
    expect(ha.actions.map((x) => [x.action, x.applied])).toEqual([['remove', false]]);
    expect((await trustStore(a)).map((c) => [c.name, c.description])).toEqual([[victim!.name, 'someone else']]);

    // The next run plans again from what is there now, and revokes it as the inventory says.
    const rerun = await runCli(['-i', inv, '--json'], env);
    expect(rerun.exitCode).toBe(0);
    expect(await trustStore(a)).toEqual([]);
  });

  it('two controllers with separate copies of the inventory racing, three rounds: both exit 0, the stores exact (what the other did first is "already done")', async () => {
    const listA = await certs('racea', 12);
    const listB = await certs('raceb', 12);
    const hostsOf = () => [
      { name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(listA, { description: 'raced' }) } },
      { name: 'b', vars: { ...localVars(b), incus_trusted_clients: clients(listB, { description: 'raced' }), incus_trust_prune: true } },
    ];
    const inv1 = await writeInventory(dir, hostsOf(), {}, 'race-one.yaml');
    const inv2 = await writeInventory(dir, hostsOf(), {}, 'race-two.yaml');
    for (let round = 1; round <= 3; round++) {
      await clearTrustStore(a);
      await clearTrustStore(b);
      // Something for each to change besides the adds: a description to update, a stranger to prune.
      if (round > 1) {
        const [first] = listA;
        await runCli(['-i', inv1, '--limit', 'a'], env);
        await a.incus(['query', '-X', 'PATCH', `/1.0/certificates/${first!.cert.fingerprint}`, '--data', JSON.stringify({ description: 'drifted' })]);
      }
      const [one, two] = await Promise.all([runCli(['-i', inv1, '--json'], env), runCli(['-i', inv2, '--json'], env)]);
      expect([one.exitCode, two.exitCode], `${one.stderr}\n${two.stderr}`).toEqual([0, 0]);
      expect(names(await trustStore(a))).toEqual(names(listA));
      expect(names(await trustStore(b))).toEqual(names(listB));
      for (const c of [...(await trustStore(a)), ...(await trustStore(b))]) expect(c.description).toBe('raced');
      const check = await runCli(['-i', inv1, '--check'], env);
      expect(check.exitCode, check.stdout).toBe(0);
    }
    note('two controllers racing, 2 hosts × 12 adds, 3 rounds', 'both exit 0 every round, stores exact');
  });

  it('the output closed mid-run (`reconcile … 2>&1 | head -3`): no crash, nothing half-done, the metrics file written, exit 141', async () => {
    const listA = await certs('pipea', 40);
    const listB = await certs('pipeb', 40);
    const inv = await writeInventory(
      dir,
      [
        { name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(listA) } },
        { name: 'b', vars: { ...localVars(b), incus_trusted_clients: clients(listB) } },
      ],
      {},
      'pipe.yaml',
    );
    const metrics = join(dir, 'pipe.prom');
    const script = `set -o pipefail; "${process.execPath}" "${join(REPO, 'bin/reconcile.js')}" -i "${inv}" -v --metrics-file "${metrics}" 2>&1 | head -3; echo "status=\${PIPESTATUS[0]}"`;
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { env });
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.at(-1)).toBe('status=141');
    expect(stdout).not.toMatch(STACK_LINE);
    const m = await readFile(metrics, 'utf8');
    expect(m).toContain(`reconcile_last_run_exit_code{inventory="${inv}"} 1`);
    // Whatever was applied is whole: every stored certificate is the inventory's, and a new run
    // plans exactly the rest.
    const byName = new Map([...listA, ...listB].map((c) => [c.name, c.cert.fingerprint]));
    const stored = [...(await trustStore(a)), ...(await trustStore(b))];
    for (const c of stored) expect(c.fingerprint).toBe(byName.get(c.name));
    const check = await runCli(['-i', inv, '--check', '--json'], env);
    expect(reportOf(check).summary.actions.add).toBe(80 - stored.length);
    expect(existsSync(lockDir) ? readdirSync(lockDir).filter((f) => !f.startsWith('.')) : []).toEqual([]);
    note('`reconcile -v … 2>&1 | head -3`, 2 hosts × 40 adds', `${stored.length} of 80 added before the stop, exit 141, metrics file written`);
  });

  const SIGNAL_EXIT = { SIGTERM: 143, SIGINT: 130, SIGHUP: 129 } as const;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`${signal} during apply: the action in flight finishes, the rest is reported not applied, the lock released, exit ${SIGNAL_EXIT[signal]}`, async () => {
      const prefix = `sig${signal.slice(3, 6).toLowerCase()}`;
      const list = await certs(prefix, 30);
      const inv = await writeInventory(dir, [{ name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(list) } }], {}, `${signal}.yaml`);
      const cli = startCli(['-i', inv, '--json'], env);
      await until('the first add on a', async () => ((await trustStore(a)).length > 0 ? true : undefined), 30_000, 10);
      cli.child.kill(signal);
      const result = await cli.done;

      expect(result.exitCode).toBe(SIGNAL_EXIT[signal]);
      expect(result.stderr).toMatch(new RegExp(`${signal} received: finishing the actions in flight`));
      expect(result.stderr).not.toMatch(STACK_LINE);
      const report = reportOf(result);
      const ha = report.hosts[0]!;
      note(`${signal} once the first of 30 adds is visible`, `${describeHost(report, 'a')} | process exit ${result.exitCode}`);
      expect(ha.status).toBe('failed');
      expect(ha.error!.message).toMatch(new RegExp(`^interrupted by ${signal} before add ${prefix}-\\d\\d; what is marked applied was applied`));
      // Exactly what the report marks applied is in the store: the action in flight finished.
      const stored = await trustStore(a);
      expect(stored.map((c) => c.name).sort()).toEqual(
        ha.actions
          .filter((x) => x.applied)
          .map((x) => x.name)
          .sort(),
      );
      expect(stored.length).toBeGreaterThan(0);
      expect(stored.length).toBeLessThan(30);
      const byName = new Map(list.map((c) => [c.name, c.cert.fingerprint]));
      for (const c of stored) expect(c.fingerprint).toBe(byName.get(c.name));
      // The run lock is gone.
      expect(existsSync(lockDir) ? readdirSync(lockDir).filter((f) => !f.startsWith('.')) : []).toEqual([]);

      const rerun = await runCli(['-i', inv, '--json'], env);
      expect(rerun.exitCode).toBe(0);
      expect(reportOf(rerun).hosts[0]!.actions.filter((x) => x.applied)).toHaveLength(30 - stored.length);
      expect(names(await trustStore(a))).toEqual(list.map((c) => c.name));
    });
  }

  it('SIGKILL during apply: nothing half-written, the next run takes the stale lock over and converges', async () => {
    const list = await certs('sigkill', 30);
    const inv = await writeInventory(dir, [{ name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(list) } }], {}, 'sigkill.yaml');
    const cli = startCli(['-i', inv, '--json'], env);
    await until('the first add on a', async () => ((await trustStore(a)).length > 0 ? true : undefined), 30_000, 10);
    cli.child.kill('SIGKILL');
    const result = await cli.done;
    expect(result.signal).toBe('SIGKILL');
    const stored = await trustStore(a);
    expect(stored.length).toBeLessThan(30);
    const byName = new Map(list.map((c) => [c.name, c.cert.fingerprint]));
    for (const c of stored) expect(c.fingerprint).toBe(byName.get(c.name));

    const rerun = await runCli(['-i', inv, '--json'], env);
    note(
      'SIGKILL once the first of 30 adds is visible, then rerun',
      `${stored.length} entries in the store after the kill; rerun exit ${rerun.exitCode}; ${rerun.stderr.match(/taking over a stale run lock[^\n]*/)?.[0] ?? 'no stale lock message'}`,
    );
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toMatch(/taking over a stale run lock left by PID \d+, no longer running/);
    expect(names(await trustStore(a))).toEqual(list.map((c) => c.name));
  });

  it('SIGTERM between plan and apply: nothing is applied, the report says so, exit 143', async () => {
    const list = await certs('sigplan', 3);
    const inv = await writeInventory(dir, [{ name: 'a', vars: { ...localVars(a), incus_trusted_clients: clients(list) } }], {}, 'sigplan.yaml');
    const cli = startCli(['-i', inv, '--json'], { ...env, RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS: '3000' });
    await cli.waitForStderr(/pausing \d+ ms before apply/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.exitCode).toBe(143);
    const ha = reportOf(result).hosts[0]!;
    note('SIGTERM between plan and apply', `${describeHost(reportOf(result), 'a')} | process exit ${result.exitCode}`);
    expect(ha.status).toBe('failed');
    expect(ha.error!.message).toBe('interrupted by SIGTERM before its first action; what is marked applied was applied, nothing after it');
    expect(ha.actions.map((x) => [x.action, x.applied])).toEqual([
      ['add', false],
      ['add', false],
      ['add', false],
    ]);
    expect(await trustStore(a)).toEqual([]);
  });

  it('a rotation interrupted after the add and before the remove keeps both trusted, and the next run finishes it', async () => {
    const [oldCert, newCert] = [await makeCert(dir, 'rot-old'), await makeCert(dir, 'rot-new')];
    const inv = await writeInventory(
      dir,
      [{ name: 'a', vars: localVars(a) }],
      { incus_trusted_clients: [{ name: 'rot', certificate_file: oldCert.file }] },
      'rot.yaml',
    );
    expect((await runCli(['-i', inv], env)).exitCode).toBe(0);

    // The same run, through a socket that passes everything to the real daemon except the
    // DELETE of the old certificate: the connection is cut as if the run died right there.
    const cut = await startSocketServer(
      join(dir, 'cut-delete.sock'),
      (req, _body, res) => {
        if (req.method !== 'DELETE') return 'forward';
        res.socket?.destroy();
        return 'handled';
      },
      a.incusSocket,
    );
    try {
      const interruptedInv = await writeInventory(
        dir,
        [{ name: 'a', vars: localVars(a, cut.socket) }],
        { incus_trusted_clients: [{ name: 'rot', certificate_file: newCert.file }] },
        'rot-cut.yaml',
      );
      const interrupted = await runCli(['-i', interruptedInv, '--json'], env);
      expect(interrupted.exitCode).toBe(1);
      const ha = reportOf(interrupted).hosts[0]!;
      note('rotation cut after its add (the DELETE of the old certificate never answered)', describeHost(reportOf(interrupted), 'a'));
      expect(ha.status).toBe('failed');
      expect(ha.error!.step).toMatch(/rotate certificate rot: remove the old one/);
      expect(ha.actions.map((x) => [x.action, x.applied])).toEqual([['rotate', false]]);
      expect(cut.seen.filter((s) => s.startsWith('DELETE'))).toEqual([`DELETE /1.0/certificates/${oldCert.fingerprint}`]);
    } finally {
      await cut.close();
    }
    // Never neither: both certificates are trusted under the name.
    expect((await trustStore(a)).map((c) => c.fingerprint).sort()).toEqual([oldCert.fingerprint, newCert.fingerprint].sort());

    const resumedInv = await writeInventory(
      dir,
      [{ name: 'a', vars: localVars(a) }],
      { incus_trusted_clients: [{ name: 'rot', certificate_file: newCert.file }] },
      'rot.yaml',
    );
    const resumed = await runCli(['-i', resumedInv, '--json'], env);
    expect(resumed.exitCode).toBe(0);
    note(
      'rerun after the cut rotation',
      `${describeHost(reportOf(resumed), 'a')} | ${reportOf(resumed)
        .hosts[0]!.actions.map((x) => `${x.action} (${x.reason})`)
        .join(', ')}`,
    );
    expect(reportOf(resumed).hosts[0]!.actions.map((x) => [x.action, x.fingerprint, x.applied])).toEqual([['remove', oldCert.fingerprint, true]]);
    expect((await trustStore(a)).map((c) => [c.name, c.fingerprint])).toEqual([['rot', newCert.fingerprint]]);
    expect((await runCli(['-i', resumedInv, '--check'], env)).exitCode).toBe(0);
  });
});
