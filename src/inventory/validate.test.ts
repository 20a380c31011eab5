import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem } from '../errors.js';
import { generateSelfSigned } from '../pki/generate.js';
import { loadInventory, readInventoryFile } from './load.js';
import { validateInventory } from './validate.js';
import { MODULES } from '../modules/registry.js';

let dir: string;
let certificatePem: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'reconcile-validate-'));
  certificatePem = (await generateSelfSigned({ commonName: 'a', validityDays: 365, now: new Date('2030-01-01T00:00:00Z'), type: 'client' })).certificatePem;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes an inventory folder, validates it at 2030-06-01 and returns what the user would read. */
async function validate(name: string, files: Record<string, string>): Promise<string[]> {
  const root = join(dir, name);
  for (const [file, text] of Object.entries({ 'certs/a.crt': certificatePem, ...files })) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    writeFileSync(join(root, file), text);
  }
  const inventory = await loadInventory(join(root, 'hosts.yaml'));
  return validateInventory(inventory, new Date('2030-06-01T00:00:00Z'), (p) => readInventoryFile(inventory, p), MODULES).map((p) =>
    formatProblem(p)
      .split(root + '/')
      .join(''),
  );
}

describe('validateInventory', () => {
  it('refuses a NUL in a description (Incus would cut it: endless drift) and control characters in a name', async () => {
    const hosts =
      'all:\n  hosts:\n    a:\n  vars:\n    incus_trusted_clients:\n      - name: "ci\\e[2K"\n        description: "deploys\\0 from CI"\n        certificate_file: certs/a.crt\n';
    const problems = await validate('nul', { 'hosts.yaml': hosts });
    expect(problems.map((p) => p.split('\n')[0])).toEqual([
      'hosts.yaml:6:15: error: all.vars.incus_trusted_clients[0].name: must not start with a space nor contain "/" or a control character',
      'hosts.yaml:7:22: error: all.vars.incus_trusted_clients[0].description: must not contain a NUL character: Incus cuts the text there, so every run would find it changed',
    ]);
  });

  it('checks values no host receives (all.vars of an inventory without hosts, a group without hosts) — as warnings', async () => {
    const hosts =
      'all:\n  vars:\n    incus_trusted_clients:\n      - name: ci\n        certificate_file: certs/missing.crt\n  children:\n    empty:\n      vars:\n        incus_trust_prune: maybe\n';
    expect(await validate('unreceived', { 'hosts.yaml': hosts })).toEqual([
      expect.stringMatching(
        /^hosts\.yaml:5:27: warning: all\.vars\.incus_trusted_clients\[0\]\.certificate_file: .*certs\/missing\.crt.* \(no host receives this value today; it is an error once one does\)\n/,
      ),
      expect.stringMatching(
        /^hosts\.yaml:9:28: warning: all\.children\.empty\.vars\.incus_trust_prune: must be a boolean .* \(no host receives this value today; it is an error once one does\)\n/,
      ),
    ]);
  });

  it('warns that projects need restricted: true, once for a group var shared by many hosts', async () => {
    const hosts =
      'incus:\n  hosts:\n    a:\n    b:\n  vars:\n    incus_trusted_clients:\n      - name: ci\n        certificate_file: certs/a.crt\n        projects: [production]\n';
    expect(await validate('projects', { 'hosts.yaml': hosts })).toEqual([
      'hosts.yaml:9:19: warning: incus.vars.incus_trusted_clients[0].projects: projects have no effect without restricted: true (the certificate can reach every project)\n            projects: [production]\n                      ^',
    ]);
  });

  it('hosts sharing incus_trusted_clients are checked each with their own other variables (the entries are worked out once)', async () => {
    const hosts = 'incus:\n  hosts:\n    a:\n    b:\n    c:\n';
    const groupVars = 'incus_trusted_clients:\n  - name: ci\n    certificate_file: certs/a.crt\n';
    // b alone registers a metrics certificate named like the shared entry: one trust store, one namespace.
    const hostVars = 'incus_metrics_certificates:\n  - name: ci\n    certificate_file: certs/a.crt\n    key_file: certs/a.key\n';
    const problems = await validate('shared', { 'hosts.yaml': hosts, 'group_vars/incus.yaml': groupVars, 'host_vars/b.yaml': hostVars });
    expect(problems.filter((p) => p.includes('duplicate certificate name'))).toEqual([
      expect.stringMatching(/^group_vars\/incus\.yaml:2:11: error: .*"ci" \(also at host_vars\/b\.yaml:2:11\)/),
    ]);
  });

  it('may judge variables one by one: the schema has no rule that spans two variables', async () => {
    // validate.ts works a verdict out per variable definition; a rule across properties (required,
    // dependencies, if/then at the top) would make that wrong, and must change it first.
    const { readFile } = await import('node:fs/promises');
    const schema = JSON.parse(await readFile(join(import.meta.dirname, '../../schema/inventory.schema.json'), 'utf8')) as Record<string, unknown>;
    const perProperty = ['$schema', '$id', 'title', 'description', 'type', 'properties', '$defs'];
    expect(Object.keys(schema).filter((k) => !perProperty.includes(k))).toEqual([]);
    expect(schema.type).toBe('object');
  });

  it('lets an absent entry name a file that is gone, and checks names within the list a host ends up with', async () => {
    const hosts = 'all:\n  hosts:\n    a:\n    b:\n';
    const groupVars =
      'incus_trusted_clients:\n  - name: old\n    certificate_file: certs/gone.crt\n    state: absent\n  - name: ci\n    certificate_file: certs/a.crt\n';
    // host_vars replaces the whole list for b (lists replace): its duplicate is b's alone.
    const hostVars = 'incus_trusted_clients:\n  - name: x\n    certificate_file: certs/a.crt\n  - name: x\n    certificate_file: certs/a.crt\n';
    expect(await validate('absent', { 'hosts.yaml': hosts, 'group_vars/all.yaml': groupVars, 'host_vars/b.yaml': hostVars })).toEqual([
      'host_vars/b.yaml:4:11: error: incus_trusted_clients[1].name: duplicate certificate name "x" (also at host_vars/b.yaml:2:11); names must be unique on a host\n      - name: x\n              ^',
    ]);
  });

  it('refuses Jinja in connection variables it reads, but not in variables it does not read', async () => {
    const hosts = 'all:\n  hosts:\n    a:\n      ansible_host: "{{ inventory_hostname }}.lan"\n      motd: "Welcome to {{ inventory_hostname }}"\n';
    expect(await validate('jinja', { 'hosts.yaml': hosts })).toEqual([
      'hosts.yaml:4:21: error: all.hosts.a.ansible_host: holds a Jinja template ({{ … }}); reconcile does not evaluate templates in the variables it reads: write the value itself\n          ansible_host: "{{ inventory_hostname }}.lan"\n                        ^',
    ]);
  });

  it('checks the certificate against the clock it is given', async () => {
    const hosts = 'all:\n  hosts:\n    a:\n  vars:\n    incus_trusted_clients:\n      - name: ci\n        certificate_file: certs/a.crt\n';
    const root = join(dir, 'clock');
    mkdirSync(join(root, 'certs'), { recursive: true });
    writeFileSync(join(root, 'hosts.yaml'), hosts);
    writeFileSync(join(root, 'certs/a.crt'), certificatePem);
    const inventory = await loadInventory(join(root, 'hosts.yaml'));
    const at = (iso: string) => validateInventory(inventory, new Date(iso), (p) => readInventoryFile(inventory, p), MODULES).map((p) => p.message);
    expect(at('2030-06-01T00:00:00Z')).toEqual([]);
    expect(at('2032-01-01T00:00:00Z')).toEqual([
      'certificate in "certs/a.crt" expired on 2031-01-01T00:00:00.000Z; Incus refuses expired certificates: issue a new one',
    ]);
  });
});

