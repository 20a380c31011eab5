/**
 * The Ansible user's own setup, read as Ansible reads it: ansible.cfg found where Ansible looks
 * (ANSIBLE_CONFIG, ./ansible.cfg unless the folder is world-writable, ~/.ansible.cfg,
 * /etc/ansible/ansible.cfg: the first that exists), then ANSIBLE_* variables over it, then the
 * command line over both (the caller applies the flags). Inventory variables of a host still
 * win over all of these (connection-spec.ts), as in Ansible.
 *
 * Only what maps onto reconcile is read; each value keeps where it came from, for
 * `reconcile config` and for messages.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { CliIO } from './io.js';

/** A value and where it came from: `ansible.cfg:3 (/srv/infra/ansible.cfg)`, `ANSIBLE_REMOTE_USER`, `-u`. */
export interface Setting<T> {
  value: T;
  source: string;
}

export interface AnsibleSettings {
  /** The ansible.cfg in use, if any. */
  configFile?: string;
  /** [defaults] inventory / ANSIBLE_INVENTORY: absolute paths. */
  inventory?: Setting<string[]>;
  remoteUser?: Setting<string>;
  /** Absolute (~ expanded, relative to the cfg file's folder). */
  privateKeyFile?: Setting<string>;
  forks?: Setting<number>;
  /** Connect timeout, seconds. */
  timeout?: Setting<number>;
  hostKeyChecking?: Setting<boolean>;
  become?: Setting<boolean>;
  becomeUser?: Setting<string>;
  /** [ssh_connection] ssh_args and ssh_common_args, as ansible_ssh_common_args reads them. */
  sshArgs?: Setting<string>;
  sshCommonArgs?: Setting<string>;
  warnings: string[];
}

interface IniValue {
  value: string;
  line: number;
}

/** Python's configparser as Ansible configures it: `;` starts an inline comment, `#`/`;` a comment line; keys are case-insensitive. */
export function parseIni(text: string, file: string): Map<string, Map<string, IniValue>> {
  const sections = new Map<string, Map<string, IniValue>>();
  let current: Map<string, IniValue> | undefined;
  let last: IniValue | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (/^\s*([#;]|$)/.test(raw)) {
      last = /^\s*$/.test(raw) ? undefined : last;
      return;
    }
    const withoutComment = raw.replace(/\s;.*$/, '');
    // An indented line continues the value above (configparser's multi-line values).
    if (/^\s/.test(raw) && last) {
      last.value += `\n${withoutComment.trim()}`;
      return;
    }
    const section = /^\[([^\]]+)\]\s*$/.exec(withoutComment);
    if (section) {
      current = sections.get(section[1]!.trim()) ?? new Map();
      sections.set(section[1]!.trim(), current);
      last = undefined;
      return;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(withoutComment);
    if (!kv || !current) throw new UsageError(`${file}:${line}: cannot read ${JSON.stringify(raw.trim())} (expected [section] or key = value)`);
    last = { value: kv[2]!.trim().replace(/%%/g, '%'), line };
    current.set(kv[1]!.trim().toLowerCase(), last);
  });
  return sections;
}

/** Where Ansible would take its ansible.cfg from, and the warning it would give. */
export function findAnsibleCfg(env: NodeJS.ProcessEnv, cwd: string): { path?: string; warnings: string[] } {
  const warnings: string[] = [];
  const candidates: string[] = [];
  const fromEnv = env.ANSIBLE_CONFIG;
  if (fromEnv !== undefined) {
    const p = resolve(cwd, expandHome(fromEnv, env));
    candidates.push(isDirectory(p) ? join(p, 'ansible.cfg') : p);
  }
  const inCwd = join(cwd, 'ansible.cfg');
  let skippedCwd = false;
  try {
    // As Ansible: a world-writable folder's ansible.cfg is anyone's, so it is not read.
    if (statSync(cwd).mode & 0o002) skippedCwd = existsSync(inCwd);
    else candidates.push(inCwd);
  } catch {
    // An unreadable working folder is simply not a source.
  }
  if (env.HOME) candidates.push(join(env.HOME, '.ansible.cfg'));
  candidates.push('/etc/ansible/ansible.cfg');
  const path = candidates.find((c) => existsSync(c) && !isDirectory(c));
  if (skippedCwd && (fromEnv === undefined || path !== candidates[0])) {
    warnings.push(`Ansible is being run in a world writable directory (${cwd}), ignoring it as an ansible.cfg source.`);
  }
  return path ? { path, warnings } : { warnings };
}

