/**
 * The transport's entry points: `connectionSpecOf` (inventory host → how to reach it, reading
 * ~/.ssh/config once per run) and `connectHost` (spec → HostSession, SSH or local).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatProblem, TransportError } from '../errors.js';
import type { InventoryHost } from '../inventory/model.js';
import { buildConnectionSpec, type ClientConfigs } from './connection-spec.js';
import { clientConfigDirs, findRemote } from './client-config.js';
import { connectHttps } from './https.js';
import { connectLocal } from './local.js';
import { parseSshConfig, type SshConfig } from './ssh-config.js';
import { connectSsh } from './ssh.js';
import type { ConnectionSpec, HostSession, TransportOptions } from './types.js';

export async function connectHost(spec: ConnectionSpec, options: TransportOptions): Promise<HostSession> {
  if (spec.connection === 'https') return connectHttps(spec, options);
  return spec.connection === 'local' ? connectLocal(spec, options) : connectSsh(spec, options);
}

const configCache = new Map<string, SshConfig | undefined>();

/** Reads and parses an ssh config (Include followed, globs in the last path part). Cached per path. */
export function loadSshConfig(file: string | undefined): SshConfig | undefined {
  if (file === undefined) return undefined;
  if (configCache.has(file)) return configCache.get(file);
  const sshDir = path.join(os.homedir(), '.ssh');
  const read = (p: string) => {
    const full = p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : path.isAbsolute(p) ? p : path.join(sshDir, p);
    const dir = path.dirname(full);
    const base = path.basename(full);
    const names = /[*?]/.test(base)
      ? (existsSync(dir) ? readdirSync(dir) : [])
          .filter((n) =>
            new RegExp(
              `^${base
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '.*')
                .replace(/\?/g, '.')}$`,
            ).test(n),
          )
          .sort()
      : [base];
    return names.flatMap((n) => {
      try {
        return [{ file: path.join(dir, n), text: readFileSync(path.join(dir, n), 'utf8') }];
      } catch {
        return [];
      }
    });
  };
  let config: SshConfig | undefined;
  try {
    config = parseSshConfig(readFileSync(file, 'utf8'), file, read);
  } catch {
    config = undefined;
  }
  configCache.set(file, config);
  return config;
}

/** How to reach an inventory host; a variable we cannot honour fails that host, naming file:line:column. */
export function connectionSpecOf(host: InventoryHost, options: TransportOptions): ConnectionSpec {
  const { spec, problems } = buildConnectionSpec(
    host,
    loadSshConfig(options.sshConfigFile),
    {
      user: localUser(),
      home: os.homedir(),
    },
    options.defaults,
    clientConfigs(),
  );
  if (!spec) {
    throw new TransportError(host.name, 'read connection settings', problems.map((p) => formatProblem(p)).join('; '));
  }
  const warnings = [...(spec.warnings ?? []), ...keyFileWarnings(spec)];
  return warnings.length > 0 ? { ...spec, warnings } : spec;
}

/** The incus and lxc clients' folders ($INCUS_CONF, $LXD_CONF, else under HOME): the same for every host of a run. */
function clientConfigs() {
  const home = os.homedir();
  const key = `${process.env.INCUS_CONF ?? ''}\0${process.env.LXD_CONF ?? ''}\0${home}`;
  if (clientConfigsMemo?.key !== key) {
    const dirs = clientConfigDirs(process.env, home);
    clientConfigsMemo = {
      key,
      value: { remote: (kind: 'incus' | 'lxd', name: string) => findRemote(dirs, kind, name), defaultDir: (kind: 'incus' | 'lxd') => dirs[kind][0]! },
    };
  }
  return clientConfigsMemo.value;
}
let clientConfigsMemo: { key: string; value: ClientConfigs } | undefined;

/**
 * OpenSSH refuses a private key that group or others may read; reconcile uses it but says so
 * (found by test/secrets: it was used silently).
 */
function keyFileWarnings(spec: ConnectionSpec): string[] {
  const files = [spec.privateKeyFile, spec.api?.clientKeyFile, ...spec.jumps.map((j) => j.privateKeyFile)].filter((f): f is string => f !== undefined);
  const warnings: string[] = [];
  for (const file of new Set(files)) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // reading it fails the host with its own message
    }
    if ((mode & 0o077) !== 0) {
      warnings.push(`private key ${file} can be read by others than its owner (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${file}`);
    }
  }
  return warnings;
}

/**
 * OpenSSH's default remote user: the local one (userInfo throws where the uid has no passwd
 * entry). Read once: userInfo reads the passwd entry at every call, once per host.
 */
function localUser(): string {
  if (user === undefined) {
    try {
      user = os.userInfo().username;
    } catch {
      user = process.env.USER ?? process.env.LOGNAME ?? 'root';
    }
  }
  return user;
}
let user: string | undefined;
