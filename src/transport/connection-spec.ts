/**
 * ansible_* variables + ~/.ssh/config → ConnectionSpec, the way Ansible's ssh connection
 * plugin and OpenSSH together would reach the host. Pure: the config is parsed already and
 * the local user and home come in as values. Anything reconcile cannot honour (ProxyCommand,
 * become methods other than sudo, Jinja) is a problem naming the variable, never ignored.
 */
import type { Problem } from '../errors.js';
import type { InventoryHost, VarDefinition } from '../inventory/model.js';
import { expandTokens, sshSettingsFor, type SshConfig } from './ssh-config.js';
import { splitShellWords } from './shell-quote.js';
import type { ApiSpec, ConnectionSpec, JumpSpec } from './types.js';
import type { RemoteLookup, ServerKind } from './client-config.js';

export const DEFAULT_INCUS_SOCKET = '/var/lib/incus/unix.socket';
/** LXD's sockets: Debian's package, then the snap (tried in this order for `incus_server: lxd`). */
export const LXD_SOCKETS = ['/var/lib/lxd/unix.socket', '/var/snap/lxd/common/lxd/unix.socket'];
export const DEFAULT_API_PORT = 8443;

/** The incus and lxc clients' configuration (client-config.ts), read by the caller. */
export interface ClientConfigs {
  remote(kind: ServerKind, name: string): RemoteLookup;
  /** The client's folder whose client.crt/client.key are the default pair. */
  defaultDir(kind: ServerKind): string;
}

export interface LocalIdentity {
  /** The local user's name (OpenSSH's default remote user). */
  user: string;
  /** The local home folder (for `~`). */
  home: string;
}

/**
 * What ansible.cfg, ANSIBLE_* and the command line (-u, --private-key) set for every host, below
 * the host's own inventory variables (Ansible's precedence). `source` names where each came from.
 */
export interface ConnectionDefaults {
  remoteUser?: { value: string; source: string };
  privateKeyFile?: { value: string; source: string };
  become?: { value: boolean; source: string };
  becomeUser?: { value: string; source: string };
  /** [ssh_connection] ssh_args / ssh_common_args: read as ansible_ssh_common_args is. */
  sshArgs?: { value: string; source: string }[];
}

