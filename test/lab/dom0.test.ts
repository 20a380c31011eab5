/**
 * The dom0 stand-ins (Qubes OS cannot run here): `qvm-service` keeps and reports services and
 * refuses unknown VMs like the real tool; `qubes-policy-lint` (Python, written after
 * qrexec's parser) agrees with reconcile's own checker on good and broken policy lines.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkPolicySyntax } from '../../src/modules/qubes-proxy/policy-syntax.js';
import { setUpDom0StandIn, type Dom0StandIn } from './dom0.js';

const run = promisify(execFile);
let dir: string;
let dom0: Dom0StandIn;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-dom0-'));
  dom0 = await setUpDom0StandIn(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tool(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(path.join(dom0.binDir, name), args);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('qvm-service stand-in', () => {
  test('lists, enables, refuses unknown VMs, and records every call', async () => {
    expect(await tool('qvm-service', ['sys-net'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await tool('qvm-service', ['--enable', 'sys-net', 'prometheus-qubes-proxy'])).code).toBe(0);
    expect((await tool('qvm-service', ['sys-net'])).stdout).toMatch(/^prometheus-qubes-proxy\s+on\n$/);
    expect((await tool('qvm-service', ['sys-net', 'prometheus-qubes-proxy'])).stdout).toBe('on\n');
    expect(await tool('qvm-service', ['nope'])).toEqual({ code: 2, stdout: '', stderr: "qvm-service: error: no such domain: 'nope'\n" });
    expect((await readFile(dom0.qvmCallLog, 'utf8')).split('\n').filter(Boolean)).toEqual([
      'qvm-service sys-net',
      'qvm-service --enable sys-net prometheus-qubes-proxy',
      'qvm-service sys-net',
      'qvm-service sys-net prometheus-qubes-proxy',
      'qvm-service nope',
    ]);
  });
});

describe('qubes-policy-lint stand-in agrees with checkPolicySyntax', () => {
  const lines = [
    'ruddo.PrometheusProxy +9100 sys-net work allow autostart=no',
    'ruddo.PrometheusProxy +9100 sys-net @tag:monitored allow autostart=yes',
    'ruddo.PrometheusDiscover * sys-net @adminvm allow',
    'ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no',
    'qubes.Filecopy * @anyvm @dispvm:@tag:x ask default_target=@dispvm',
    '!include-service ruddo.PrometheusProxy * /etc/qubes/policy.d/include/x',
    'ruddo.PrometheusProxy +9100 sys-net work',
    'ruddo.PrometheusProxy 9100 sys-net work allow',
    '* +9100 sys-net work allow',
    'ruddo.PrometheusProxy +9100 @anyvmx work allow',
    'ruddo.PrometheusProxy +9100 sys-net @tag: allow',
    'ruddo.PrometheusProxy +9100 sys-net work permit',
    'ruddo.PrometheusProxy +9100 sys-net work allow autostart',
    'ruddo.PrometheusProxy +9100 sys-net work allow autostart=maybe',
    'ruddo.PrometheusProxy * @anyvm @anyvm deny autostart=no',
    'ruddo.PrometheusProxy +9100 sys-net work allow notify=no notify=yes',
    'ruddo.PrometheusProxy +9100 sys-net @default allow',
    '!include',
    'qubes.Filecopy * work @anyvm ask target=@tag:x',
    'qubes.Filecopy * work @anyvm allow target=@dispvm:vault',
  ];
  test.each(lines)('%s', async (line) => {
    const file = path.join(dir, 'p.policy');
    await writeFile(file, `# a comment\n\n${line}\n`);
    const ours = checkPolicySyntax(`# a comment\n\n${line}\n`);
    const lint = await tool('qubes-policy-lint', [file]);
    expect(lint.code).toBe(ours.length === 0 ? 0 : 1);
    if (ours.length > 0) expect(lint.stdout).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: error: `));
  });
});
