/**
 * How reconcile talks to a host. One HostSession per host for the whole run; every call is
 * a channel on it (an exec channel, or an HTTP request on a forwarded Incus unix socket).
 * Implementations: ssh.ts (ssh2) and local.ts (ansible_connection: local). Modules see only
 * these interfaces, so a new kind of reconciled thing never touches ssh2.
 */

/** How to reach one host, normalized from the ansible_* variables and ~/.ssh/config. */
export interface ConnectionSpec {
  /** Inventory host name; every error names it. */
  host: string;
  /** ssh, local, or https: the daemon's REST API only (incus_api_url / incus_remote), no shell. */
  connection: 'ssh' | 'local' | 'https';
  /** ansible_host, else ~/.ssh/config HostName, else the inventory name. */
  address: string;
  port: number;
  user: string;
  /** ansible_ssh_private_key_file / IdentityFile; absent: agent, then default keys. */
  privateKeyFile?: string;
  /** Hosts to jump through, outermost first (ProxyJump / -J). */
  jumps: JumpSpec[];
  /** ProxyCommand (tokens expanded): run through /bin/sh, its stdin/stdout the SSH transport. */
  proxyCommand?: string;
  /** ansible_become: run privileged commands through `sudo -n`. */
  become: boolean;
  /** Incus unix socket on the host (host var `incus_socket`, default /var/lib/incus/unix.socket). */
  incusSocket: string;
  /** Sockets tried in order when `incusSocket` cannot be opened (LXD's, for `incus_server: lxd`). */
  socketFallbacks?: string[];
  /** incus_socket was set (else the daemon's client finds its own default socket). */
  socketGiven?: boolean;
  /** The daemon (`incus_server`): incus, or lxd (its sockets, and `lxc query` under become). */
  server?: 'incus' | 'lxd';
  /** How an https host is reached (absent for ssh and local). */
  api?: ApiSpec;
  /**
   * known_hosts files for this host (`-o UserKnownHostsFile=` in ansible_ssh_common_args, or
   * UserKnownHostsFile in ~/.ssh/config); absent: TransportOptions.knownHostsFiles.
   */
  knownHostsFiles?: string[];
  /** Worth telling the user, not worth failing the host (e.g. a private key file others may read). */
  warnings?: string[];
  /** Where each setting came from (`user: ansible_user (hosts.yaml:5)`), for -vvv; not kept in a saved plan. */
  sources?: Record<string, string>;
}

/**
 * The REST API over TLS with a client certificate, as `incus remote add` sets it up. The server
 * is known by a pinned certificate, or a CA and the name its certificate carries.
 */
export interface ApiSpec {
  /** https://ADDRESS:PORT */
  url: string;
  address: string;
  port: number;
  clientCertFile: string;
  clientKeyFile: string;
  /** The server's own certificate: only that one is accepted (incus_server_cert_file, or the remote's servercerts/NAME.crt). */
  serverCertFile?: string;
  /** A CA that signed the server certificate, checked against `serverName` (incus_server_ca_file + incus_server_name). */
  caFile?: string;
  serverName?: string;
  /** incus_remote: the remote's name, and the client configuration folder it came from. */
  remote?: { name: string; configDir: string };
}

export interface JumpSpec {
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
}

/** The sockets to try, in order, and the query client of the daemon. */
export function daemonSockets(spec: ConnectionSpec): string[] {
  return [spec.incusSocket, ...(spec.socketFallbacks ?? [])];
}

/** `incus query` / `lxc query` over exec, with the socket the inventory named (else the client's own default). */
export function queryClient(spec: ConnectionSpec): { client: 'incus' | 'lxc'; socket: string | undefined } {
  if (spec.server === 'lxd') return { client: 'lxc', socket: spec.socketGiven ? spec.incusSocket : undefined };
  return { client: 'incus', socket: spec.incusSocket };
}

