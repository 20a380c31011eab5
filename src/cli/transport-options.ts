/**
 * How every command that connects to hosts (the default run, audit, scrape-config) reads the
 * user's SSH setup: ~/.ssh/known_hosts and ~/.ssh/config under $HOME, as OpenSSH does, and
 * timeouts overridable from the environment (slow links; the fault suite uses short ones).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { TransportOptions } from '../transport/types.js';
import type { CliIO } from './io.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

export function transportOptions(io: CliIO, acceptNewHostKeys: boolean): TransportOptions {
  const home = io.env.HOME ?? '';
  const sshConfig = join(home, '.ssh', 'config');
  return {
    connectTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_CONNECT_TIMEOUT_MS', DEFAULT_CONNECT_TIMEOUT_MS),
    commandTimeoutMs: timeoutFromEnv(io.env, 'RECONCILE_COMMAND_TIMEOUT_MS', DEFAULT_COMMAND_TIMEOUT_MS),
    knownHostsFiles: [join(home, '.ssh', 'known_hosts')],
    acceptNewHostKeys,
    sshConfigFile: home && existsSync(sshConfig) ? sshConfig : undefined,
  };
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
