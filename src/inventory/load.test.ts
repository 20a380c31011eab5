import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InventoryError, formatProblem } from '../errors.js';
import { parseCertificatePem } from '../pki/certificate.js';
import { desiredTrustClients } from '../modules/incus-trust/desired.js';
import { loadInventory, readInventoryFile, expandHostPattern } from './load.js';
import { plainVars } from './model.js';
import { validateInventory } from './validate.js';
import { MODULES } from '../modules/registry.js';

const FIXTURES = new URL('../../test/fixtures/', import.meta.url).pathname;
const SEED = join(FIXTURES, 'seed-incus-cluster');
const NESTED = join(FIXTURES, 'nested-inventory');
const temps: string[] = [];
afterAll(() => temps.forEach((t) => rmSync(t, { recursive: true, force: true })));

function tempInventory(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'reconcile-load-'));
  temps.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('the inventory layout of the Incus client-certificate guide', () => {
  it('loads unchanged, validates without a problem, and yields the four client certificates', async () => {
    const inventory = await loadInventory(join(SEED, 'host-incus-cluster.yaml'));
    expect([...inventory.hosts.keys()]).toEqual(['incus.aoostar.mszlocal', 'incus.peladin.mszlocal']);
    expect(inventory.baseDir).toBe(SEED);
    const now = new Date();
    // incus_storage_pool holds Jinja, but reconcile does not read it: no problem.
    expect(validateInventory(inventory, now, (p) => readInventoryFile(inventory, p), MODULES)).toEqual([]);

    const host = inventory.hosts.get('incus.aoostar.mszlocal')!;
    const trust = desiredTrustClients(host, { inventory, now, readInventoryFile: (p) => readInventoryFile(inventory, p) });
    expect(trust.problems).toEqual([]);
    expect(trust.certificates.map((c) => [c.name, c.type, c.restricted, c.projects, c.valuePath])).toEqual([
      ['workstation-admin-mszcool', 'client', false, [], 'all.vars.incus_trusted_clients[0]'],
      ['ci-pipeline-production', 'client', true, ['production'], 'all.vars.incus_trusted_clients[1]'],
      ['dev-alice-workstation', 'client', true, ['default'], 'all.vars.incus_trusted_clients[2]'],
      ['automation-scripts', 'client', true, ['default', 'staging', 'production'], 'all.vars.incus_trusted_clients[3]'],
    ]);
    const file = join(SEED, 'incus/trusted-client-certs/ci-pipeline-production.crt');
    expect(trust.certificates[1]!.certificate!.fingerprint).toBe(parseCertificatePem(readFileSync(file, 'utf8')).fingerprint);
    expect(trust.certificates[1]!.location).toEqual({ file: join(SEED, 'host-incus-cluster.yaml'), line: 20, column: 9 });
  });
});

describe('Ansible meaning of a nested inventory', () => {
  it('puts groups without a parent under all and hosts without a group in ungrouped', async () => {
    const inventory = await loadInventory(join(NESTED, 'hosts.yaml'));
    expect(inventory.groups.get('all')!.children).toEqual(['ungrouped', 'infra', 'prod', 'empty_group', 'web']);
    expect(inventory.groups.get('monitoring')!.parents).toEqual(['infra', 'prod']);
    expect(inventory.hosts.get('prom.example')!.groups).toEqual(['all', 'infra', 'prod', 'monitoring', 'prometheus']);
    // A group var of the deeper group wins over its parents' in the inventory file.
    expect(plainVars(inventory.hosts.get('prom.example')!).owner).toBe('monitoring-team');
    expect(inventory.groups.get('ungrouped')!.hosts).toEqual(['lonely.example']);
    expect(inventory.groups.get('incus_prod')!.depth).toBe(3);
    expect(inventory.hosts.get('incus-b.example')!.groups).toEqual(['all', 'infra', 'prod', 'incus', 'incus_prod']);
    expect([...inventory.hosts.keys()]).toEqual([
      'lonely.example',
      'incus-a.example',
      'incus-b.example',
      'prom.example',
      'web01.example',
      'web02.example',
      'web03.example',
    ]);
  });

  it('merges variables: inventory group vars by depth then name < group_vars < host vars < host_vars; lists replace', async () => {
    const inventory = await loadInventory(join(NESTED, 'hosts.yaml'));
    const vars = (h: string) => plainVars(inventory.hosts.get(h)!);
    expect(vars('incus-a.example').level).toBe('host-inventory');
    expect(vars('incus-b.example').level).toBe('host-vars-file');
    expect(vars('prom.example').level).toBe('prod-group-vars');
    expect(vars('lonely.example').level).toBe('all-group-vars');
    expect(vars('prom.example').ports).toEqual([80, 443]);
    expect(vars('lonely.example').ports).toEqual([1, 2, 3]);
    // group_vars/incus/ is a folder: its files in name order, later ones win whole variables.
    expect(vars('incus-a.example').incus_trust_protected).toEqual(['admin', 'backup']);
    expect(vars('incus-a.example').nested).toEqual({ a: 2 });
    expect(vars('web02.example').tier).toBe('back');
    expect(vars('web03.example').tier).toBe('front');
    // Defined twice in one file: the later definition (web_canary, read after web's hosts) wins.
    expect(vars('web01.example').tier).toBe('canary');
    expect(vars('incus-b.example').ansible_port).toBe(2222);
    const level = inventory.hosts.get('prom.example')!.vars.level!;
    expect(level.location).toEqual({ file: join(NESTED, 'group_vars/prod.yml'), line: 2, column: 8 });
    expect(level.valuePath).toBe('level');
  });

  it('reads a folder of inventory files like the same content in one file', async () => {
    const fromFolder = await loadInventory(NESTED);
    const fromFile = await loadInventory(join(NESTED, 'hosts.yaml'));
    expect([...fromFolder.hosts.values()].map(plainVars)).toEqual([...fromFile.hosts.values()].map(plainVars));
  });

  it('keeps positions of nested values and keys', async () => {
    const inventory = await loadInventory(join(SEED, 'host-incus-cluster.yaml'));
    const def = inventory.hosts.get('incus.aoostar.mszlocal')!.vars.incus_trusted_clients!;
    expect(def.valuePath).toBe('all.vars.incus_trusted_clients');
    expect(def.nested.get('[1].projects[0]')).toMatchObject({ line: 25, column: 13 });
    expect(def.nested.get('key:[1].restricted')).toMatchObject({ line: 23, column: 9 });
  });
});

