/**
 * The client-certificate life of the seed's guide, on real lab hosts (sshd + incusd): adopt what
 * hosts trust today (import), rotate with an overlap (previous_until), revoke without the file
 * (fingerprint), and the words the plan, --diff and audit use for it. Every result is read back
 * with the incus client, and the old key's access is tried against the real HTTPS API.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { parseCertificatePem } from '../../src/pki/certificate.js';
import { fromLabHost, makeTempDir, reconcile, type TestIncus } from './trust-support.js';

let root: string;
let lab: Lab;
let h1: TestIncus;
let h2: TestIncus;

beforeAll(async () => {
  root = await makeTempDir('lifecycle');
  lab = await startLab({ hosts: [{ name: 'h1', https: true }, { name: 'h2' }], name: 'lifecycle' });
  [h1, h2] = [fromLabHost(lab.host('h1')), fromLabHost(lab.host('h2'))];
});

afterAll(async () => {
  await lab?.stop();
  await rm(root, { recursive: true, force: true });
});

const run = (args: string[]) => reconcile([...args, '--lock-timeout', '0'], { env: lab.env });
const runPlain = (args: string[]) => reconcile(args, { env: lab.env });

interface Pair {
  crt: string;
  key: string;
  fingerprint: string;
}

/** A client key pair: the certificate under DIR/certs (committed), the key beside the test (never in the inventory). */
async function pair(dir: string, name: string, days = 365): Promise<Pair> {
  const p = await generateSelfSigned({ commonName: name, validityDays: days, now: new Date(), type: 'client' });
  await mkdir(join(dir, 'certs'), { recursive: true });
  await mkdir(join(dir, 'keys'), { recursive: true });
  await writeFile(join(dir, 'certs', `${name}.crt`), p.certificatePem);
  await writeFile(join(dir, 'keys', `${name}.key`), p.privateKeyPem, { mode: 0o600 });
  return { crt: `certs/${name}.crt`, key: join(dir, 'keys', `${name}.key`), fingerprint: p.info.fingerprint };
}

/** Each scenario starts from empty trust stores (emptied with the incus client, out of band). */
beforeEach(async () => {
  for (const h of [h1, h2]) for (const row of await h.trust()) await h.incus(['config', 'trust', 'remove', row.fingerprint]);
});

/** Adds a certificate by hand, as a user does with the incus client. */
async function addByHand(host: TestIncus, dir: string, p: Pair, name: string, flags: string[] = []): Promise<void> {
  await host.incus(['config', 'trust', 'add-certificate', join(dir, p.crt), '--name', name, ...flags]);
}

/** What GET /1.0 says about a client holding this pair: "trusted" or "untrusted". */
function authOf(dir: string, p: Pair): Promise<string> {
  const h = lab.host('h1');
  return new Promise((res, rej) => {
    const req = request(
      {
        host: h.address,
        port: 8443,
        path: '/1.0',
        cert: readFileSync(join(dir, p.crt)),
        key: readFileSync(p.key),
        rejectUnauthorized: false,
      },
      (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => res((JSON.parse(body) as { metadata: { auth: string } }).metadata.auth));
      },
    );
    req.on('error', rej);
    req.end();
  });
}

function hostsYaml(clients: string): string {
  const vars = (name: string) =>
    Object.entries(lab.host(name).inventoryVars())
      .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
      .join('\n');
  return `# Incus servers of the lab (a comment that must survive)
all:
  hosts:
    h1:   # the first
${vars('h1')}
    h2:
${vars('h2')}
  vars:
    # who may call the API
    incus_trusted_clients:
${clients}
`;
}