export interface TransportOptions {
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** known_hosts files to check host keys against (default ~/.ssh/known_hosts). */
  knownHostsFiles: string[];
  /** Record keys of hosts never seen before (never accepts a changed key). */
  acceptNewHostKeys: boolean;
  /** ~/.ssh/config path, or undefined for none. */
  sshConfigFile?: string;
  /** ssh-agent socket; undefined: SSH_AUTH_SOCK of the process; null: no agent. */
  agentSocket?: string | null;
  /** -vvvv: a line of the SSH negotiation (ssh2's debug output), already prefixed with the host. */
  debug?: (line: string) => void;
  /** Where --accept-new-host-keys records HTTPS servers' certificates (default ~/.config/reconcile/servercerts). */
  knownServersDir?: string;
  /** ansible.cfg, ANSIBLE_* and -u/--private-key: below every host's own variables. */
  defaults?: import('./connection-spec.js').ConnectionDefaults;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
}

export interface ExecOptions {
  /** Bytes written to the command's standard input, then closed. */
  stdin?: string | Buffer;
  /** Run through `sudo -n` when the host's connection has become. */
  privileged?: boolean;
  /** Overrides TransportOptions.commandTimeoutMs for this command. */
  timeoutMs?: number;
}

/** A response of the Incus REST API. */
export interface IncusResponse<T = unknown> {
  status: number;
  /** ETag header when the API sent one (only on the socket path; `incus query` hides it). */
  etag?: string;
  /** The `metadata` of a sync response. */
  metadata: T;
}

export interface IncusRequestOptions {
  /** Sent as If-Match; Incus answers 412 when the entity changed since it was read. */
  ifMatch?: string;
}

export interface IncusApi {
  /** Throws TransportError (naming host and `step`) on a non-2xx answer or broken JSON. */
  request<T = unknown>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    step: string,
    body?: unknown,
    options?: IncusRequestOptions,
  ): Promise<IncusResponse<T>>;
}

/** One event of the daemon's `/1.0/events` stream (lifecycle: `metadata.action` such as certificate-created). */
export interface DaemonEvent {
  type: string;
  timestamp?: string;
  location?: string;
  metadata?: { action?: string; source?: string; [key: string]: unknown };
}

export interface EventSubscription {
  close(): void;
}

export interface WriteFileOptions {
  mode: number;
  owner?: string;
  group?: string;
  /** Keep the previous file as PATH.bak (or a timestamped name) before replacing it. */
  backup: boolean;
  /**
   * Command that must succeed on the temporary file before it is renamed into place;
   * `{}` in the argv is replaced by the temporary path. A failure leaves the old file.
   */
  check?: string[];
  /** Temporary file name prefix inside the target folder (default `.reconcile-`). */
  tempPrefix?: string;
}

export interface HostSession {
  readonly spec: ConnectionSpec;
  /**
   * Runs argv on the host. Every element is shell-quoted here, so inventory values never
   * reach a shell unquoted. Non-zero exits are returned, not thrown; timeouts and broken
   * connections throw TransportError.
   */
  exec(argv: string[], step: string, options?: ExecOptions): Promise<ExecResult>;
  /** The Incus API of this host (its unix socket forwarded, or relayed under sudo; `incus query` where neither works). */
  readonly incus: IncusApi;
  /**
   * The client certificate this session authenticates with (HTTPS): it is in the host's trust
   * store, and no plan may take it away (that would lock reconcile out).
   */
  readonly identity?: { fingerprint: string; certificateFile: string };
  /** What the plan says under the host about how it was reached, where that weakens a guarantee. */
  readonly notes?: readonly string[];
  /**
   * Subscribes to the daemon's event stream (`type` e.g. "lifecycle"); `onEnd` says why it
   * stopped. Absent where the daemon is reached through `incus query` only (no stream to hold).
   */
  events?(type: string, onEvent: (event: DaemonEvent) => void, onEnd: (why: string) => void): Promise<EventSubscription>;
  /** A file's bytes, or undefined when it does not exist. */
  readFile(path: string, step: string, privileged?: boolean): Promise<Buffer | undefined>;
  /** Atomic write: temporary file in the same folder, optional check, backup, rename. */
  writeFile(path: string, content: string | Buffer, step: string, options: WriteFileOptions): Promise<void>;
  /** Closes the connection; idempotent. */
  close(): Promise<void>;
}
