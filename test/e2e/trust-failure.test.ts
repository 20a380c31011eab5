/**
 * One host dies in the middle of apply: the others converge, the dead host stops its own remaining
 * actions, the report says exactly what was applied where, and the exit code is 1.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { client, fromLabHost, makeCert, makeTempDir, reconcile, REPO, writeInventory, type GeneratedCert, type TestIncus } from './trust-support.js';

const CERTS = 40;
let root: string;
let lab: Lab;
let hosts: TestIncus[];
let certs: GeneratedCert[];

beforeAll(async () => {
  root = await makeTempDir('trust-failure');
  lab = await startLab({ hosts: [{ name: 'h1' }, { name: 'h2' }, { name: 'h3' }], name: 'trust-failure' });
  hosts = lab.hosts.map(fromLabHost);
  certs = [];
  for (let i = 0; i < CERTS; i++) certs.push(await makeCert(root, `c${i}`));
}, 180_000);

afterAll(async () => {
  await lab?.stop();
  await rm(root, { recursive: true, force: true });
}, 120_000);

it('a host killed during apply: the others converge, the report is exact, exit 1', async () => {
  const [h1, h2, h3] = hosts as [TestIncus, TestIncus, TestIncus];
  const inv = await writeInventory(root, hosts, { incus_trusted_clients: certs.map((c, i) => client(`c${i}`, c)) });
  let killed: Promise<void> | undefined;
  const result = await reconcile(['-i', inv, '--json', '--forks', '3'], {
    env: lab.env,
    onStderrLine: (line) => {
      // The first action applied on h2 is the cue: its incusd dies with most of its actions to go.
      if (!killed && /(^| )h2: incus_trust: applied/.test(line)) killed = h2.stop();
    },
  });
  await killed;
  expect(killed, `h2 was never seen applying: ${result.stderr}`).toBeDefined();
  expect(result.exitCode, result.stdout + result.stderr).toBe(1);
  const report = JSON.parse(result.stdout);
  const schema = JSON.parse(readFileSync(join(REPO, 'schema/report.schema.json'), 'utf8'));
  const validate = new Ajv2020({ allErrors: true, validateFormats: false }).compile(schema);
  expect(validate(report), JSON.stringify(validate.errors)).toBe(true);

  const byHost = Object.fromEntries(report.hosts.map((h: { host: string }) => [h.host, h]));
  expect([byHost.h1.status, byHost.h2.status, byHost.h3.status]).toEqual(['changed', 'failed', 'changed']);
  expect(byHost.h2.error.step).toMatch(/^add certificate c\d+$/);
  expect(report.summary.hosts).toMatchObject({ changed: 2, failed: 1 });

  // The survivors hold everything.
  for (const h of [h1, h3]) {
    expect((await h.trust()).map((r) => r.fingerprint).sort()).toEqual(certs.map((c) => c.fingerprint).sort());
  }

  // The dead host: what the report calls applied is there, and nothing after the failing step.
  await h2.start();
  const live = new Set((await h2.trust()).map((r) => r.fingerprint));
  const actions = byHost.h2.actions as { name: string; fingerprint: string; applied: boolean }[];
  const applied = actions.filter((a) => a.applied);
  const failedAt = actions.findIndex((a) => !a.applied);
  expect(applied.length).toBeGreaterThan(0);
  expect(applied.length).toBeLessThan(CERTS);
  expect(actions.slice(0, failedAt).every((a) => a.applied)).toBe(true);
  for (const a of applied) expect(live.has(a.fingerprint), `${a.name} reported applied`).toBe(true);
  // The action in flight when incusd died may or may not have been committed; every later one was never sent.
  for (const a of actions.slice(failedAt + 1)) expect(live.has(a.fingerprint), `${a.name} reported not applied`).toBe(false);
  expect(byHost.h2.error.step).toBe(`add certificate ${actions[failedAt]!.name}`);

  // The next run finishes the job everywhere.
  expect((await reconcile(['-i', inv], { env: lab.env })).exitCode).toBe(0);
  expect((await reconcile(['-i', inv, '--check'], { env: lab.env })).exitCode).toBe(0);
});
