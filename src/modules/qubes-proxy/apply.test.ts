/**
 * The apply side against real files on this machine, through the real local HostSession
 * (src/transport/local.ts) and the dom0 stand-ins of test/lab/dom0.ts (Qubes OS cannot run
 * here; `qubes-policy-lint` there is a stand-in that runs a real syntax check).
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TransportError } from '../../errors.js';
import { connectLocal } from '../../transport/local.js';
import type { HostSession } from '../../transport/types.js';
import { setUpDom0StandIn, type Dom0StandIn } from '../../../test/lab/dom0.js';
import type { Action, ModulePlan } from '../types.js';
import { applyQubesProxy, policyCheckCommand } from './apply.js';
import { observeQubesProxy } from './observe.js';
import { planQubesProxy, type PolicyFileActionData } from './plan.js';
import type { DesiredQubesProxy } from './model.js';

const run = promisify(execFile);
let dir: string;
let dom0: Dom0StandIn;
let session: HostSession;
const savedPath = process.env.PATH;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-qubes-apply-'));
  dom0 = await setUpDom0StandIn(dir);
  // The local session spawns commands with this process's PATH: the stand-ins come first.
  process.env.PATH = `${dom0.binDir}:${savedPath}`;
  session = await connectLocal(
    { host: 'dom0', connection: 'local', address: 'localhost', port: 22, user: 'root', jumps: [], become: false, incusSocket: '/nonexistent' },
    { connectTimeoutMs: 5_000, commandTimeoutMs: 20_000, knownHostsFiles: [], acceptNewHostKeys: false },
  );
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await session?.close();
  await rm(dir, { recursive: true, force: true });
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function runCheck(file: string, expected: string): Promise<{ code: number; stderr: string }> {
  const [cmd, ...args] = policyCheckCommand(expected).map((a) => (a === '{}' ? file : a));
  try {
    const { stderr } = await run(cmd!, args, { env: process.env });
    return { code: 0, stderr };
  } catch (e) {
    const err = e as { code: number; stderr: string };
    return { code: err.code, stderr: err.stderr };
  }
}

describe('the check run on the temporary file', () => {
  test('passes a good file whose bytes are the checked ones; the linter ran on it', async () => {
    const file = path.join(dir, '.reconcile-good');
    const text = 'ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no\n';
    await writeFile(file, text);
    expect(await runCheck(file, sha256(text))).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(dom0.qvmCallLog, 'utf8')).toContain(`qubes-policy-lint ${file}\n`);
  });

  test('refuses bytes that differ from the checked text (read-back)', async () => {
    const file = path.join(dir, '.reconcile-short');
    await writeFile(file, 'ruddo.PrometheusProxy * @anyvm @anyvm deny\n');
    const r = await runCheck(file, sha256('ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`read-back check: ${file} does not hold the checked text\n`);
  });

  test("refuses what dom0's linter refuses", async () => {
    const file = path.join(dir, '.reconcile-broken');
    const text = 'ruddo.PrometheusProxy +9100 sys-net work allow autostart=maybe\n';
    await writeFile(file, text);
    const r = await runCheck(file, sha256(text));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${file}:1: error: invalid value for autostart: 'maybe'\n`);
  });
});

describe('applyQubesProxy through the local HostSession', () => {
  const desired = (): DesiredQubesProxy => ({
    proxies: ['sys-net'],
    targets: [{ target: 'work', ports: [9100] }],
    autostart: false,
    proxyAddresses: {},
    policyDir: dom0.policyDir,
    policyFile: '30-prometheus-proxy.policy',
    policyPath: path.join(dom0.policyDir, '30-prometheus-proxy.policy'),
  });
  const hooks = (applied: Action[]) => ({ actionStarted: () => undefined, actionApplied: (a: Action) => applied.push(a) });
  const ctx = { now: new Date(0), prune: false, warnDays: 30 };

  test('observe → plan → apply, then the plan is empty', async () => {
    const d = desired();
    const plan = planQubesProxy(d, await observeQubesProxy(session, d), ctx);
    const applied: Action[] = [];
    await applyQubesProxy(session, plan, hooks(applied));
    expect(applied.map((a) => a.kind)).toEqual(['qubes policy file', 'qubes service']);
    expect(planQubesProxy(d, await observeQubesProxy(session, d), ctx).actions).toEqual([]);
  });

  test('a plan whose text fails the syntax check writes nothing and names host and step', async () => {
    const d = desired();
    const before = readFileSync(d.policyPath);
    const plan = planQubesProxy({ ...d, targets: [{ target: 'vault', ports: [9100] }] }, await observeQubesProxy(session, d), ctx);
    // As if a bug had produced a broken line: apply must still refuse it.
    const action = plan.actions[0]!;
    (action.payload as PolicyFileActionData).content += 'ruddo.PrometheusProxy +9100 sys-net\n';
    const applied: Action[] = [];
    const error = await applyQubesProxy(session, plan, hooks(applied)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).message).toBe(
      `dom0: check policy file ${d.policyPath}: line 10: wrong number of fields: 3 (SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...])`,
    );
    expect(applied).toEqual([]);
    expect(readFileSync(d.policyPath).equals(before)).toBe(true);
    expect(readdirSync(dom0.policyDir)).toEqual(['30-prometheus-proxy.policy']);
    expect(existsSync(path.join(dom0.policyDir, '.30-prometheus-proxy.policy.reconcile-backup'))).toBe(false);
  });
});
