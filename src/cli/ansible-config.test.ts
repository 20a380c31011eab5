import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findAnsibleCfg, inventoryOf, parseIni, readAnsibleSettings } from './ansible-config.js';

const root = mkdtempSync(join(tmpdir(), 'reconcile-ansible-cfg-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, cfg?: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  if (cfg !== undefined) writeFileSync(join(dir, 'ansible.cfg'), cfg);
  return dir;
}

describe('ansible.cfg', () => {
  it("is read as Python's configparser reads it for Ansible: ; inline comments, # and ; comment lines, continuation lines, keys in any case", () => {
    const ini = parseIni(
      '# a comment\n[defaults]\nInventory = hosts.yaml ; the hosts\nremote_user: deploy # not a comment\n; another\nssh_args = -o A=1\n  -o B=2\n',
      'ansible.cfg',
    );
    expect(ini.get('defaults')?.get('inventory')).toEqual({ value: 'hosts.yaml', line: 3 });
    expect(ini.get('defaults')?.get('remote_user')?.value).toBe('deploy # not a comment');
    expect(ini.get('defaults')?.get('ssh_args')?.value).toBe('-o A=1\n-o B=2');
    expect(() => parseIni('remote_user = x\n', 'a.cfg')).toThrow('a.cfg:1: cannot read "remote_user = x" (expected [section] or key = value)');
  });

  it('is found where Ansible looks: ANSIBLE_CONFIG, then ./ansible.cfg (not in a world-writable folder, with its warning), then ~/.ansible.cfg', () => {
    const home = folder('home');
    writeFileSync(join(home, '.ansible.cfg'), '[defaults]\nforks = 3\n');
    const project = folder('project', '[defaults]\nforks = 4\n');
    const elsewhere = folder('elsewhere', '[defaults]\nforks = 5\n');
    expect(findAnsibleCfg({ HOME: home }, project)).toEqual({ path: join(project, 'ansible.cfg'), warnings: [] });
    expect(findAnsibleCfg({ HOME: home, ANSIBLE_CONFIG: elsewhere }, project).path).toBe(join(elsewhere, 'ansible.cfg'));
    expect(findAnsibleCfg({ HOME: home }, folder('empty')).path).toBe(join(home, '.ansible.cfg'));
    const shared = folder('shared', '[defaults]\nforks = 6\n');
    chmodSync(shared, 0o777);
    expect(findAnsibleCfg({ HOME: home }, shared)).toEqual({
      path: join(home, '.ansible.cfg'),
      warnings: [`Ansible is being run in a world writable directory (${shared}), ignoring it as an ansible.cfg source.`],
    });
  });

  it('ANSIBLE_* win over the file; paths of the file are relative to its folder, those of the environment to the working folder', () => {
    const project = folder(
      'settings',
      '[defaults]\ninventory = inv/hosts.yaml\nremote_user = mszmaster\nprivate_key_file = ~/.ssh/deploy\nforks = 7\nhost_key_checking = False\n[privilege_escalation]\nbecome = yes\n[ssh_connection]\nssh_common_args = -J bastion\n',
    );
    const work = folder('work');
    const s = readAnsibleSettings({ HOME: '/home/u' }, project);
    expect(s).toMatchObject({
      configFile: join(project, 'ansible.cfg'),
      inventory: { value: [join(project, 'inv/hosts.yaml')], source: `${join(project, 'ansible.cfg')}:2` },
      remoteUser: { value: 'mszmaster', source: `${join(project, 'ansible.cfg')}:3` },
      privateKeyFile: { value: '/home/u/.ssh/deploy' },
      forks: { value: 7 },
      hostKeyChecking: { value: false },
      become: { value: true },
      sshCommonArgs: { value: '-J bastion' },
    });
    const env = { HOME: '/home/u', ANSIBLE_CONFIG: project, ANSIBLE_INVENTORY: 'a.yaml,b.yaml', ANSIBLE_REMOTE_USER: 'ci' };
    const fromEnv = readAnsibleSettings(env, work);
    expect(fromEnv.inventory).toEqual({ value: [join(work, 'a.yaml'), join(work, 'b.yaml')], source: 'ANSIBLE_INVENTORY' });
    expect(fromEnv.remoteUser).toEqual({ value: 'ci', source: 'ANSIBLE_REMOTE_USER' });
    // -i wins; several inventories are named, not guessed.
    expect(inventoryOf('mine.yaml', fromEnv, { cwd: work })).toBe(join(work, 'mine.yaml'));
    expect(() => inventoryOf(undefined, fromEnv, { cwd: work })).toThrow(
      `ANSIBLE_INVENTORY names 2 inventories (${join(work, 'a.yaml')}, ${join(work, 'b.yaml')}); reconcile reads one: give it with -i`,
    );
    expect(() => readAnsibleSettings({ ANSIBLE_FORKS: 'many' }, work)).toThrow("ANSIBLE_FORKS: forks takes a whole number of at least 1, not 'many'");
  });
});
