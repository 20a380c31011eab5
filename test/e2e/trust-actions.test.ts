/**
 * Every action and rule of the incus_trust planner, run through the real CLI over SSH against
 * real lab hosts (sshd + incusd), each result read back from the host with `incus config trust list` (not the tool).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { client, fromLabHost, makeCert, makeTempDir, reconcile, REPO, storeView, writeInventory, type GeneratedCert, type TestIncus } from './trust-support.js';

const schema = JSON.parse(readFileSync(join(REPO, 'schema/report.schema.json'), 'utf8'));
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(schema);

let root: string;
let lab: Lab;
let h1: TestIncus;
let h2: TestIncus;
let certs: Record<string, GeneratedCert>;

beforeAll(async () => {
  root = await makeTempDir('trust-actions');
  lab = await startLab({ hosts: [{ name: 'h1' }, { name: 'h2' }], name: 'trust-actions' });
  [h1, h2] = [fromLabHost(lab.host('h1')), fromLabHost(lab.host('h2'))];
  await h1!.incus(['project', 'create', 'p1']);
  await h2!.incus(['project', 'create', 'p1']);
  certs = {};
  for (const n of ['alice', 'bob', 'bob2', 'carol', 'dave', 'srv', 'eve']) certs[n] = await makeCert(root, n);
});

afterAll(async () => {
  await lab?.stop();
  await rm(root, { recursive: true, force: true });
});

/** Empties the trust store out of band (server certificates included) before each scenario. */
beforeEach(async () => {
  for (const h of [h1, h2]) {
    for (const row of await h.trust()) await h.incus(['config', 'trust', 'remove', row.fingerprint]);
  }
});