describe('reconcile import', () => {
  it('adopts what hosts trust today: files with the hosts’ fingerprints, entries inserted keeping every other byte, then --check exits 0', async () => {
    const dir = join(root, 'import');
    const alice = await pair(dir, 'alice');
    const inv = join(dir, 'hosts.yaml');
    const original = hostsYaml(`      - name: alice   # Alice's laptop\n        certificate_file: '${alice.crt}'\n`);
    await writeFile(inv, original);
    await mkdir(join(dir, 'host_vars'));
    const hostVars = '# only h1\nincus_trust_prune: false\n';
    await writeFile(join(dir, 'host_vars', 'h1.yaml'), hostVars);
    expect((await run(['-i', inv])).exitCode).toBe(0);

    // Added by hand over the years: on both hosts alike, on h1 only, and trusted differently on the two.
    const both = await pair(dir, 'ops');
    const onlyH1 = await pair(dir, 'backup');
    const clash = await pair(dir, 'clash');
    for (const h of [h1, h2]) await addByHand(h, dir, both, 'ops team', ['--restricted', '--projects', 'default', '--description', 'ops on call']);
    await addByHand(h1, dir, onlyH1, 'backup');
    await addByHand(h1, dir, clash, 'clash', ['--restricted', '--projects', 'default']);
    await addByHand(h2, dir, clash, 'clash');

    const printed = await runPlain(['import', '-i', inv, '--out-dir', join(dir, 'imported'), '--all-unmanaged']);
    expect(printed.exitCode).toBe(1);
    expect(printed.stderr).toBe(
      `import: left out: certificate ${clash.fingerprint.slice(0, 12)} is trusted differently on its hosts (h1: name "clash", type client, description "", restricted to [default]; h2: name "clash", type client, description "", unrestricted): make them agree on the hosts, then import again\n`,
    );
    expect(printed.stdout).toBe(
      [
        `wrote ${dir}/imported/backup.crt: "backup" [${onlyH1.fingerprint.slice(0, 12)}], trusted on h1`,
        `wrote ${dir}/imported/ops-team.crt: "ops team" [${both.fingerprint.slice(0, 12)}], trusted on h1, h2`,
        '',
        'Add to the inventory (certificate_file is relative to its folder), or run again with --write FILE:',
        'incus_trusted_clients:',
        '  - name: backup',
        '    certificate_file: imported/backup.crt',
        '  - name: ops team',
        '    description: ops on call',
        '    certificate_file: imported/ops-team.crt',
        '    restricted: true',
        '    projects:',
        '      - default',
        '',
      ].join('\n'),
    );
    // The files hold what the hosts trust.
    const rows = Object.fromEntries((await h1.trust()).map((r) => [r.name, r.fingerprint]));
    expect(parseCertificatePem(await readFile(join(dir, 'imported/ops-team.crt'), 'utf8')).fingerprint).toBe(rows['ops team']);
    expect(parseCertificatePem(await readFile(join(dir, 'imported/backup.crt'), 'utf8')).fingerprint).toBe(rows['backup']);

    // Into the file that defines the list: all.vars, reaching both hosts.
    const shared = await runPlain(['import', '-i', inv, '--out-dir', join(dir, 'imported'), '--names', 'ops team', '--write', inv]);
    expect([shared.exitCode, shared.stderr]).toEqual([0, '']);
    expect(shared.stdout).toContain(`added 1 entry to incus_trusted_clients in ${inv} (from line `);
    // h1's own list in its host_vars would replace the group's (Ansible does not merge lists): refused, the file kept.
    const own = await runPlain([
      'import',
      '-i',
      inv,
      '--limit',
      'h1',
      '--out-dir',
      join(dir, 'imported'),
      '--names',
      'backup',
      '--write',
      join(dir, 'host_vars/h1.yaml'),
    ]);
    expect(own.exitCode).toBe(1);
    expect(own.stderr).toMatch(
      new RegExp(
        `^reconcile: import: writing into ${join(dir, 'host_vars/h1.yaml')} would replace the incus_trusted_clients that h1 gets from .*hosts\\.yaml:\\d+ \\("alice", "ops team"\\): Ansible does not merge lists`,
      ),
    );
    expect(await readFile(join(dir, 'host_vars/h1.yaml'), 'utf8')).toBe(hostVars);
    // Byte for byte: the files are what they were plus the inserted entries.
    expect(await readFile(inv, 'utf8')).toBe(
      original.replace(
        `certificate_file: '${alice.crt}'\n`,
        `certificate_file: '${alice.crt}'\n      - name: ops team\n        description: ops on call\n        certificate_file: imported/ops-team.crt\n        restricted: true\n        projects:\n          - default\n`,
      ),
    );

    const check = await run(['-i', inv, '--check', '--json']);
    expect(check.exitCode, check.stderr).toBe(0);
    const report = JSON.parse(check.stdout) as { hosts: { host: string; actions: { action: string; name: string }[] }[] };
    expect(report.hosts.map((h) => [h.host, h.actions.map((a) => `${a.action} ${a.name}`).sort()])).toEqual([
      ['h1', ['unmanaged backup', 'unmanaged clash']],
      ['h2', ['unmanaged clash']],
    ]);
  });
});

describe('a client rotation with an overlap (previous_until)', () => {
  it('keeps the old certificate trusted until the date, the old key still working; once it has passed the old one is removed', async () => {
    const dir = join(root, 'overlap');
    const old = await pair(dir, 'ci-2025');
    const fresh = await pair(dir, 'ci-2026');
    const inv = join(dir, 'hosts.yaml');
    const entry = (extra: string) => `      - name: ci\n        certificate_file: ${fresh.crt}\n${extra}`;
    await writeFile(inv, hostsYaml(`      - name: ci\n        certificate_file: ${old.crt}\n`));
    expect((await run(['-i', inv, '--limit', 'h1'])).exitCode).toBe(0);
    expect(await authOf(dir, old)).toBe('trusted');

    await writeFile(inv, hostsYaml(entry(`        previous_certificate_file: ${old.crt}\n        previous_until: 2099-01-31\n`)));
    const plan = await run(['-i', inv, '--limit', 'h1', '--check']);
    expect(plan.exitCode).toBe(2);
    expect(plan.stdout).toContain(
      `h1:\n  + incus certificate "ci" [${fresh.fingerprint.slice(0, 12)}]: add (new certificate; the previous one stays trusted until 2099-01-31)\n\n`,
    );
    expect((await run(['-i', inv, '--limit', 'h1'])).exitCode).toBe(0);
    expect((await run(['-i', inv, '--limit', 'h1', '--check'])).exitCode).toBe(0);
    // Both keys reach the API: the CI job still holding the old one keeps working.
    expect([await authOf(dir, old), await authOf(dir, fresh)]).toEqual(['trusted', 'trusted']);

    await writeFile(inv, hostsYaml(entry(`        previous_certificate_file: ${old.crt}\n        previous_until: 2020-01-31\n`)));
    const after = await run(['-i', inv, '--limit', 'h1']);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(after.stdout).toContain(
      `  - incus certificate "ci" [${old.fingerprint.slice(0, 12)}]: remove (previous certificate, trusted until 2020-01-31, which has passed)\n`,
    );
    expect((await run(['-i', inv, '--limit', 'h1', '--check'])).exitCode).toBe(0);
    expect([await authOf(dir, old), await authOf(dir, fresh)]).toEqual(['untrusted', 'trusted']);
    expect((await h1.trust()).map((r) => `${r.name} ${r.fingerprint}`)).toEqual([`ci ${fresh.fingerprint}`]);
  });
});