/** ansible.cfg, then ANSIBLE_* over it. Paths end absolute: cfg paths relative to the cfg's folder, env paths to the working folder. */
export function readAnsibleSettings(env: NodeJS.ProcessEnv, cwd: string): AnsibleSettings {
  const found = findAnsibleCfg(env, cwd);
  const settings: AnsibleSettings = { warnings: found.warnings };
  let ini = new Map<string, Map<string, IniValue>>();
  if (found.path) {
    settings.configFile = found.path;
    ini = parseIni(readFileSync(found.path, 'utf8'), found.path);
  }
  const cfgDir = found.path ? dirname(found.path) : cwd;
  const take = <T>(section: string, key: string, envName: string, convert: (text: string, where: string, base: string) => T): Setting<T> | undefined => {
    const fromEnv = env[envName];
    if (fromEnv !== undefined && fromEnv !== '') return { value: convert(fromEnv, envName, cwd), source: envName };
    const fromCfg = ini.get(section)?.get(key);
    if (fromCfg === undefined || fromCfg.value === '') return undefined;
    const where = `${found.path}:${fromCfg.line}`;
    return { value: convert(fromCfg.value, where, cfgDir), source: where };
  };
  const text = (v: string) => v;
  const path = (v: string, _where: string, base: string) => resolve(base, expandHome(v, env));
  const paths = (v: string, _where: string, base: string) =>
    v
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map((p) => resolve(base, expandHome(p, env)));
  const int = (name: string) => (v: string, where: string) => {
    if (!/^\d+$/.test(v.trim()) || Number(v) < 1) throw new UsageError(`${where}: ${name} takes a whole number of at least 1, not '${v}'`);
    return Number(v);
  };
  const put = <K extends Exclude<keyof AnsibleSettings, 'configFile' | 'warnings'>>(field: K, value: AnsibleSettings[K]) => {
    if (value) settings[field] = value;
  };
  put('inventory', take('defaults', 'inventory', 'ANSIBLE_INVENTORY', paths));
  put('remoteUser', take('defaults', 'remote_user', 'ANSIBLE_REMOTE_USER', text));
  put('privateKeyFile', take('defaults', 'private_key_file', 'ANSIBLE_PRIVATE_KEY_FILE', path));
  put('forks', take('defaults', 'forks', 'ANSIBLE_FORKS', int('forks')));
  put('timeout', take('defaults', 'timeout', 'ANSIBLE_TIMEOUT', int('timeout')));
  put('hostKeyChecking', take('defaults', 'host_key_checking', 'ANSIBLE_HOST_KEY_CHECKING', ansibleBoolean));
  put('become', take('privilege_escalation', 'become', 'ANSIBLE_BECOME', ansibleBoolean));
  put('becomeUser', take('privilege_escalation', 'become_user', 'ANSIBLE_BECOME_USER', text));
  put('sshArgs', take('ssh_connection', 'ssh_args', 'ANSIBLE_SSH_ARGS', text));
  put('sshCommonArgs', take('ssh_connection', 'ssh_common_args', 'ANSIBLE_SSH_COMMON_ARGS', text));
  return settings;
}

/** -i, else the inventory of ansible.cfg / ANSIBLE_INVENTORY (one source: reconcile reads one inventory). */
export function inventoryOf(flag: string | undefined, settings: AnsibleSettings, io: Pick<CliIO, 'cwd'>, command = ''): string {
  const prefix = command ? `${command}: ` : '';
  if (flag !== undefined) return resolve(io.cwd, flag);
  const from = settings.inventory;
  if (!from)
    throw new UsageError(
      `${prefix}-i INVENTORY is required, or an inventory in ansible.cfg ([defaults] inventory) or ANSIBLE_INVENTORY (see 'reconcile ${command ? `${command} ` : ''}--help')`,
    );
  if (from.value.length !== 1) {
    throw new UsageError(`${prefix}${from.source} names ${from.value.length} inventories (${from.value.join(', ')}); reconcile reads one: give it with -i`);
  }
  return from.value[0]!;
}

/** The default command's inventories: every -i (as ansible-playbook -i a -i b), else the setting's list. */
export function inventoriesOf(flags: readonly string[] | undefined, settings: AnsibleSettings, io: Pick<CliIO, 'cwd'>): string[] {
  if (flags !== undefined && flags.length > 0) return flags.map((f) => resolve(io.cwd, f));
  const from = settings.inventory;
  if (!from)
    throw new UsageError(`-i INVENTORY is required, or an inventory in ansible.cfg ([defaults] inventory) or ANSIBLE_INVENTORY (see 'reconcile --help')`);
  return from.value;
}

/** readAnsibleSettings for a command: what Ansible would warn about (a world-writable folder's ansible.cfg) is said on stderr. */
export function ansibleSettings(io: Pick<CliIO, 'env' | 'cwd' | 'stderr'>): AnsibleSettings {
  const settings = readAnsibleSettings(io.env, io.cwd);
  for (const w of settings.warnings) io.stderr(`reconcile: warning: ${w}\n`);
  return settings;
}

/** Ansible's booleans: yes/on/1/true/t/y (any case) are true, every other word false. */
function ansibleBoolean(v: string): boolean {
  return ['yes', 'on', '1', 'true', 't', 'y'].includes(v.trim().toLowerCase());
}

/** `~/x` as a shell gives it (a value in a config file or a quoted flag is not expanded by the shell). */
export function expandHome(p: string, env: NodeJS.ProcessEnv): string {
  return env.HOME && (p === '~' || p.startsWith('~/')) ? join(env.HOME, p.slice(1)) : p;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