export interface ConnectionSpecResult {
  spec?: ConnectionSpec;
  problems: Problem[];
}

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`, as -J and ProxyJump take it. */
export function parseJumpTarget(text: string): { user?: string; host: string; port?: number } | undefined {
  const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]\s]+\]|[^:@/\s]+)(?::(\d+))?\/?$/.exec(text.trim());
  if (!m) return undefined;
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] !== undefined ? Number(m[3]) : undefined };
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1', 'y']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0', 'n', '']);

export function buildConnectionSpec(
  host: InventoryHost,
  sshConfig: SshConfig | undefined,
  local: LocalIdentity,
  defaults: ConnectionDefaults = {},
  clients?: ClientConfigs,
): ConnectionSpecResult {
  const problems: Problem[] = [];
  const problem = (def: VarDefinition | string | undefined, message: string) =>
    typeof def === 'string'
      ? problems.push({ severity: 'error', valuePath: host.name, message: `${message} (from ${def})` })
      : problems.push({ severity: 'error', location: def?.location, valuePath: def?.valuePath ?? host.name, message });

  /** A string variable (numbers are accepted as their text); Jinja is refused. */
  const str = (...names: string[]): string | undefined => {
    for (const name of names) {
      const def = host.vars[name];
      if (def === undefined || def.value === null || def.value === undefined) continue;
      if (typeof def.value !== 'string' && typeof def.value !== 'number') {
        problem(def, `${name} must be a string, not ${Array.isArray(def.value) ? 'a list' : typeof def.value}`);
        return undefined;
      }
      const value = String(def.value);
      if (value.includes('{{') || value.includes('{%')) {
        problem(def, `${name} uses a Jinja template (${JSON.stringify(value)}); reconcile does not evaluate templates: write the value itself`);
        return undefined;
      }
      return value;
    }
    return undefined;
  };
  const defOf = (...names: string[]) => names.map((n) => host.vars[n]).find((d) => d !== undefined);
  /** `ansible_user (hosts.yaml:5)`: the first of the variables the host sets, and where. */
  const varSource = (...names: string[]): string | undefined => {
    const name = names.find((n) => host.vars[n] !== undefined);
    if (name === undefined) return undefined;
    const at = host.vars[name]!.location;
    return `${name} (${at.file}:${at.line})`;
  };

  const connection = str('ansible_connection') ?? 'ssh';
  if (!['ssh', 'smart', 'paramiko', 'local'].includes(connection)) {
    problem(defOf('ansible_connection'), `ansible_connection: ${connection} is not supported (use ssh or local)`);
  }

  const givenHost = str('ansible_host', 'ansible_ssh_host') ?? host.name;
  const config = sshSettingsFor(sshConfig, givenHost);
  const address = config.hostName ?? givenHost;

  let port = config.port ?? 22;
  const portText = str('ansible_port', 'ansible_ssh_port');
  if (portText !== undefined) {
    if (/^\d+$/.test(portText) && Number(portText) >= 1 && Number(portText) <= 65535) port = Number(portText);
    else problem(defOf('ansible_port', 'ansible_ssh_port'), `ansible_port must be a port number (1-65535), not ${JSON.stringify(portText)}`);
  }
  const user = str('ansible_user', 'ansible_ssh_user') ?? defaults.remoteUser?.value ?? config.user ?? local.user;
  const tokens = { h: address, p: port, r: user, u: local.user, d: local.home };
  const expand = (p: string) => expandTokens(p, tokens);

  let privateKeyFile = str('ansible_ssh_private_key_file', 'ansible_private_key_file') ?? defaults.privateKeyFile?.value;
  if (privateKeyFile !== undefined) privateKeyFile = expand(privateKeyFile);
  else if (config.identityFiles[0] !== undefined) privateKeyFile = expand(config.identityFiles[0]);

  let knownHostsFiles = config.userKnownHostsFiles.length > 0 ? config.userKnownHostsFiles.map(expand) : undefined;

  // ansible_ssh_common_args / ansible_ssh_extra_args: the options we honour, refuse or skip.
  let proxyJump: string | undefined;
  let proxyCommand: string | undefined;
  let routeFrom = '~/.ssh/config';
  // The host's own arguments first (the first ProxyJump wins, as in OpenSSH), then ansible.cfg's.
  const argSources: { name: string; text: string; def: VarDefinition | string }[] = [];
  for (const name of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const text = str(name);
    if (text !== undefined) argSources.push({ name, text, def: host.vars[name]! });
  }
  if (host.vars.ansible_ssh_common_args === undefined)
    for (const a of defaults.sshArgs ?? []) argSources.push({ name: 'ssh_args', text: a.value, def: a.source });
  for (const { name, text, def } of argSources) {
    let words: string[];
    try {
      words = splitShellWords(text);
    } catch (e) {
      problem(def, `${name}: ${(e as Error).message}`);
      continue;
    }
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      let option: string | undefined;
      if (w === '-J' || w === '-o' || w === '-i') {
        const value = words[++i];
        if (value === undefined) {
          problem(def, `${name}: ${w} needs a value`);
          break;
        }
        option = w === '-J' ? `ProxyJump=${value}` : w === '-i' ? `IdentityFile=${value}` : value;
      } else if (w.startsWith('-J') || w.startsWith('-o') || w.startsWith('-i')) {
        option = w.startsWith('-J') ? `ProxyJump=${w.slice(2)}` : w.startsWith('-i') ? `IdentityFile=${w.slice(2)}` : w.slice(2);
      } else {
        continue; // other ssh flags (-C, -4, -v …) do not change where or as whom we connect
      }
      const m = /^([A-Za-z]+)\s*(?:=|\s)\s*(.*)$/.exec(option);
      if (!m) {
        problem(def, `${name}: cannot read the option ${JSON.stringify(option)}`);
        continue;
      }
      const key = m[1]!.toLowerCase();
      const value = m[2]!.trim();
      const origin = typeof def === 'string' ? def : (varSource(name) ?? name);
      if (key === 'proxyjump') {
        if (proxyCommand === undefined && proxyJump === undefined) [proxyJump, routeFrom] = [value, origin];
      } else if (key === 'userknownhostsfile') knownHostsFiles = splitShellWords(value).map(expand);
      else if (key === 'identityfile') privateKeyFile = expand(value);
      else if (key === 'proxycommand' && proxyJump === undefined && proxyCommand === undefined) [proxyCommand, routeFrom] = [value, origin];
      // StrictHostKeyChecking, ControlMaster, ServerAlive* … have no bearing here.
    }
  }
  if (proxyCommand === undefined) proxyJump ??= config.proxyJump;
  if (proxyJump === undefined) proxyCommand ??= config.proxyCommand;
  if (proxyCommand?.toLowerCase() === 'none') proxyCommand = undefined;

  // What ~/.ssh/config says but reconcile cannot honour, for this host and its jump hosts.
  const warnings = new Set(config.warnings);
  const jumps: JumpSpec[] = [];
  if (proxyJump !== undefined && proxyJump.toLowerCase() !== 'none') {
    for (const part of proxyJump.split(',')) {
      const target = parseJumpTarget(part);
      if (!target) {
        problem(defOf('ansible_ssh_common_args', 'ansible_ssh_extra_args'), `cannot read the jump host ${JSON.stringify(part)}`);
        continue;
      }
      // A jump host's own settings come from ~/.ssh/config too, as OpenSSH does.
      const jc = sshSettingsFor(sshConfig, target.host);
      if (jc.proxyCommand !== undefined && jc.proxyCommand.toLowerCase() !== 'none') {
        warnings.add(`jump host ${target.host}: its ProxyCommand is not supported (a jump host is reached directly, or through the jump hosts before it)`);
      }
      // A line that concerns the host itself is said once, unprefixed.
      for (const w of jc.warnings) if (!warnings.has(w)) warnings.add(`jump host ${target.host}: ${w}`);
      const jumpUser = target.user ?? jc.user ?? local.user;
      const jumpAddress = jc.hostName ?? target.host;
      const jumpPort = target.port ?? jc.port ?? 22;
      const jumpKey = jc.identityFiles[0];
      jumps.push({
        address: jumpAddress,
        port: jumpPort,
        user: jumpUser,
        privateKeyFile:
          jumpKey !== undefined ? expandTokens(jumpKey, { h: jumpAddress, p: jumpPort, r: jumpUser, u: local.user, d: local.home }) : privateKeyFile,
      });
    }
  }

  const becomeDef = defOf('ansible_become');
  let become = defaults.become?.value ?? false;
  if (becomeDef) {
    const v = becomeDef.value;
    if (typeof v === 'boolean') become = v;
    else if (typeof v === 'string' && TRUE_WORDS.has(v.toLowerCase())) become = true;
    else if (typeof v === 'string' && FALSE_WORDS.has(v.toLowerCase())) become = false;
    else problem(becomeDef, `ansible_become must be true or false, not ${JSON.stringify(v)}`);
  }
  const method = str('ansible_become_method');
  if (become && method !== undefined && method !== 'sudo') {
    problem(defOf('ansible_become_method'), `ansible_become_method: ${method} is not supported; reconcile uses sudo -n`);
  }
  const becomeUser = str('ansible_become_user') ?? defaults.becomeUser?.value;
  if (become && becomeUser !== undefined && becomeUser !== 'root') {
    problem(defOf('ansible_become_user') ?? defaults.becomeUser?.source, `ansible_become_user: ${becomeUser} is not supported; reconcile becomes root`);
  }

  const serverText = str('incus_server') ?? 'incus';
  if (serverText !== 'incus' && serverText !== 'lxd') problem(defOf('incus_server'), `incus_server must be incus or lxd, not ${JSON.stringify(serverText)}`);
  const server: ServerKind = serverText === 'lxd' ? 'lxd' : 'incus';
  const givenSocket = str('incus_socket');
  if (givenSocket !== undefined && !givenSocket.startsWith('/')) {
    problem(defOf('incus_socket'), `incus_socket must be an absolute path, not ${JSON.stringify(givenSocket)}`);
  }
  // LXD's sockets come after the one the inventory names, in the order its packages put them.
  const sockets = [...(givenSocket !== undefined ? [givenSocket] : []), ...(server === 'lxd' ? LXD_SOCKETS : [DEFAULT_INCUS_SOCKET])];
  const [incusSocket, ...socketFallbacks] = [...new Set(sockets)] as [string, ...string[]];

  const api = apiSpec(host, server, str, defOf, varSource, problem, local, clients);

  if (problems.length > 0) return { problems };
  const sources: Record<string, string> = {
    address: varSource('ansible_host', 'ansible_ssh_host') ?? (config.hostName !== undefined ? '~/.ssh/config HostName' : 'the inventory name'),
    user: varSource('ansible_user', 'ansible_ssh_user') ?? defaults.remoteUser?.source ?? (config.user !== undefined ? '~/.ssh/config User' : 'the local user'),
    key:
      privateKeyFile === undefined
        ? 'none named (ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)'
        : (varSource('ansible_ssh_private_key_file', 'ansible_private_key_file') ?? defaults.privateKeyFile?.source ?? '~/.ssh/config IdentityFile'),
    become: becomeDef ? (varSource('ansible_become') ?? 'ansible_become') : (defaults.become?.source ?? 'default (no)'),
  };
  if (jumps.length > 0) sources.route = `ProxyJump ${proxyJump} (${routeFrom})`;
  if (proxyCommand !== undefined) sources.route = `ProxyCommand (${routeFrom})`;
  if (api) {
    const spec = httpsSpec(host.name, api.spec, server, api.sources);
    // Said, not silently ignored: the SSH settings of an HTTPS host reach nothing.
    const ssh = ['ansible_host', 'ansible_ssh_host', 'ansible_connection'].filter((n) => host.vars[n] !== undefined);
    if (ssh.length > 0) spec.warnings = [`${ssh.join(', ')} not used: ${api.sources.route} reaches this host over HTTPS only`];
    return { spec, problems };
  }
  const spec: ConnectionSpec = {
    host: host.name,
    connection: connection === 'local' ? 'local' : 'ssh',
    address,
    port,
    user,
    privateKeyFile,
    jumps,
    become,
    incusSocket,
  };
  if (socketFallbacks.length > 0) spec.socketFallbacks = socketFallbacks;
  if (givenSocket !== undefined) spec.socketGiven = true;
  if (server !== 'incus') spec.server = server;
  if (knownHostsFiles) spec.knownHostsFiles = knownHostsFiles;
  spec.sources = sources;
  // Run as OpenSSH runs it: tokens expanded (%h the address, %p, %r, %n the name as given), through /bin/sh.
  if (proxyCommand !== undefined) spec.proxyCommand = expandTokens(proxyCommand, { ...tokens, n: givenHost });
  // A local host is not reached through ssh: what its config says does not concern it.
  if (warnings.size > 0 && spec.connection === 'ssh') spec.warnings = [...warnings];
  return { spec, problems };
}

type StrOf = (...names: string[]) => string | undefined;
type DefOf = (...names: string[]) => VarDefinition | undefined;

/**
 * `incus_api_url` or `incus_remote`: the host is reached over its REST API only. The client pair
 * and the server's identity come from the host's variables, else from the client's remote.
 */
function apiSpec(
  host: InventoryHost,
  server: ServerKind,
  str: StrOf,
  defOf: DefOf,
  varSource: (...names: string[]) => string | undefined,
  problem: (def: VarDefinition | string | undefined, message: string) => void,
  local: LocalIdentity,
  clients: ClientConfigs | undefined,
): { spec: ApiSpec; sources: Record<string, string> } | undefined {
  const urlText = str('incus_api_url');
  const remoteName = str('incus_remote');
  if (urlText === undefined && remoteName === undefined) return undefined;
  const home = (p: string) => (p === '~' ? local.home : p.startsWith('~/') ? `${local.home}/${p.slice(2)}` : p);
  const sources: Record<string, string> = {};

  let remote;
  if (remoteName !== undefined) {
    const lookup = clients?.remote(server, remoteName) ?? { problem: 'no client configuration was read' };
    if ('problem' in lookup) {
      problem(defOf('incus_remote'), lookup.problem);
      return undefined;
    }
    remote = lookup.found;
  }
  const addr = urlText ?? remote!.addr;
  let url: URL | undefined;
  try {
    url = new URL(addr);
  } catch {
    url = undefined;
  }
  const from = urlText !== undefined ? defOf('incus_api_url') : defOf('incus_remote');
  if (!url || url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    const what = urlText !== undefined ? 'incus_api_url' : `the address of remote ${remoteName} (${remote!.configFile})`;
    problem(from, `${what} must be https://HOST[:PORT], not ${JSON.stringify(addr)}`);
    return undefined;
  }
  const address = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? DEFAULT_API_PORT : Number(url.port);
  sources.route = urlText !== undefined ? (varSource('incus_api_url') ?? 'incus_api_url') : `incus_remote ${remoteName} (${remote!.configFile})`;

  const clientDir = remote?.configDir ?? clients?.defaultDir(server) ?? `${local.home}/.config/${server === 'lxd' ? 'lxc' : 'incus'}`;
  const clientCertFile = home(str('incus_client_cert_file') ?? remote?.clientCertFile ?? `${clientDir}/client.crt`);
  const clientKeyFile = home(str('incus_client_key_file') ?? remote?.clientKeyFile ?? `${clientDir}/client.key`);
  sources.client =
    varSource('incus_client_cert_file') ??
    (remote ? `the client pair of ${remote.configDir}` : `the ${server === 'lxd' ? 'lxc' : 'incus'} client's pair (${clientDir})`);

  const spec: ApiSpec = { url: `https://${url.host}`, address, port, clientCertFile, clientKeyFile };
  const pinned = str('incus_server_cert_file');
  const ca = str('incus_server_ca_file');
  if (pinned !== undefined) {
    spec.serverCertFile = home(pinned);
    sources.server = `pinned by ${varSource('incus_server_cert_file') ?? 'incus_server_cert_file'}`;
  } else if (ca !== undefined) {
    spec.caFile = home(ca);
    spec.serverName = str('incus_server_name') ?? address;
    sources.server = `signed by ${varSource('incus_server_ca_file') ?? 'incus_server_ca_file'}, name ${spec.serverName}`;
  } else if (remote?.serverCertFile !== undefined) {
    spec.serverCertFile = remote.serverCertFile;
    sources.server = `pinned by ${remote.serverCertFile}`;
  } else {
    sources.server = 'recorded by --accept-new-host-keys, or unknown';
  }
  if (remote) spec.remote = { name: remote.name, configDir: remote.configDir };
  return { spec, sources };
}

function httpsSpec(host: string, api: ApiSpec, server: ServerKind, sources: Record<string, string>): ConnectionSpec {
  const spec: ConnectionSpec = {
    host,
    connection: 'https',
    address: api.address,
    port: api.port,
    user: '',
    jumps: [],
    become: false,
    incusSocket: '',
    api,
    sources,
  };
  if (server !== 'incus') spec.server = server;
  return spec;
}