describe('revoking, and the words for it', () => {
  it('state: absent with only a fingerprint revokes; plan, --diff and audit say it as the golden strings do', async () => {
    const dir = join(root, 'revoke');
    const keep = await pair(dir, 'keep', 20);
    const lost = await pair(dir, 'lost-laptop');
    const stranger = await pair(dir, 'stranger');
    await addByHand(h1, dir, lost, 'lost-laptop');
    await addByHand(h1, dir, stranger, 'stranger', ['--restricted', '--projects', 'default']);
    const inv = join(dir, 'hosts.yaml');
    const fp = (p: Pair) => p.fingerprint.slice(0, 12);
    await writeFile(
      inv,
      hostsYaml(
        `      - name: keep\n        certificate_file: ${keep.crt}\n      - name: lost laptop\n        fingerprint: ${fp(lost)}\n        state: absent\n`,
      ),
    );

    const plan = await run(['-i', inv, '--limit', 'h1', '--check', '--diff']);
    expect(plan.exitCode).toBe(2);
    expect(plan.stdout).toBe(
      [
        'h1:',
        `  + incus certificate "keep" [${fp(keep)}]: add (missing)`,
        '        + name: "keep"',
        '        + type: "client"',
        '        + description: ""',
        '        + restricted: false',
        '        + projects: []',
        `        + fingerprint: "${keep.fingerprint}"`,
        `  - incus certificate "lost-laptop" [${fp(lost)}]: remove (state: absent in the inventory)`,
        '        - name: "lost-laptop"',
        '        - type: "client"',
        '        - description: ""',
        '        - restricted: false',
        '        - projects: []',
        `        - fingerprint: "${lost.fingerprint}"`,
        `  ? incus certificate "stranger" [${fp(stranger)}]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${fp(stranger)})`,
        '        ? name: "stranger"',
        '        ? type: "client"',
        '        ? description: ""',
        '        ? restricted: true',
        '        ? projects: ["default"]',
        `        ? fingerprint: "${stranger.fingerprint}"`,
        '',
        'Plan: 1 to add, 0 to change, 0 to rotate, 1 to remove; 1 unmanaged',
        '',
        'Recap:',
        '  h1    drift        2 to apply, 1 unmanaged',
        '',
      ].join('\n'),
    );
    expect((await run(['-i', inv, '--limit', 'h1'])).exitCode).toBe(0);
    expect((await h1.trust()).map((r) => r.name)).toEqual(['keep', 'stranger']);

    // The next plan: nothing to do, the certificate about to expire named under its host.
    const check = await run(['-i', inv, '--limit', 'h1', '--check']);
    expect(check.exitCode).toBe(0);
    const expires = parseCertificatePem(await readFile(join(dir, keep.crt), 'utf8'))
      .notAfter.toISOString()
      .slice(0, 10);
    expect(check.stdout.split('\n').slice(0, 3)).toEqual([
      'h1:',
      `  ? incus certificate "stranger" [${fp(stranger)}]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${fp(stranger)})`,
      `  expiring: certificate "keep" [${fp(keep)}] on ${expires} (in 19 days); renew its certificate_file`,
    ]);
    const quiet = await run(['-i', inv, '--limit', 'h1', '--check', '-q']);
    expect(quiet.stderr).toMatch(
      new RegExp(`h1: expiring: certificate "keep" \\[${fp(keep)}\\] on ${expires} \\(in 19 days\\); renew its certificate_file\\n$`),
    );

    const audit = await runPlain(['audit', '-i', inv, '--limit', 'h1']);
    expect(audit.exitCode).toBe(0);
    expect(audit.stdout.split('\n').slice(1, 4)).toEqual([
      '  NAME      TYPE    FINGERPRINT   PROJECTS  EXPIRES     STATUS',
      `  keep      client  ${fp(keep)}  all       ${expires}  managed, expiring in 19 days, unrestricted`,
      `  stranger  client  ${fp(stranger)}  default   ${parseCertificatePem(await readFile(join(dir, stranger.crt), 'utf8'))
        .notAfter.toISOString()
        .slice(0, 10)}  unmanaged`,
    ]);
  });
});
