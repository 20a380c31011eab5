/**
 * Saved plans end to end on lab hosts (real sshd + incusd), as a Terraform user works: plan in
 * CI with --out, review (`show`, Markdown for the pull request), then `apply PLAN` — exactly what
 * was reviewed, or nothing where the host moved. Every store is read back with the incus client.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { client, fromLabHost, makeCert, makeTempDir, reconcile, REPO, storeView, writeInventory, type GeneratedCert, type TestIncus } from './trust-support.js';

const planSchema = JSON.parse(readFileSync(join(REPO, 'schema/plan.schema.json'), 'utf8'));
const validatePlan = new Ajv2020({ allErrors: true, validateFormats: false, strict: false }).compile(planSchema);

let root: string;
let lab: Lab;
let h1: TestIncus;
let h2: TestIncus;
let certs: Record<string, GeneratedCert>;

beforeAll(async () => {
  root = await makeTempDir('saved-plan');
  lab = await startLab({ hosts: [{ name: 'h1' }, { name: 'h2' }], name: 'saved-plan' });
  [h1, h2] = [fromLabHost(lab.host('h1')), fromLabHost(lab.host('h2'))];
  certs = {};
  for (const n of ['alice', 'bob', 'carol']) certs[n] = await makeCert(root, n);
});

afterAll(async () => {
  await lab?.stop();
  await rm(root, { recursive: true, force: true });
});

beforeEach(async () => {
  for (const h of [h1, h2]) for (const row of await h.trust()) await h.incus(['config', 'trust', 'remove', row.fingerprint]);
});

const cli = (args: string[]) => reconcile(args, { env: lab.env });
const fp = (c: GeneratedCert) => c.fingerprint.slice(0, 12);

/** Both hosts trust alice (described "old") and bob; the inventory wants alice re-described, carol added, bob gone. */
async function driftedInventory(): Promise<string> {
  const start = await writeInventory(
    root,
    [h1, h2],
    { incus_trusted_clients: [client('alice', certs.alice!, { description: 'old' }), client('bob', certs.bob!)] },
    {},
    'start.yaml',
  );
  expect((await cli(['-i', start])).exitCode).toBe(0);
  return writeInventory(
    root,
    [h1, h2],
    {
      incus_trusted_clients: [
        client('alice', certs.alice!, { description: 'new' }),
        client('carol', certs.carol!),
        client('bob', certs.bob!, { state: 'absent' }),
      ],
    },
    {},
    'hosts.yaml',
  );
}

