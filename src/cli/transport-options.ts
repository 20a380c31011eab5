/**
 * How every command that connects to hosts (the default run, audit, scrape-config) reads the
 * user's SSH setup: ~/.ssh/known_hosts and ~/.ssh/config under $HOME, as OpenSSH does, and
 * timeouts overridable from the environment (slow links; the fault suite uses short ones).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { ConnectionDefaults } from '../transport/connection-spec.js';
import type { TransportOptions } from '../transport/types.js';
import type { AnsibleSettings } from './ansible-config.js';
import type { CliIO } from './io.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

export function transportOptions(io: CliIO, acceptNewHostKeys: boolean, ansible?: AnsibleConnection): TransportOptions {
  const home = io.env.HOME ?? '';
  const sshConfig = join(home, '.ssh', 'config');
  const timeout = ansible?.settings.timeout;
  const options: TransportOptions = {
    connectTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_CONNECT_TIMEOUT_MS', timeout ? timeout.value * 1000 : DEFAULT_CONNECT_TIMEOUT_MS),
    commandTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_COMMAND_TIMEOUT_MS', DEFAULT_COMMAND_TIMEOUT_MS),
    knownHostsFiles: [join(home, '.ssh', 'known_hosts')],
    acceptNewHostKeys: acceptNewHostKeys || ansible?.settings.hostKeyChecking?.value === false,
    sshConfigFile: home && existsSync(sshConfig) ? sshConfig : undefined,
    knownServersDir: join(io.env.XDG_CONFIG_HOME || join(home, '.config'), 'reconcile', 'servercerts'),
  };
  if (ansible) options.defaults = connectionDefaults(ansible);
  // Said wherever it takes effect (a run, audit, import, scrape-config), never applied silently.
  const lenient = ansible && hostKeyCheckingWarning(ansible.settings);
  if (lenient) io.stderr(`reconcile: warning: ${lenient}\n`);
  return options;
}

/** The Ansible settings (ansible-config.ts) and the flags that override them, for the connections. */
export interface AnsibleConnection {
  settings: AnsibleSettings;
  /** -u / --user */
  user?: string;
  /** --private-key */
  privateKey?: string;
}

function connectionDefaults(a: AnsibleConnection): ConnectionDefaults {
  const s = a.settings;
  const defaults: ConnectionDefaults = {};
  const remoteUser = a.user !== undefined ? { value: a.user, source: '-u' } : s.remoteUser;
  if (remoteUser) defaults.remoteUser = remoteUser;
  const key = a.privateKey !== undefined ? { value: a.privateKey, source: '--private-key' } : s.privateKeyFile;
  if (key) defaults.privateKeyFile = key;
  if (s.become) defaults.become = s.become;
  if (s.becomeUser) defaults.becomeUser = s.becomeUser;
  const args = [s.sshArgs, s.sshCommonArgs].filter((x): x is { value: string; source: string } => x !== undefined);
  if (args.length > 0) defaults.sshArgs = args;
  return defaults;
}

/** What is said about host_key_checking = False: honoured as accept-new, never weaker. */
function hostKeyCheckingWarning(settings: AnsibleSettings): string | undefined {
  const h = settings.hostKeyChecking;
  if (!h || h.value) return undefined;
  return `host_key_checking = False (${h.source}) is honoured as accept-new: host keys never seen are recorded in known_hosts, a changed key is still refused`;
}

function timeoutFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  // Node's timers hold at most 2^31-1 ms (about 24.8 days); more would fire at once.
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 2_147_483_647) {
    throw new UsageError(`${name} takes a whole number of milliseconds from 1 to 2147483647, not '${text}'`);
  }
  return Number(text);
}