async function addByHand(h: TestIncus, name: string, cert: GeneratedCert, type = 'client'): Promise<void> {
  const pem = readFileSync(join(root, cert.file));
  const der = Buffer.from(pem.toString().replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').toString('base64');
  await h.incus(['query', '-X', 'POST', '/1.0/certificates', '--data', JSON.stringify({ name, type, certificate: der })]);
}

/** The CLI as a user on the lab's client side runs it (its HOME: ssh key, known_hosts). */
const cli = (args: string[]) => reconcile(args, { env: lab.env });

/** Asserts an exit code, showing the run's whole output when it differs. */
async function expectExit(run: Promise<{ exitCode: number; stdout: string; stderr: string }>, code: number): Promise<void> {
  const r = await run;
  expect(r.exitCode, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
}

const fp = (c: GeneratedCert) => c.fingerprint.slice(0, 12);

describe('incus_trust on real incusd', () => {
  it('adds what is missing; --check shows it and changes nothing; after apply --check is in sync', async () => {
    const inv = await writeInventory(root, [h1], {
      incus_trusted_clients: [
        client('alice', certs.alice!, { description: 'Alice laptop' }),
        client('bob', certs.bob!, { restricted: true, projects: ['p1', 'default'] }),
      ],
    });
    const check = await cli(['-i', inv, '--check']);
    expect(check).toMatchObject({ exitCode: 2 });
    expect(check.stdout).toBe(
      `h1:
  + incus certificate "alice" [${fp(certs.alice!)}]: add (missing)
  + incus certificate "bob" [${fp(certs.bob!)}]: add (missing)

Plan: 2 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged

Recap:
  h1    drift        2 to apply
`,
    );
    expect(await h1.trust()).toEqual([]);

    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('Recap:\n  h1    changed      2 applied\n');
    expect(storeView(await h1.trust())).toEqual({
      [`alice@${fp(certs.alice!)}`]: 'client restricted=false projects=[] description="Alice laptop"',
      [`bob@${fp(certs.bob!)}`]: 'client restricted=true projects=[default,p1] description=""',
    });

    const again = await cli(['-i', inv, '--check']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toBe(`h1: no changes\n\nPlan: 0 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged\n\nRecap:\n  h1    ok\n`);
  });

  it('updates fields in place (matched by fingerprint, projects as sets) and shows them with --diff', async () => {
    await addByHand(h1, 'old-name', certs.alice!);
    const inv = await writeInventory(root, [h1], {
      incus_trusted_clients: [client('alice', certs.alice!, { description: 'new', restricted: true, projects: ['default', 'p1'] })],
    });
    const check = await cli(['-i', inv, '--check', '--diff']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(
      `  ~ incus certificate "alice" [${fp(certs.alice!)}]: update in place (fields differ: name, description, restricted, projects)
        ~ name: "old-name" → "alice"
        ~ description: "" → "new"
        ~ restricted: false → true
        ~ projects: [] → ["default", "p1"]
`,
    );
    await expectExit(cli(['-i', inv]), 0);
    expect(storeView(await h1.trust())).toEqual({ [`alice@${fp(certs.alice!)}`]: 'client restricted=true projects=[default,p1] description="new"' });
    // Incus returns projects in its own order: still in sync.
    await expectExit(cli(['-i', inv, '--check']), 0);
  });

  it('rotates a certificate: the new one is trusted and the old one gone', async () => {
    await addByHand(h1, 'bob', certs.bob!);
    const inv = await writeInventory(root, [h1], { incus_trusted_clients: [client('bob', certs.bob2!)] });
    const apply = await cli(['-i', inv, '--diff']);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain(
      `-/+ incus certificate "bob" [${fp(certs.bob2!)}]: rotate (add new, then remove old) (new certificate)
        ~ fingerprint: "${certs.bob!.fingerprint}" → "${certs.bob2!.fingerprint}"
`,
    );
    expect(Object.keys(storeView(await h1.trust()))).toEqual([`bob@${fp(certs.bob2!)}`]);
    await expectExit(cli(['-i', inv, '--check']), 0);
  });

  it('changes a type as remove + add', async () => {
    await addByHand(h1, 'carol', certs.carol!, 'metrics');
    const inv = await writeInventory(root, [h1], { incus_trusted_clients: [client('carol', certs.carol!)] });
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain(
      `  - incus certificate "carol" [${fp(certs.carol!)}]: remove (type changed (metrics → client))
  + incus certificate "carol" [${fp(certs.carol!)}]: add (type changed (metrics → client))
`,
    );
    expect(storeView(await h1.trust())).toEqual({ [`carol@${fp(certs.carol!)}`]: 'client restricted=false projects=[] description=""' });
    await expectExit(cli(['-i', inv, '--check']), 0);
  });

  it('removes state: absent; reports unmanaged and keeps them; prunes with incus_trust_prune or --prune', async () => {
    await addByHand(h1, 'alice', certs.alice!);
    await addByHand(h1, 'stranger', certs.dave!);
    const vars = { incus_trusted_clients: [client('alice', certs.alice!, { state: 'absent' })] };
    const inv = await writeInventory(root, [h1], vars);
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain(`  - incus certificate "alice" [${fp(certs.alice!)}]: remove (state: absent in the inventory)\n`);
    expect(apply.stdout).toContain(
      `  ? incus certificate "stranger" [${fp(certs.dave!)}]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${fp(certs.dave!)})\n`,
    );
    expect(Object.keys(storeView(await h1.trust()))).toEqual([`stranger@${fp(certs.dave!)}`]);
    // An unmanaged certificate kept without pruning is reported, not drift: --check stays green.
    await expectExit(cli(['-i', inv, '--check']), 0);

    const pruned = await cli(['-i', inv, '--prune']);
    expect(pruned.exitCode, pruned.stdout + pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain(`  - incus certificate "stranger" [${fp(certs.dave!)}]: remove (not in the inventory; pruning is on)\n`);
    expect(await h1.trust()).toEqual([]);

    await addByHand(h1, 'stranger', certs.dave!);
    const invPrune = await writeInventory(root, [h1], { ...vars, incus_trust_prune: true });
    await expectExit(cli(['-i', invPrune]), 0);
    expect(await h1.trust()).toEqual([]);
    await expectExit(cli(['-i', invPrune, '--check']), 0);
  });

  it('never removes server certificates nor incus_trust_protected ones (by name or fingerprint)', async () => {
    await addByHand(h1, 'member9', certs.srv!, 'server');
    await addByHand(h1, 'break-glass', certs.eve!);
    await addByHand(h1, 'by-fingerprint', certs.carol!);
    await addByHand(h1, 'stranger', certs.dave!);
    const inv = await writeInventory(root, [h1], {
      incus_trusted_clients: [client('member9', certs.srv!, { state: 'absent' })],
      incus_trust_prune: true,
      incus_trust_protected: ['break-glass', fp(certs.carol!)],
    });
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('warning: certificate "member9" has state: absent but is a server (cluster member) certificate; it is kept');
    expect(Object.keys(storeView(await h1.trust()))).toEqual([
      `break-glass@${fp(certs.eve!)}`,
      `by-fingerprint@${fp(certs.carol!)}`,
      `member9@${fp(certs.srv!)}`,
    ]);
    await expectExit(cli(['-i', inv, '--check']), 0);
  });

  it('a project missing on a host fails that host before anything is applied; the other host converges', async () => {
    const inv = await writeInventory(
      root,
      [h1, h2],
      { incus_trusted_clients: [client('alice', certs.alice!), client('bob', certs.bob!, { restricted: true, projects: ['p1'] })] },
      {},
    );
    await h2.incus(['project', 'delete', 'p1']);
    try {
      const apply = await cli(['-i', inv, '--json']);
      expect(apply.exitCode, apply.stdout + apply.stderr).toBe(1);
      const report = JSON.parse(apply.stdout);
      expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
      expect(report.hosts.map((h: { host: string; status: string; error?: unknown }) => [h.host, h.status, h.error])).toEqual([
        ['h1', 'changed', undefined],
        ['h2', 'failed', { step: 'plan', message: 'incus_trust: certificate "bob": project "p1" does not exist on the host' }],
      ]);
      expect(report.hosts[1].actions.every((a: { applied: boolean }) => !a.applied)).toBe(true);
      expect(Object.keys(storeView(await h1.trust()))).toEqual([`alice@${fp(certs.alice!)}`, `bob@${fp(certs.bob!)}`]);
      expect(await h2.trust()).toEqual([]);
    } finally {
      await h2.incus(['project', 'create', 'p1']);
    }
  });

  it('--limit selects hosts; --json reports are valid against schema/report.schema.json', async () => {
    const inv = await writeInventory(root, [h1, h2], { incus_trusted_clients: [client('alice', certs.alice!)] });
    const check = await cli(['-i', inv, '--check', '--json']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    const checkReport = JSON.parse(check.stdout);
    expect(validateReport(checkReport), JSON.stringify(validateReport.errors)).toBe(true);
    expect(checkReport).toMatchObject({ mode: 'check', exitCode: 2, summary: { hosts: { drift: 2 }, actions: { add: 2 } } });
    expect(checkReport.hosts[0].actions).toEqual([
      {
        module: 'incus_trust',
        action: 'add',
        kind: 'incus certificate',
        name: 'alice',
        reason: 'missing',
        reasonText: 'missing',
        fingerprint: certs.alice!.fingerprint,
        after: { name: 'alice', type: 'client', description: '', restricted: false, projects: [], fingerprint: certs.alice!.fingerprint },
        applied: false,
      },
    ]);

    const limited = await cli(['-i', inv, '--limit', 'h2', '--json']);
    expect(limited.exitCode, limited.stdout + limited.stderr).toBe(0);
    const report = JSON.parse(limited.stdout);
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report.hosts.map((h: { host: string; status: string }) => `${h.host} ${h.status}`)).toEqual(['h2 changed']);
    expect(report.hosts[0].actions[0].applied).toBe(true);
    expect(report.hosts[0].certificates).toEqual([]);
    expect(await h1.trust()).toEqual([]);
    expect(Object.keys(storeView(await h2.trust()))).toEqual([`alice@${fp(certs.alice!)}`]);
  });

  it('shows "(known after apply)" for a metrics key pair still to be generated, in check mode', async () => {
    const inv = await writeInventory(root, [h1], {
      incus_metrics_certificates: [{ name: 'prometheus', certificate_file: 'certs/not-yet.crt', key_file: 'certs/not-yet.key' }],
    });
    const check = await cli(['-i', inv, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain('  + incus certificate "prometheus" [(known after apply)]: add (missing (key pair to be generated))\n');
  });
});