describe('saved plans', () => {
  it('show prints the same text as the --check also when a host could not be read (its error once, above)', async () => {
    const inv = join(root, 'with-gone.yaml');
    await writeFile(
      inv,
      stringify({
        all: {
          vars: { incus_trusted_clients: [client('carol', certs.carol!)] },
          hosts: { h1: lab.host('h1').inventoryVars(), gone: { ansible_host: '127.0.0.1', ansible_port: 1, ansible_user: 'root' } },
        },
      }),
    );
    const planFile = join(root, 'with-gone.json');
    const check = await cli(['-i', inv, '--check', '--out', planFile, '--lock-timeout', '0']);
    expect(check.exitCode).toBe(1);
    expect(check.stdout).toMatch(/^gone: unreachable: connect: /m);
    expect(check.stdout).toMatch(/^  gone +unreachable +connect \(error above\)$/m);
    expect(await cli(['show', planFile])).toEqual({ exitCode: 0, stdout: check.stdout, stderr: '' });
  });

  it('--out saves the plan (0600, schema-valid, no key material); show prints the same text as the --check; apply applies exactly it', async () => {
    const inv = await driftedInventory();
    const planFile = join(root, 'plan.json');
    const check = await cli(['-i', inv, '--check', '--out', planFile]);
    expect(check.exitCode, check.stderr).toBe(2);
    expect(statSync(planFile).mode & 0o777).toBe(0o600);
    const text = await readFile(planFile, 'utf8');
    expect(text).not.toContain('PRIVATE KEY');
    const saved = JSON.parse(text);
    expect(validatePlan(saved), JSON.stringify(validatePlan.errors)).toBe(true);
    expect(
      saved.hosts[0].plans[0].actions.map((a: { action: string; name: string; reason: string; precondition?: { digest: string | null } }) => [
        a.action,
        a.name,
        a.reason,
        a.precondition?.digest === null ? 'absent' : 'as read',
      ]),
    ).toEqual([
      ['update', 'alice', 'fields-differ', 'as read'],
      ['add', 'carol', 'missing', 'absent'],
      ['remove', 'bob', 'absent', 'as read'],
    ]);

    const shown = await cli(['show', planFile]);
    expect(shown).toEqual({ exitCode: 0, stdout: check.stdout, stderr: '' });

    const md = await cli(['show', planFile, '--format', 'markdown']);
    expect(md.exitCode).toBe(0);
    expect(md.stdout).toContain('| host | status | + add | ~ update | -/+ rotate | - remove | ? unmanaged |');
    expect(md.stdout).toContain('| h1 | changes | 1 | 1 |  | 1 |  |');
    expect(md.stdout).toContain(`+  + incus certificate "carol" [${fp(certs.carol!)}]: add (missing)`);

    const apply = await cli(['apply', planFile]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).not.toContain('Plan:');
    expect(apply.stdout).toContain('Recap:\n  h1    changed      3 applied\n  h2    changed      3 applied\n');
    for (const h of [h1, h2]) {
      expect(storeView(await h.trust())).toEqual({
        [`alice@${fp(certs.alice!)}`]: 'client restricted=false projects=[] description="new"',
        [`carol@${fp(certs.carol!)}`]: 'client restricted=false projects=[] description=""',
      });
    }
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
  });

  it('an entry changed by hand after the plan: that action is refused naming host, entry and what moved; the others apply; exit 1; a fresh plan converges', async () => {
    const inv = await driftedInventory();
    const planFile = join(root, 'moved.json');
    expect((await cli(['-i', inv, '--check', '--out', planFile])).exitCode).toBe(2);
    // Someone restricts alice on h1 with the incus client after the review.
    await h1.incus(['query', '-X', 'PATCH', `/1.0/certificates/${certs.alice!.fingerprint}`, '--data', JSON.stringify({ restricted: true })]);

    const apply = await cli(['apply', planFile, '--json']);
    expect(apply.exitCode, apply.stderr).toBe(1);
    const report = JSON.parse(apply.stdout);
    const [r1, r2] = report.hosts;
    expect(r1.status).toBe('failed');
    expect(r1.error).toEqual({
      step: 'update certificate alice',
      message: 'the entry was changed by someone else since it was read (restricted); left as it is — the next run plans again',
    });
    expect(r1.actions.map((a: { name: string; applied: boolean }) => `${a.name} ${a.applied}`)).toEqual(['alice false', 'carol false', 'bob false']);
    expect(r2.status).toBe('changed');
    // h1 untouched (alice keeps the hand-made change), h2 applied.
    expect(storeView(await h1.trust())).toEqual({
      [`alice@${fp(certs.alice!)}`]: 'client restricted=true projects=[] description="old"',
      [`bob@${fp(certs.bob!)}`]: 'client restricted=false projects=[] description=""',
    });
    expect(Object.keys(storeView(await h2.trust())).sort()).toEqual([`alice@${fp(certs.alice!)}`, `carol@${fp(certs.carol!)}`]);

    const fresh = join(root, 'fresh.json');
    expect((await cli(['-i', inv, '--check', '--out', fresh])).exitCode).toBe(2);
    const again = await cli(['apply', fresh]);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
  });

  it('a plan whose inventory was edited since is refused whole (naming the file), unless --ignore-inventory-change; too old a plan is refused', async () => {
    const inv = await driftedInventory();
    const planFile = join(root, 'edited.json');
    expect((await cli(['-i', inv, '--check', '--out', planFile])).exitCode).toBe(2);
    await writeFile(inv, (await readFile(inv, 'utf8')) + '# a comment is an edit too\n');
    const refused = await cli(['apply', planFile]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe(
      `reconcile: ${planFile}: the inventory changed since the plan was made (hosts.yaml (changed)); plan again, or pass --ignore-inventory-change to apply this plan anyway; nothing was applied\n`,
    );
    expect(Object.keys(storeView(await h1.trust())).sort()).toEqual([`alice@${fp(certs.alice!)}`, `bob@${fp(certs.bob!)}`]);

    await new Promise((r) => setTimeout(r, 1100));
    const tooOld = await cli(['apply', planFile, '--ignore-inventory-change', '--max-age', '1s']);
    expect(tooOld.exitCode).toBe(1);
    expect(tooOld.stderr).toMatch(
      /^reconcile: .*edited\.json: was made \d+ s ago \(.*\), more than --max-age 1 s: plan again, or pass a larger --max-age; nothing was applied\n$/,
    );

    const forced = await cli(['apply', planFile, '--ignore-inventory-change']);
    expect(forced.exitCode, forced.stdout + forced.stderr).toBe(0);
    expect(forced.stderr).toContain('--ignore-inventory-change: applying');
  });

  it('a file that is not a plan gets one clear line and nothing is applied', async () => {
    const bad = join(root, 'bad.json');
    await writeFile(bad, '{"format": "reconcile-plan", "formatVersion": 99, "tool": {"version": "9.9.9"}}');
    expect(await cli(['apply', bad])).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: `reconcile: ${bad}: is a plan of format version 99 (made by reconcile "9.9.9"); this reconcile reads version 1: plan again; nothing was applied\n`,
    });
    await writeFile(bad, '{"truncated": ');
    expect((await cli(['show', bad])).stderr).toMatch(/^reconcile: .*bad\.json: is not a saved plan \(not JSON: .*\); nothing was applied\n$/);
    expect((await cli(['apply', join(root, 'missing.json')])).stderr).toBe(
      `reconcile: ${join(root, 'missing.json')}: cannot be read (ENOENT); nothing was applied\n`,
    );
  });
});
