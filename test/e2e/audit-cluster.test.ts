/**
 * `reconcile audit` over SSH on a real two-member Incus cluster (lab hosts: sshd + incusd each):
 * both members show the one shared trust store, the same cluster identity, and the members'
 * own server certificates marked as such (never "unmanaged").
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { formCluster, fromLabHost, makeCert, type GeneratedCert } from './trust-support.js';

const REPO = path.resolve(import.meta.dirname, '../..');
let lab: Lab;
let alice: GeneratedCert;

beforeAll(async () => {
  lab = await startLab({ name: 'audit-cluster', hosts: [{ name: 'c1' }, { name: 'c2' }] });
  // Joining reads a preseed from stdin: hand it through to the lab's incus client.
  const member = (name: string) => ({ ...fromLabHost(lab.host(name)), incus: (args: string[], stdin?: string) => lab.host(name).incus(args, stdin) });
  await formCluster([member('c1'), member('c2')], [lab.host('c1').address, lab.host('c2').address]);
  alice = await makeCert(lab.dir, 'alice');
  await lab.host('c1').incus(['config', 'trust', 'add-certificate', path.join(lab.dir, alice.file), '--name', 'alice']);
}, 180_000);

afterAll(async () => {
  await lab?.stop();
});

it('each member shows the shared store and the same cluster identity; member certificates are not "unmanaged"', async () => {
  const inventory = await lab.writeInventory({ allVars: { incus_trusted_clients: [{ name: 'alice', certificate_file: path.join(lab.dir, alice.file) }] } });
  const r = await promisify(execFile)('node', [path.join(REPO, 'bin/reconcile.js'), 'audit', '-i', inventory, '--json'], { env: lab.env });
  const report = JSON.parse(r.stdout) as {
    hosts: {
      host: string;
      status: string;
      server: { clustered: boolean; clusterId: string; members: { name: string }[] };
      certificates: { name: string; type: string; fingerprint: string; marks: string[] }[];
    }[];
  };
  expect(report.hosts.map((h) => [h.host, h.status, h.server.clustered])).toEqual([
    ['c1', 'ok', true],
    ['c2', 'ok', true],
  ]);
  expect(report.hosts[0]!.server.clusterId).toMatch(/^[0-9a-f]{64}$/);
  expect(report.hosts[1]!.server.clusterId).toBe(report.hosts[0]!.server.clusterId);
  expect(report.hosts[0]!.server.members.map((m) => m.name).sort()).toEqual(['c1', 'c2']);

  const rows = JSON.parse(await lab.host('c2').incus(['config', 'trust', 'list', '--format', 'json'])) as { name: string; type: string; fingerprint: string }[];
  for (const h of report.hosts) {
    expect(h.certificates.map((c) => `${c.name} ${c.type} ${c.fingerprint}`).sort()).toEqual(rows.map((c) => `${c.name} ${c.type} ${c.fingerprint}`).sort());
    expect(Object.fromEntries(h.certificates.map((c) => [c.name, c.marks.join(',')]))).toEqual({ alice: 'managed,unrestricted', c1: 'member', c2: 'member' });
  }

  const text = await promisify(execFile)('node', [path.join(REPO, 'bin/reconcile.js'), 'audit', '-i', inventory], { env: lab.env });
  const id = report.hosts[0]!.server.clusterId.slice(0, 12);
  expect(text.stdout).toMatch(new RegExp(`^c1 \\(c1, incus 6\\.\\S+, cluster ${id}\\): 3 trusted certificates$`, 'm'));
  expect(text.stdout).toMatch(new RegExp(`^c2 \\(c2, incus 6\\.\\S+, cluster ${id}\\): 3 trusted certificates$`, 'm'));
});
