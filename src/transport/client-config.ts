/**
 * The incus and lxc clients' own configuration, read so that `incus_remote: NAME` needs nothing
 * else: `config.yml` names each remote's address; the client pair is `client.crt`/`client.key`
 * beside it and the server certificate `incus remote add` pinned is `servercerts/NAME.crt`.
 * Folders, in the clients' order: $INCUS_CONF, else ~/.config/incus; $LXD_CONF, else
 * ~/.config/lxc, else the snap's ~/snap/lxd/common/config.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { readLocalFile } from '../local-file.js';

export type ServerKind = 'incus' | 'lxd';

/** Client configuration folders per client, in the order they are searched. */
export type ClientConfigDirs = Record<ServerKind, string[]>;

export function clientConfigDirs(env: NodeJS.ProcessEnv, home: string): ClientConfigDirs {
  return {
    incus: env.INCUS_CONF ? [env.INCUS_CONF] : [path.join(home, '.config', 'incus')],
    lxd: env.LXD_CONF ? [env.LXD_CONF] : [path.join(home, '.config', 'lxc'), path.join(home, 'snap', 'lxd', 'common', 'config')],
  };
}

export interface ClientRemote {
  name: string;
  /** As config.yml has it (https://HOST:8443, or unix:// for the local daemon). */
  addr: string;
  /** The folder it came from, and its config.yml. */
  configDir: string;
  configFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** servercerts/NAME.crt when `remote add` pinned one. */
  serverCertFile?: string;
}

export type RemoteLookup = { found: ClientRemote } | { problem: string };

type Remotes = Record<string, { addr?: unknown }>;
const cache = new Map<string, { mtimeMs: number; remotes: Remotes | string }>();

/**
 * config.yml's remotes, or why it cannot be read; undefined when there is none. Read again when
 * the file changes (`reconcile watch` runs for weeks while remotes are added), bounded like every
 * local read (src/local-file.ts).
 */
function remotesOf(configFile: string): Remotes | string | undefined {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(configFile).mtimeMs;
  } catch {
    return undefined;
  }
  const known = cache.get(configFile);
  if (known && known.mtimeMs === mtimeMs) return known.remotes;
  const read = readLocalFile(configFile);
  let remotes: Remotes | string;
  if ('absent' in read) return undefined;
  if ('refused' in read) remotes = `cannot read ${configFile}: ${read.refused}`;
  else {
    try {
      const doc = parse(read.bytes.toString('utf8')) as { remotes?: unknown } | null;
      const r = doc?.remotes;
      remotes = typeof r === 'object' && r !== null && !Array.isArray(r) ? (r as Remotes) : {};
    } catch (e) {
      remotes = `cannot read ${configFile}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  cache.set(configFile, { mtimeMs, remotes });
  return remotes;
}

/** Finds remote NAME in the clients' folders, the server kind's own client first. */
export function findRemote(dirs: ClientConfigDirs, kind: ServerKind, name: string): RemoteLookup {
  const order = kind === 'lxd' ? [...dirs.lxd, ...dirs.incus] : [...dirs.incus, ...dirs.lxd];
  const searched: string[] = [];
  for (const dir of order) {
    const configFile = path.join(dir, 'config.yml');
    const remotes = remotesOf(configFile);
    if (remotes === undefined) continue;
    if (typeof remotes === 'string') return { problem: remotes };
    searched.push(configFile);
    const remote = remotes[name];
    if (remote === undefined) continue;
    if (typeof remote.addr !== 'string') return { problem: `remote ${name} in ${configFile} has no addr` };
    const serverCertFile = path.join(dir, 'servercerts', `${name}.crt`);
    return {
      found: {
        name,
        addr: remote.addr,
        configDir: dir,
        configFile,
        clientCertFile: path.join(dir, 'client.crt'),
        clientKeyFile: path.join(dir, 'client.key'),
        serverCertFile: existsSync(serverCertFile) ? serverCertFile : undefined,
      },
    };
  }
  const where = searched.length > 0 ? `the remotes of ${searched.join(', ')}` : `no client configuration (looked for config.yml in ${order.join(', ')})`;
  return {
    problem: `incus_remote: ${name} is not a remote the ${kind === 'lxd' ? 'lxc' : 'incus'} client knows (${where}); add it with \`${kind === 'lxd' ? 'lxc' : 'incus'} remote add ${name} https://HOST:8443\``,
  };
}
