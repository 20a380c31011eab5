/**
 * qubes_prometheus_proxy end to end: the real CLI (node bin/reconcile.js) over real SSH to a
 * lab host acting as dom0. Qubes OS cannot run here: the host's policy folder is a real
 * folder, but `qvm-service` and `qubes-policy-lint` are the recorded stand-ins of
 * test/lab/dom0.ts. Results are read back from the host's files directly, not through the tool.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync, symlinkSync, lstatSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import { dom0StandInState, setUpDom0StandIn } from '../lab/dom0.js';

const run = promisify(execFile);
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(
  JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../schema/report.schema.json'), 'utf8')),
);
const REPO = path.resolve(import.meta.dirname, '../..');
const POLICY_NAME = '30-prometheus-proxy.policy';

interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

function reconcile(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin/reconcile.js'), ...args], { env, cwd: REPO });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ exitCode: code ?? -1, stdout, stderr }));
  });
}

const HEADER = [
  '# Managed by reconcile (qubes_prometheus_proxy): edits here are replaced on its next apply.',
  '# Lets prometheus-qubes-proxy reach the exporters listed in the inventory, and nothing else.',
  '# Format: SERVICE +ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE] (argument = exporter port).',
  '',
];

let lab: Lab;
let dom0: LabHost;
let policyDir: string;
let policyPath: string;
let callLog: string;
let inventory: string;
let playbook: string;

/** Writes the inventory with this qubes_prometheus_proxy value for the lab's dom0. */
async function writeDom0Inventory(proxy: unknown): Promise<void> {
  const doc = {
    all: {
      children: {
        qubes: {
          hosts: {
            dom0: { ...dom0.inventoryVars(), qubes_policy_dir: policyDir, qubes_prometheus_proxy: proxy },
          },
        },
      },
    },
  };
  await writeFile(inventory, stringify(doc));
}

/** Makes a folder unwritable even for root; returns how to undo it. */
async function makeReadOnly(dir: string): Promise<() => Promise<void>> {
  try {
    await run('chattr', ['+i', dir]);
    return async () => void (await run('chattr', ['-i', dir]));
  } catch {
    await run('mount', ['--bind', dir, dir]);
    await run('mount', ['-o', 'remount,ro,bind', dir]);
    return async () => void (await run('umount', [dir]));
  }
}

const calls = () => readFileSync(callLog, 'utf8').split('\n').filter(Boolean);

beforeAll(async () => {
  lab = await startLab({ name: 'qubes', hosts: [{ name: 'dom0', incus: false, dom0: true }] });
  dom0 = lab.host('dom0');
  policyDir = dom0.qubesPolicyDir!;
  callLog = dom0.qvmCallLog!;
  policyPath = path.join(policyDir, POLICY_NAME);
  inventory = path.join(lab.dir, 'inventory.yaml');
  playbook = path.join(lab.dir, 'qubes.yaml');
  await writeFile(playbook, stringify([{ name: 'Qubes proxy', hosts: 'qubes', reconcile: ['qubes_prometheus_proxy'] }]));
}, 60_000);

afterAll(async () => {
  // Never leave the folder immutable: the lab could not remove it.
  if (policyDir) await run('chattr', ['-i', policyDir]).catch(() => undefined);
  await lab?.stop();
});

