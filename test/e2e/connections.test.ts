/**
 * One SSH connection per host for the whole run, counted where it cannot be faked: in each
 * host's sshd log (LogLevel VERBOSE logs "Connection from …" once per TCP connection). 30 lab
 * hosts, started concurrently, without HTTPS to keep the lab lean.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const HOSTS = 30;
let lab: Lab;
let startMs = 0;

beforeAll(async () => {
  const started = Date.now();
  lab = await startLab({ name: 'conn30', hosts: HOSTS });
  startMs = Date.now() - started;
  // Each host trusts one certificate of its own, so that every trust store has something to read.
  const pair = await generateSelfSigned({ commonName: 'conn', validityDays: 30, now: new Date(), type: 'client' });
  const cert = path.join(lab.dir, 'conn.crt');
  await writeFile(cert, pair.certificatePem);
  await Promise.all(lab.hosts.map((h) => h.incus(['config', 'trust', 'add-certificate', cert, '--name', `only-${h.name}`])));
}, 240_000);

afterAll(async () => {
  await lab?.stop();
});

it(`reading the trust store of ${HOSTS} hosts opens exactly one SSH connection per host (audit, then a whole --check run)`, async () => {
  // incus_trust_prune: false makes every trust store managed, so `reconcile --check` reads them all too.
  const inventory = await lab.writeInventory({ allVars: { incus_trust_prune: false } });
  const started = Date.now();
  const r = await promisify(execFile)('node', [path.join(REPO, 'bin/reconcile.js'), 'audit', '-i', inventory, '--json', '--forks', String(HOSTS)], {
    env: lab.env,
    maxBuffer: 32 << 20,
  });
  const auditMs = Date.now() - started;
  const report = JSON.parse(r.stdout) as { hosts: { host: string; status: string; certificates: { name: string }[] }[] };
  expect(report.hosts.filter((h) => h.status === 'ok')).toHaveLength(HOSTS);
  for (const h of report.hosts) expect(h.certificates.map((c) => c.name)).toEqual([`only-${h.host}`]);

  const counts: Record<string, number> = {};
  for (const h of lab.hosts) {
    const log = await readFile(path.join(lab.dir, 'logs', `${h.name}.sshd.log`), 'utf8');
    counts[h.name] = log.split('\n').filter((l) => l.includes(`Connection from `) && l.includes(` on ${h.address} port 22`)).length;
  }
  expect(counts).toEqual(Object.fromEntries(lab.hosts.map((h) => [h.name, 1])));

  // A whole check run (connect, observe, plan) likewise: one more connection per host, not more.
  const checkStarted = Date.now();
  const check = await promisify(execFile)('node', [path.join(REPO, 'bin/reconcile.js'), '--check', '-i', inventory, '--json', '--forks', String(HOSTS)], {
    env: lab.env,
    maxBuffer: 32 << 20,
  }).catch((e: { code: number; stdout: string; stderr: string }) => e);
  const checkMs = Date.now() - checkStarted;
  const run = JSON.parse(check.stdout) as { hosts: { host: string; status: string }[] };
  expect(run.hosts.filter((h) => h.status === 'failed' || h.status === 'unreachable')).toEqual([]);
  for (const h of lab.hosts) {
    const log = await readFile(path.join(lab.dir, 'logs', `${h.name}.sshd.log`), 'utf8');
    counts[h.name] = log.split('\n').filter((l) => l.includes(`Connection from `) && l.includes(` on ${h.address} port 22`)).length;
  }
  expect(counts).toEqual(Object.fromEntries(lab.hosts.map((h) => [h.name, 2])));
  console.log(`lab of ${HOSTS} hosts (sshd + incusd each) started in ${startMs} ms; audit of all ${HOSTS}: ${auditMs} ms; reconcile --check: ${checkMs} ms`);
});
