/**
 * `reconcile config`: what reconcile takes from the Ansible setup of this folder and where from,
 * as `ansible-config dump --only-changed` shows it: ansible.cfg (found as Ansible finds it) and
 * ANSIBLE_* variables. Only the settings reconcile honours are listed.
 */
import { parseCommandArgs } from '../args.js';
import { ansibleSettings, type AnsibleSettings } from '../ansible-config.js';
import type { CliIO } from '../io.js';
import { UsageError } from '../../errors.js';

export const HELP = `Usage: reconcile config

Shows the Ansible settings reconcile honours and where each comes from: the ansible.cfg in use
(ANSIBLE_CONFIG, ./ansible.cfg unless the folder is world-writable, ~/.ansible.cfg,
/etc/ansible/ansible.cfg: the first that exists) and ANSIBLE_* variables, which win over it.
The command line wins over both; a host's inventory variables win over all of them.

  -h, --help   this help
`;

const OPTIONS = { help: { type: 'boolean', short: 'h' } } as const;

/** Ansible's names for them, as ansible.cfg spells them. */
const NAMES: [keyof AnsibleSettings, string][] = [
  ['inventory', 'inventory'],
  ['remoteUser', 'remote_user'],
  ['privateKeyFile', 'private_key_file'],
  ['forks', 'forks'],
  ['timeout', 'timeout'],
  ['hostKeyChecking', 'host_key_checking'],
  ['become', 'become'],
  ['becomeUser', 'become_user'],
  ['sshArgs', 'ssh_args'],
  ['sshCommonArgs', 'ssh_common_args'],
];

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('config', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`config: unexpected argument '${positionals[0]}' (see 'reconcile config --help')`);
  const settings = ansibleSettings(io);
  const lines = [`config_file = ${settings.configFile ?? '(none)'}`];
  for (const [key, name] of NAMES) {
    const s = settings[key] as { value: unknown; source: string } | undefined;
    if (!s) continue;
    const value = Array.isArray(s.value) ? s.value.join(', ') : String(s.value);
    lines.push(`${name}(${s.source}) = ${value}`);
  }
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}