describe('qubes_prometheus_proxy on an SSH lab host acting as dom0 (Qubes stand-ins)', () => {
  const first = {
    proxy: 'sys-net',
    targets: [
      { vm: 'work', ports: [9100] },
      { vm: '@tag:monitored', port: 9100 },
    ],
  };

  test('--check shows the plan, exits 2 and changes nothing', async () => {
    await writeDom0Inventory(first);
    const r = await reconcile([playbook, '-i', inventory, '--check'], lab.env);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain(`  + qubes policy file "${policyPath}": add (not on dom0)`);
    expect(r.stdout).toContain('  + qubes service "sys-net: prometheus-qubes-proxy": add (not enabled in the VM)');
    expect(existsSync(policyPath)).toBe(false);
    // Only read: the service listing, never --enable.
    expect(calls()).toEqual(['qvm-service sys-net']);
  });

  test('--check --diff shows the unified diff of the file', async () => {
    const r = await reconcile([playbook, '-i', inventory, '--check', '--diff'], lab.env);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain(
      [
        '        --- /dev/null',
        `        +++ ${policyPath} (planned)`,
        '        @@ -0,0 +1,10 @@',
        ...HEADER.map((l) => `        +${l}`),
        '        +ruddo.PrometheusProxy +9100 sys-net @tag:monitored allow autostart=no',
        '        +ruddo.PrometheusProxy +9100 sys-net work allow autostart=no',
        '        +',
        '        +ruddo.PrometheusDiscover * sys-net @adminvm allow',
        '        +',
        '        +ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no',
      ].join('\n'),
    );
  });

  test('apply writes the policy (0664, root:qubes) through a checked temporary file and enables the proxy service', async () => {
    const r = await reconcile([playbook, '-i', inventory], lab.env);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(policyPath, 'utf8')).toBe(
      [
        ...HEADER,
        'ruddo.PrometheusProxy +9100 sys-net @tag:monitored allow autostart=no',
        'ruddo.PrometheusProxy +9100 sys-net work allow autostart=no',
        '',
        'ruddo.PrometheusDiscover * sys-net @adminvm allow',
        '',
        'ruddo.PrometheusProxy * @anyvm @anyvm deny notify=no',
        '',
      ].join('\n'),
    );
    const st = statSync(policyPath);
    expect((st.mode & 0o7777).toString(8)).toBe('664');
    expect(st.uid).toBe(0);
    const { stdout: group } = await run('stat', ['-c', '%G', policyPath]);
    expect(group.trim()).toBe('qubes');
    // The stand-in linter ran on a temporary file whose name starts with "." (ignored by qrexec).
    const lint = calls().filter((c) => c.startsWith('qubes-policy-lint '));
    expect(lint).toHaveLength(1);
    expect(path.basename(lint[0]!.split(' ')[1]!)).toMatch(/^\.reconcile-[0-9a-f]+$/);
    expect(calls()).toContain('qvm-service --enable sys-net prometheus-qubes-proxy');
    expect(readFileSync(dom0StandInState(path.dirname(callLog) + '/bin').servicesFile, 'utf8')).toBe('sys-net prometheus-qubes-proxy on\n');
    // Nothing else left in the folder (no temporary file, no backup of a file that did not exist).
    expect(readdirSync(policyDir)).toEqual([POLICY_NAME]);
  });

  test('a second --check plans nothing (exit 0) and the file stays byte-identical', async () => {
    const before = readFileSync(policyPath);
    const mtime = statSync(policyPath).mtimeMs;
    const r = await reconcile([playbook, '-i', inventory, '--check'], lab.env);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain('dom0: no changes');
    const again = await reconcile([playbook, '-i', inventory], lab.env);
    expect(again.exitCode).toBe(0);
    expect(readFileSync(policyPath).equals(before)).toBe(true);
    expect(statSync(policyPath).mtimeMs).toBe(mtime);
  });

  test('an added target: --diff shows the changed lines, apply keeps the previous file as a hidden backup', async () => {
    const previous = readFileSync(policyPath, 'utf8');
    await writeDom0Inventory({ ...first, targets: [...first.targets, { vm: 'vault', ports: [9100] }] });
    const check = await reconcile([playbook, '-i', inventory, '--check', '--diff'], lab.env);
    expect(check.exitCode).toBe(2);
    expect(check.stdout).toContain(`  ~ qubes policy file "${policyPath}": update in place (content differs from the inventory)`);
    expect(check.stdout).toContain(
      [
        `        --- ${policyPath} (dom0)`,
        `        +++ ${policyPath} (planned)`,
        '        @@ -3,6 +3,7 @@',
        `         ${HEADER[2]}`,
        '         ',
        '         ruddo.PrometheusProxy +9100 sys-net @tag:monitored allow autostart=no',
        '        +ruddo.PrometheusProxy +9100 sys-net vault allow autostart=no',
        '         ruddo.PrometheusProxy +9100 sys-net work allow autostart=no',
        '         ',
        '         ruddo.PrometheusDiscover * sys-net @adminvm allow',
        '',
      ].join('\n'),
    );
    const r = await reconcile([playbook, '-i', inventory], lab.env);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(policyPath, 'utf8')).toContain('ruddo.PrometheusProxy +9100 sys-net vault allow autostart=no\n');
    expect(readFileSync(path.join(policyDir, `.${POLICY_NAME}.reconcile-backup`), 'utf8')).toBe(previous);
    expect(readdirSync(policyDir).sort()).toEqual([`.${POLICY_NAME}.reconcile-backup`, POLICY_NAME]);
  });

  test("a symbolic link planted at the backup's name is replaced, never written through: its target stays untouched", async () => {
    const victim = path.join(lab.dir, 'victim-file');
    writeFileSync(victim, 'do not touch\n', { mode: 0o644 });
    const backup = path.join(policyDir, `.${POLICY_NAME}.reconcile-backup`);
    rmSync(backup, { force: true });
    symlinkSync(victim, backup);
    const previous = readFileSync(policyPath, 'utf8');
    await writeDom0Inventory({ ...first, targets: [...first.targets, { vm: 'vault2', ports: [9100] }] });
    const r = await reconcile([playbook, '-i', inventory], lab.env);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('do not touch\n');
    expect(lstatSync(backup).isSymbolicLink()).toBe(false);
    expect(readFileSync(backup, 'utf8')).toBe(previous);
    expect(readdirSync(policyDir).sort()).toEqual([`.${POLICY_NAME}.reconcile-backup`, POLICY_NAME]);
  });

  test('a failing write (policy folder made read-only) leaves the old policy in place and exits 1 naming host and step', async () => {
    const before = readFileSync(policyPath);
    await writeDom0Inventory({ ...first, targets: [...first.targets, { vm: 'vault', ports: [9100, 9101] }] });
    // Root ignores mode bits: "read-only" is the immutable attribute, or where the file
    // system has none (older tmpfs), a read-only bind mount of the folder.
    const undo = await makeReadOnly(policyDir);
    let r: CliResult;
    try {
      r = await reconcile([playbook, '-i', inventory], lab.env);
    } finally {
      await undo();
    }
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`dom0\\s+failed\\s+(write|back up) policy file ${policyPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(readFileSync(policyPath).equals(before)).toBe(true);
  });

  test('a proxy VM that dom0 does not know fails the plan before anything is written', async () => {
    const before = readFileSync(policyPath);
    await writeDom0Inventory({ ...first, proxy: ['sys-net', 'sys-nett'] });
    const r = await reconcile([playbook, '-i', inventory], lab.env);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain("qubes_prometheus_proxy: read Qubes services of sys-nett: qvm-service: error: no such domain: 'sys-nett'");
    expect(readFileSync(policyPath).equals(before)).toBe(true);
  });

  test('a proxy VM dropped from the inventory: its policy lines go, then its proxy service is disabled; then nothing to do', async () => {
    await writeDom0Inventory({ ...first, proxy: ['sys-net', 'sys-firewall'] });
    const both = await reconcile([playbook, '-i', inventory], lab.env);
    expect(both.exitCode, both.stdout + both.stderr).toBe(0);
    expect(calls()).toContain('qvm-service --enable sys-firewall prometheus-qubes-proxy');

    await writeDom0Inventory(first);
    const check = await reconcile([playbook, '-i', inventory, '--check'], lab.env);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(`  ~ qubes policy file "${policyPath}": update in place (content differs from the inventory)\n`);
    expect(check.stdout).toContain(
      '  - qubes service "sys-firewall: prometheus-qubes-proxy": remove (no longer a proxy VM in the inventory: its proxy service is disabled)\n',
    );
    expect(calls()).not.toContain('qvm-service --disable sys-firewall prometheus-qubes-proxy');

    const apply = await reconcile([playbook, '-i', inventory], lab.env);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(calls()).toContain('qvm-service --disable sys-firewall prometheus-qubes-proxy');
    expect(readFileSync(dom0StandInState(path.dirname(callLog) + '/bin').servicesFile, 'utf8')).toContain('sys-firewall prometheus-qubes-proxy off\n');
    expect(readFileSync(policyPath, 'utf8')).not.toContain('sys-firewall');
    expect((await reconcile([playbook, '-i', inventory, '--check'], lab.env)).exitCode).toBe(0);
  });

  test('an invalid inventory value is reported with file:line:column and value path, exit 1', async () => {
    await writeDom0Inventory({ proxy: 'sys-net', targets: [{ vm: 'work', ports: [80] }] });
    const r = await reconcile([playbook, '-i', inventory, '--check'], lab.env);
    expect(r.exitCode).toBe(1);
    expect(r.stdout + r.stderr).toMatch(
      new RegExp(
        `${inventory.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: error: all\\.children\\.qubes\\.hosts\\.dom0\\.qubes_prometheus_proxy\\.targets\\[0\\]\\.ports\\[0\\]: 80 is not a port in 1025–65535`,
      ),
    );
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});

describe('qubes_prometheus_proxy with ansible_connection: local (dom0 stand-in on PATH)', () => {
  // Without a PLAYBOOK: the shipped playbooks/site.yaml reconciles qubes_prometheus_proxy where it is declared.
  test('check exit 2, apply, then check exit 0 with a byte-identical file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-qubes-local-'));
    try {
      const standIn = await setUpDom0StandIn(dir);
      const inv = path.join(dir, 'inventory.yaml');
      await writeFile(
        inv,
        stringify({
          all: {
            hosts: {
              laptop: {
                ansible_connection: 'local',
                qubes_policy_dir: standIn.policyDir,
                qubes_prometheus_proxy: {
                  proxy: 'monitoring',
                  targets: [{ vm: 'personal', ports: [9100, 9256] }],
                  autostart: true,
                  policy_file: '20-metrics.policy',
                },
              },
            },
          },
        }),
      );
      const env = { ...process.env, PATH: `${standIn.binDir}:${process.env.PATH}`, HOME: dir };
      const check = await reconcile(['-i', inv, '--check'], env);
      expect(check.exitCode, check.stdout + check.stderr).toBe(2);
      const json = await reconcile(['-i', inv, '--check', '--json'], env);
      expect(json.exitCode).toBe(2);
      const report = JSON.parse(json.stdout);
      expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
      expect(
        report.hosts[0].actions.map((a: { module: string; action: string; kind: string; name: string; after: unknown }) => [
          a.module,
          a.action,
          a.kind,
          a.name,
          a.after,
        ]),
      ).toEqual([
        [
          'qubes_prometheus_proxy',
          'add',
          'qubes policy file',
          path.join(standIn.policyDir, '20-metrics.policy'),
          { rules: 4, mode: '0664', owner: 'root:qubes' },
        ],
        ['qubes_prometheus_proxy', 'add', 'qubes service', 'monitoring: prometheus-qubes-proxy', { enabled: true }],
      ]);
      const apply = await reconcile(['-i', inv], env);
      expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
      const file = path.join(standIn.policyDir, '20-metrics.policy');
      const written = readFileSync(file);
      expect(written.toString()).toContain('ruddo.PrometheusProxy +9256 monitoring personal allow autostart=yes\n');
      expect(readFileSync(standIn.qvmCallLog, 'utf8')).toContain('qvm-service --enable monitoring prometheus-qubes-proxy\n');
      const again = await reconcile(['-i', inv, '--check'], env);
      expect(again.exitCode, again.stdout).toBe(0);
      expect(readFileSync(file).equals(written)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reconcile scrape-config for Qubes VMs', () => {
  test('prints the proxy jobs of an inventory of dom0s, and they pass promtool check config', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-qubes-scrape-cli-'));
    try {
      const inv = path.join(dir, 'inventory.yaml');
      await writeFile(
        inv,
        stringify({
          all: {
            children: {
              qubes: {
                hosts: {
                  dom0: {
                    ansible_connection: 'local',
                    qubes_prometheus_proxy: {
                      proxy: 'sys-net',
                      proxy_addresses: { 'sys-net': '192.168.1.20' },
                      targets: [
                        { vm: 'work', ports: [9100, 9101] },
                        { vm: '@tag:monitored', port: 9100 },
                      ],
                    },
                  },
                },
              },
            },
          },
        }),
      );
      const r = await reconcile(['scrape-config', '-i', inv], { ...process.env, HOME: dir });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain('job_name: qubes-proxy-dom0\n');
      expect(r.stdout).toContain('metrics_path: /forward\n');
      expect(r.stderr).toContain('warning: dom0: qubes_prometheus_proxy target @tag:monitored is allowed by the policy but not scraped');
      const config = path.join(dir, 'prometheus.yml');
      await writeFile(config, r.stdout);
      const { stdout, stderr } = await run('promtool', ['check', 'config', config]);
      expect(stdout + stderr).toContain('SUCCESS');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
