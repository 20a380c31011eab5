/**
 * `reconcile audit` as a user runs it (the built CLI as a subprocess, HOME = the lab's client
 * home) against real lab hosts: a root host, a sudo host and a host behind a jump host, plus a
 * host with a wrong host key and one that is down. Each trust store is read back independently
 * with `incus config trust list` on the host's own daemon.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}
async function reconcile(lab: Lab, args: string[]): Promise<CliResult> {
  return run('node', [path.join(REPO, 'bin/reconcile.js'), ...args], { env: { ...lab.env, RECONCILE_CONNECT_TIMEOUT_MS: '20000' }, cwd: lab.dir }).then(
    (r) => ({ exitCode: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ exitCode: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

interface TrustRow {
  name: string;
  type: string;
  restricted: boolean;
  projects: string[] | null;
  description: string;
  fingerprint: string;
  expires_at?: string;
}

async function trustList(host: LabHost): Promise<TrustRow[]> {
  return JSON.parse(await host.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[];
}

let lab: Lab;
let inventory: string;
const READABLE = ['web1', 'sudo1', 'inner'];

beforeAll(async () => {
  lab = await startLab({
    name: 'audit',
    hosts: [
      { name: 'web1' },
      { name: 'sudo1', user: 'sudoer' },
      { name: 'bastion', incus: false },
      { name: 'inner', jumpVia: 'bastion' },
      { name: 'wrongkey', incus: false, wrongHostKey: true },
      { name: 'down', down: true },
    ],
  });
  const now = new Date();
  const invDir = path.join(lab.dir, 'inventory');
  await mkdir(invDir, { recursive: true });
  const certs: Record<string, string> = {};
  for (const [name, days, type] of [
    ['admin', 3650, 'client'],
    ['laptop', 365, 'client'],
    ['ci', 10, 'client'],
    ['prom', 3650, 'metrics'],
  ] as const) {
    const pair = await generateSelfSigned({ commonName: name, validityDays: days, now, type });
    certs[name] = path.join(lab.dir, `${name}.crt`);
    await writeFile(certs[name]!, pair.certificatePem);
  }
  await writeFile(path.join(invDir, 'admin.crt'), await (await import('node:fs/promises')).readFile(certs.admin!));
  const add = (host: string, name: string, extra: string[] = []) =>
    lab.host(host).incus(['config', 'trust', 'add-certificate', certs[name]!, '--name', name, ...extra]);
  await add('web1', 'admin');
  await add('web1', 'laptop', ['--restricted', '--projects', 'default', '--description', 'old laptop']);
  await add('sudo1', 'admin');
  await add('sudo1', 'ci', ['--restricted']);
  await add('inner', 'admin');
  await add('inner', 'prom', ['--type', 'metrics']);

  // The jump host is only a way in: not an inventory host.
  const hostsYaml = Object.fromEntries(lab.hosts.filter((h) => h.name !== 'bastion').map((h) => [h.name, h.inventoryVars()]));
  inventory = path.join(invDir, 'hosts.yaml');
  await writeFile(
    inventory,
    stringify({
      all: {
        vars: { incus_trusted_clients: [{ name: 'admin', certificate_file: 'admin.crt', description: 'ops team' }] },
        children: { incus: { hosts: hostsYaml } },
      },
    }),
  );
});

afterAll(async () => {
  await lab?.stop();
});

interface AuditJson {
  hosts: {
    host: string;
    status: string;
    certificates: {
      name: string;
      type: string;
      fingerprint: string;
      restricted: boolean;
      projects: string[];
      description: string;
      notAfter: string;
      marks: string[];
    }[];
    error?: { step: string; message: string };
  }[];
  summary: Record<string, number>;
  exitCode: number;
}

describe('reconcile audit', () => {
  it('--json: each readable host shows exactly what `incus config trust list` shows there; failed hosts carry their reason; exit 1', async () => {
    const r = await reconcile(lab, ['audit', '-i', inventory, '--json']);
    expect(r.exitCode, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as AuditJson;
    expect(report.hosts.map((h) => [h.host, h.status])).toEqual([
      ['web1', 'ok'],
      ['sudo1', 'ok'],
      ['inner', 'ok'],
      ['wrongkey', 'unreachable'],
      ['down', 'unreachable'],
    ]);
    for (const name of READABLE) {
      const rows = (await trustList(lab.host(name))).sort((a, b) => a.name.localeCompare(b.name));
      expect(rows.length).toBe(2);
      const audited = report.hosts.find((h) => h.host === name)!.certificates;
      expect(
        audited.map(({ name, type, fingerprint, restricted, projects, description }) => ({ name, type, fingerprint, restricted, projects, description })),
      ).toEqual(
        rows.map((row) => ({
          name: row.name,
          type: row.type,
          fingerprint: row.fingerprint,
          restricted: row.restricted,
          projects: [...(row.projects ?? [])].sort(),
          description: row.description,
        })),
      );
    }
    const marks = Object.fromEntries(report.hosts.flatMap((h) => h.certificates.map((c) => [`${h.host}/${c.name}`, c.marks.join(',')])));
    expect(marks).toEqual({
      'web1/admin': 'managed,unrestricted',
      'web1/laptop': 'unmanaged',
      'sudo1/admin': 'managed,unrestricted',
      'sudo1/ci': 'unmanaged,expiring',
      'inner/admin': 'managed,unrestricted',
      'inner/prom': 'unmanaged,unrestricted',
    });
    const wrong = report.hosts.find((h) => h.host === 'wrongkey')!.error!;
    expect(wrong.step).toBe('verify host key');
    expect(wrong.message).toContain(lab.host('wrongkey').hostKeyFingerprint);
    expect(report.hosts.find((h) => h.host === 'down')!.error).toEqual({ step: 'connect', message: `connection refused by ${lab.host('down').address}:22` });
    expect(report.summary).toMatchObject({ hosts: 5, read: 3, failed: 2, certificates: 6, managed: 3, unmanaged: 3, expiring: 1 });
  });

  it('text: one block per host whose rows are the rows of `incus config trust list`, failures with their reason', async () => {
    const r = await reconcile(lab, ['audit', '-i', inventory]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    const blocks = r.stdout.trimEnd().split('\n\n');
    for (const name of READABLE) {
      const block = blocks.find((b) => b.startsWith(`${name} (`))!;
      expect(block, r.stdout).toBeDefined();
      const lines = block.split('\n').slice(2);
      // csv columns as the table shows them: name, type, description, fingerprint (12), expiry date (projects: its own column)
      const csv = (await lab.host(name).incus(['config', 'trust', 'list', '--format', 'csv']))
        .trim()
        .split('\n')
        .map((l) => l.split(','));
      expect(lines.length).toBe(csv.length);
      for (const [certName, type, , shortFingerprint, expiry] of csv) {
        const expires = expiry!.slice(0, 10).replace(/\//g, '-');
        expect(
          lines.some((l) => new RegExp(`^  ${certName}\\s+${type}\\s+${shortFingerprint}\\s+(all|none|[\\w,-]+)\\s+${expires}\\s`).test(l)),
          `${certName} on ${name}:\n${block}`,
        ).toBe(true);
      }
    }
    expect(r.stdout).toContain(
      `wrongkey: UNREACHABLE: verify host key: HOST KEY CHANGED for ${lab.host('wrongkey').address}: it offered ssh-ed25519 ${lab.host('wrongkey').hostKeyFingerprint}`,
    );
    expect(r.stdout).toContain(`down: UNREACHABLE: connect: connection refused by ${lab.host('down').address}:22`);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('5 hosts: 3 read, 2 failed; 6 certificates: 3 managed, 3 unmanaged, 1 expiring, 4 unrestricted');
    expect(r.stderr).toBe('');
  });

  it('--limit reads only the selected hosts (exit 0 when all of them were read); --warn-days moves the window', async () => {
    const r = await reconcile(lab, ['audit', '-i', inventory, '--limit', 'sudo1:inner', '--json', '--warn-days', '5']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as AuditJson;
    expect(report.hosts.map((h) => h.host)).toEqual(['sudo1', 'inner']);
    expect(report.hosts[0]!.certificates.find((c) => c.name === 'ci')!.marks).toEqual(['unmanaged']);
  });

  it('a host whose incusd is down fails with the step and reason; the others are still read', async () => {
    await lab.host('web1').stopIncus();
    try {
      const r = await reconcile(lab, ['audit', '-i', inventory, '--limit', 'web1:sudo1', '--json']);
      expect(r.exitCode).toBe(1);
      const report = JSON.parse(r.stdout) as AuditJson;
      expect(report.hosts.map((h) => [h.host, h.status])).toEqual([
        ['web1', 'failed'],
        ['sudo1', 'ok'],
      ]);
      expect(report.hosts[0]!.error!.message).toMatch(/^Incus API \(GET \/1\.0[^)]*\): cannot open \S+unix\.socket on the host: /);
    } finally {
      await lab.host('web1').startIncus();
    }
    const again = await reconcile(lab, ['audit', '-i', inventory, '--limit', 'web1']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
  });

  it('a --limit that selects no host is a one-line usage error, exit 1, nothing read', async () => {
    const typo = await reconcile(lab, ['audit', '-i', inventory, '--limit', 'web9', '--json']);
    expect(typo).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'reconcile: audit: --limit "web9" leaves no host to audit (could not match host pattern "web9": it names no host or group in the inventory)\n',
    });
    // Patterns that each match, but whose combination leaves nothing.
    const empty = await reconcile(lab, ['audit', '-i', inventory, '--limit', 'web1:&sudo1']);
    expect(empty).toEqual({ exitCode: 1, stdout: '', stderr: 'reconcile: audit: --limit "web1:&sudo1" leaves no host to audit\n' });
  });

  it('a usage error is one line', async () => {
    const r = await reconcile(lab, ['audit', '-i', inventory, '--warn-days', 'soon']);
    expect(r).toEqual({ exitCode: 1, stdout: '', stderr: "reconcile: audit: --warn-days takes a whole number of at least 1, not 'soon'\n" });
  });
});