describe('vault-encrypted vars files', () => {
  it('are skipped with a warning naming the file, as reconcile cannot decrypt them', async () => {
    const vault = '$ANSIBLE_VAULT;1.1;AES256\n62313365396662343061393464336163383764373764613633653634306231386433626436623361\n';
    expect(
      await validate('vault-file', { 'hosts.yaml': 'all:\n  hosts:\n    a:\n', 'group_vars/all/vault.yml': vault, 'group_vars/all/main.yml': 'x: 1\n' }),
    ).toEqual([
      'group_vars/all/vault.yml:1:1: warning: is encrypted with ansible-vault: not read (reconcile cannot decrypt it); variables reconcile reads must not live here\n    $ANSIBLE_VAULT;1.1;AES256\n    ^',
    ]);
  });
});

describe('certificate names', () => {
  it('are unique across client and metrics certificates of a host', async () => {
    const hosts = 'all:\n  hosts:\n    a:\n';
    const vars = [
      'incus_metrics_certificates:',
      '  - name: prometheus',
      '    certificate_file: certs/a.crt',
      '    key_file: certs/a.key',
      'incus_trusted_clients:',
      '  - name: prometheus',
      '    certificate_file: certs/a.crt',
      '',
    ].join('\n');
    const shown = await validate('names', { 'hosts.yaml': hosts, 'group_vars/all.yaml': vars });
    expect(shown.filter((p) => p.includes('duplicate'))).toEqual([
      'group_vars/all.yaml:6:11: error: incus_trusted_clients[0].name: duplicate certificate name "prometheus" (also at group_vars/all.yaml:2:11); names must be unique on a host\n      - name: prometheus\n              ^',
    ]);
  });
});