describe('loading problems', () => {
  it('warns about unexpected keys in a group and about an empty inventory file, but loads', async () => {
    const dir = tempInventory({ 'a.yaml': 'all:\n  host:\n    web1:\n', 'b.yaml': '' });
    const inventory = await loadInventory(dir);
    expect(inventory.warnings!.map(formatProblem).map((t) => t.split(dir + '/').join(''))).toEqual([
      'a.yaml:2:3: warning: all.host: unexpected key "host" in group "all" is ignored (only hosts, vars and children are valid)\n      host:\n      ^',
      'b.yaml:1:1: warning: the inventory file is empty',
    ]);
  });

  it('reports every file with a problem at once', async () => {
    const dir = tempInventory({ 'a.yaml': '[1, 2]\n', 'b.yaml': 'all:\n  hosts: web\n' });
    const error = await loadInventory(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InventoryError);
    expect((error as InventoryError).problems.map((p) => `${p.location?.line}:${p.location?.column} ${p.message}`)).toEqual([
      '1:1 the inventory must be a mapping of group names (usually `all:`), not a list',
      '2:10 hosts must be a mapping of host names (each with its variables or nothing), not the string "web"',
    ]);
  });

  it('walks a 3,000-deep :children chain and a lattice of shared parents (no stack overflow, no walk per path)', async () => {
    const chain = ['[g0]', 'h1', ...Array.from({ length: 2999 }, (_, i) => `[g${i + 1}:children]\ng${i}`)].join('\n');
    const deep = await loadInventory(join(tempInventory({ 'hosts.ini': `${chain}\n` }), 'hosts.ini'));
    expect(deep.groups.get('g0')!.depth).toBe(3000);
    expect(deep.hosts.get('h1')!.groups).toHaveLength(3001);
    // 40 levels of two groups, each the child of both groups above: 2^40 paths from the bottom.
    const lattice = ['[l0a]', 'h1', '[l0b]', 'h2'];
    for (let i = 1; i < 40; i++) for (const x of ['a', 'b']) lattice.push(`[l${i}${x}:children]`, `l${i - 1}a`, `l${i - 1}b`);
    const wide = await loadInventory(join(tempInventory({ 'hosts.ini': `${lattice.join('\n')}\n` }), 'hosts.ini'));
    expect(wide.groups.get('l0a')!.depth).toBe(40);
  });

  it('reads several sources as one inventory, as ansible-playbook -i a -i b: each group_vars beside its source, the later winning', async () => {
    const a = tempInventory({
      'hosts.yaml': 'all:\n  children:\n    incus:\n      hosts:\n        h1: {}\n',
      'group_vars/incus.yaml': 'x: from-a\ny: only-a\n',
    });
    const b = tempInventory({ 'more.yaml': 'incus:\n  hosts:\n    h2: {}\n', 'group_vars/incus.yaml': 'x: from-b\n', 'host_vars/h1.yaml': 'z: b\n' });
    const inv = await loadInventory([join(a, 'hosts.yaml'), join(b, 'more.yaml')]);
    expect([...inv.hosts.keys()]).toEqual(['h1', 'h2']);
    expect(plainVars(inv.hosts.get('h2')!)).toMatchObject({ x: 'from-b', y: 'only-a' });
    expect(plainVars(inv.hosts.get('h1')!)).toMatchObject({ x: 'from-b', z: 'b' });
    expect(inv.baseDir).toBe(a);
  });

  it('names a missing inventory', async () => {
    const error = (await loadInventory('/nonexistent/inv.yaml').catch((e: unknown) => e)) as InventoryError;
    expect(error.problems.map(formatProblem)).toEqual(['error: inventory /nonexistent/inv.yaml does not exist']);
  });

  it('copies an inventory unchanged (sanity of the fixture copy used by other tests)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'reconcile-copy-'));
    temps.push(dir);
    cpSync(SEED, dir, { recursive: true });
    expect(readFileSync(join(dir, 'host-incus-cluster.yaml'), 'utf8')).toBe(readFileSync(join(SEED, 'host-incus-cluster.yaml'), 'utf8'));
  });
});

