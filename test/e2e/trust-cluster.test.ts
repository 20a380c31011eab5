/**
 * A real Incus cluster of three lab hosts (sshd + incusd each, on loopback addresses) shares one trust store: reconcile
 * plans and applies it once, through the first reachable member in name order, and reports the
 * other members as covered. A standalone host beside it is reconciled on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import {
  client,
  formCluster,
  fromLabHost,
  makeCert,
  makeTempDir,
  reconcile,
  storeView,
  writeInventory,
  type GeneratedCert,
  type TestIncus,
} from './trust-support.js';

let root: string;
let lab: Lab;
let hosts: TestIncus[];
let certs: Record<string, GeneratedCert>;
/** The CLI with the lab's client HOME (ssh key, known_hosts). */
const cli = (args: string[]) => reconcile(args, { env: lab.env });
const byName = (n: string) => hosts.find((h) => h.name === n)!;

beforeAll(async () => {
  root = await makeTempDir('trust-cluster');
  // Lab hosts: reached over SSH by the tool; the members' incusd listen for HTTPS on their own address.
  lab = await startLab({
    hosts: [{ name: 'c1', https: true }, { name: 'c2', https: true }, { name: 'c3', https: true }, { name: 's1' }],
    name: 'trust-cluster',
  });
  hosts = lab.hosts.map(fromLabHost);
  await formCluster(
    [byName('c1'), byName('c2'), byName('c3')],
    ['c1', 'c2', 'c3'].map((n) => lab.host(n).address),
  );
  certs = { alice: await makeCert(root, 'alice'), bob: await makeCert(root, 'bob') };
}, 180_000);

afterAll(async () => {
  await lab?.stop();
  await rm(root, { recursive: true, force: true });
}, 120_000);

describe('an Incus cluster', () => {
  it('is one trust store: planned and applied once through c1, c2 and c3 covered', async () => {
    // Inventory order is not name order: the member chosen is the first by name.
    const inv = await writeInventory(root, [byName('c3'), byName('s1'), byName('c2'), byName('c1')], {
      incus_trusted_clients: [client('alice', certs.alice!), client('bob', certs.bob!, { restricted: true, projects: ['default'] })],
    });
    const check = await cli(['-i', inv, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain('c3: no changes (incus_trust covered by c1)\n');
    expect(check.stdout).toContain('c2: no changes (incus_trust covered by c1)\n');
    expect(check.stdout).toContain('Plan: 4 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged\n');
    expect(check.stdout).toContain(`Recap:
  c3    covered      by c1
  s1    drift        2 to apply
  c2    covered      by c1
  c1    drift        2 to apply
`);

    const apply = await cli(['-i', inv, '--json']);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    const report = JSON.parse(apply.stdout);
    expect(report.hosts.map((h: { host: string; status: string; coveredBy?: string }) => [h.host, h.status, h.coveredBy])).toEqual([
      ['c3', 'covered', 'c1'],
      ['s1', 'changed', undefined],
      ['c2', 'covered', 'c1'],
      ['c1', 'changed', undefined],
    ]);
    // Read independently on every member: the same store, the members' server certificates kept.
    const expected = {
      [`alice@${certs.alice!.fingerprint.slice(0, 12)}`]: 'client restricted=false projects=[] description=""',
      [`bob@${certs.bob!.fingerprint.slice(0, 12)}`]: 'client restricted=true projects=[default] description=""',
    };
    for (const m of ['c1', 'c2', 'c3']) {
      const rows = await byName(m).trust();
      expect(rows.filter((r) => r.type === 'server').map((r) => r.name)).toEqual(['c1', 'c2', 'c3']);
      expect(storeView(rows.filter((r) => r.type !== 'server'))).toEqual(expected);
    }
    expect(storeView(await byName('s1').trust())).toEqual(expected);
    // In sync, still one store: the members are known without a change to make (a store that
    // holds server certificates is asked for its members and its identity).
    const again = await cli(['-i', inv, '--check']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('c3: no changes (incus_trust covered by c1)\n');
    expect(again.stdout).toContain('c2: no changes (incus_trust covered by c1)\n');
  });

  it('goes through the next member by name when the first cannot be read, pruning never touches server certificates', async () => {
    const inv = await writeInventory(root, [byName('c1'), byName('c2'), byName('c3')], {
      incus_trusted_clients: [client('alice', certs.alice!)],
      incus_trust_prune: true,
    });
    await byName('c1').stop();
    try {
      const apply = await cli(['-i', inv, '--json']);
      expect(apply.exitCode, apply.stdout + apply.stderr).toBe(1);
      const report = JSON.parse(apply.stdout);
      expect(report.hosts.map((h: { host: string; status: string; coveredBy?: string }) => [h.host, h.status, h.coveredBy])).toEqual([
        ['c1', 'failed', undefined],
        ['c2', 'changed', undefined],
        ['c3', 'covered', 'c2'],
      ]);
      expect(report.hosts[1].actions.map((a: { action: string; name: string; applied: boolean }) => `${a.action} ${a.name} ${a.applied}`)).toEqual([
        'remove bob true',
      ]);
      const rows = await byName('c3').trust();
      expect(rows.map((r) => `${r.name} ${r.type}`)).toEqual(['alice client', 'c1 server', 'c2 server', 'c3 server']);
    } finally {
      await byName('c1').start();
    }
  });

  it('reached over HTTPS only, through any member: one plan through c1; the certificate reconcile authenticates with survives a prune', async () => {
    // As `incus remote add` does for a cluster: the client pair trusted once, the cluster certificate pinned.
    await byName('c1').incus(['config', 'trust', 'add-certificate', lab.clientCertFile]);
    const pinned = join(root, 'cluster.crt');
    await copyFile(join(lab.host('c1').incusDir!, 'cluster.crt'), pinned);
    const inv = join(root, 'https-cluster.yaml');
    await writeFile(
      inv,
      stringify({
        all: {
          vars: { incus_trusted_clients: [client('alice', certs.alice!), client('carol', certs.bob!)], incus_trust_prune: true },
          hosts: Object.fromEntries(
            ['c3', 'c2', 'c1'].map((n) => [n, { incus_api_url: `https://${lab.host(n).address}:8443`, incus_server_cert_file: pinned }]),
          ),
        },
      }),
    );
    const check = await cli(['-i', inv, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain('c2: no changes (incus_trust covered by c1)\n');
    expect(check.stdout).toContain('c3: no changes (incus_trust covered by c1)\n');
    expect(check.stdout.match(/\+ incus certificate "carol"/g)).toHaveLength(1);
    expect(check.stdout.match(/is the one reconcile authenticates with over HTTPS: pruning it would lock reconcile out of the cluster/g)).toHaveLength(1);
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
    const rows = await byName('c3').trust();
    expect(rows.map((r) => `${r.name} ${r.type}`)).toEqual(['alice client', 'c1 server', 'c2 server', 'c3 server', 'carol client', 'client.crt client']);
  });
});