describe('host ranges', () => {
  it('expands numbers with their width, letters, steps, and a port', () => {
    expect(expandHostPattern('web[01:03].example')).toEqual({ names: ['web01.example', 'web02.example', 'web03.example'], port: undefined });
    expect(expandHostPattern('db-[a:c]').names).toEqual(['db-a', 'db-b', 'db-c']);
    expect(expandHostPattern('n[1:10:4]').names).toEqual(['n1', 'n5', 'n9']);
    expect(expandHostPattern('jump.example:2222')).toEqual({ names: ['jump.example'], port: 2222 });
    expect(expandHostPattern('web[01:02].example:2222')).toEqual({ names: ['web01.example', 'web02.example'], port: 2222 });
    expect(expandHostPattern('fe80::1:22')).toEqual({ names: ['fe80::1:22'], port: undefined });
    expect(() => expandHostPattern('x[3:1]')).toThrow('host range [3:1] of "x[3:1]" goes backwards');
  });
});

describe('folders', () => {
  it('follow symbolic links to inventory files and vars folders', async () => {
    const { symlinkSync } = await import('node:fs');
    const shared = tempInventory({ 'common/all/main.yaml': 'site: linked\n', 'common/inv.yaml': 'all:\n  hosts:\n    a:\n' });
    const dir = tempInventory({});
    mkdirSync(join(dir, 'group_vars'));
    symlinkSync(join(shared, 'common/all'), join(dir, 'group_vars/all'));
    symlinkSync(join(shared, 'common/inv.yaml'), join(dir, 'hosts.yaml'));
    const inventory = await loadInventory(dir);
    expect(plainVars(inventory.hosts.get('a')!)).toEqual({ site: 'linked' });
  });

  it('read an INI `hosts` file, skip other extensions (as *.ini, which Ansible skips too), and say when nothing is left', async () => {
    const dir = tempInventory({ hosts: '[incus]\nweb1\n', 'old.ini': '[broken\n', 'client.crt': '-----BEGIN CERTIFICATE-----\n' });
    const inventory = await loadInventory(dir);
    expect([...inventory.hosts.keys()]).toEqual(['web1']);
    expect(inventory.files).toEqual([join(dir, 'hosts')]);
    const empty = tempInventory({ 'old.ini': '[web]\n', 'README.md': '# inventory\n' });
    const error = (await loadInventory(empty).catch((e: unknown) => e)) as InventoryError;
    expect(error.problems.map((p) => formatProblem(p).split(empty).join('INV'))).toEqual(['error: inventory folder INV holds no inventory file']);
  });

  it('refuse a private key without extension in the folder without quoting a line of it', async () => {
    // A key generated here (never a committed one).
    const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const dir = tempInventory({ 'hosts.yaml': 'all:\n  hosts:\n    a:\n', id_ed25519: key });
    const error = (await loadInventory(dir).catch((e: unknown) => e)) as InventoryError;
    const text = error.problems.map(formatProblem).join('\n').split(dir).join('INV');
    expect(text).toBe('error: INV/id_ed25519 holds a private key, not an inventory: keep keys out of the inventory folder');
    for (const line of key.split('\n').filter((l) => l.length > 0)) expect(text).not.toContain(line);
  });

  it('tell YAML from INI in a file without extension as Ansible does: a YAML mapping is YAML, anything else INI', async () => {
    const dir = tempInventory({ yaml: 'all:\n  hosts:\n    a:\n      x: yes\n', ini: 'a x=yes\nb:22\n' });
    expect(plainVars((await loadInventory(join(dir, 'yaml'))).hosts.get('a')!)).toEqual({ x: true });
    const ini = await loadInventory(join(dir, 'ini'));
    expect(plainVars(ini.hosts.get('a')!)).toEqual({ x: 'yes' });
    expect(plainVars(ini.hosts.get('b')!)).toEqual({ ansible_port: 22 });
    expect(ini.groups.get('ungrouped')!.hosts).toEqual(['a', 'b']);
  });
});
