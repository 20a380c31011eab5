/**
 * The SSH transport (ssh2): one connection per host for the whole run (plus one per jump
 * host), every command an exec channel on it, the Incus API over stream-local forwarding of
 * its unix socket (keep-alive HTTP, a few channels at most) or, when the host needs become,
 * over a relay to the socket run with `sudo -n`; `incus query` where neither can be opened. Host keys are checked against known_hosts before anything is
 * sent; an unknown or changed key fails the host with the key's SHA256 fingerprint.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, mkdir } from '../async-fs.js';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import pLimit from 'p-limit';
import SshClient from 'ssh2/lib/client.js';
// A CommonJS module: Node's ES module loader finds no named exports in it (dist/src run unbundled).
import keyParser from 'ssh2/lib/protocol/keyParser.js';
import type { AnyAuthMethod, Client, ClientChannel, ConnectConfig, ParsedKey } from 'ssh2';
import { TransportError } from '../errors.js';
import { readLocalFile } from '../local-file.js';
import { readHostFile, writeHostFile } from './host-files.js';
import { firstSocketOpener, HttpStreams, StreamOpenError } from './http-client.js';
import { incusOverHttp, incusOverQuery } from './incus-api.js';
import {
  entriesNaming,
  keyTypeOfBlob,
  knownHostName,
  knownHostsLine,
  knownKeyTypes,
  parseKnownHosts,
  sha256Fingerprint,
  verdictFor,
  type KnownHostEntry,
} from './known-hosts.js';
import { commandName, shellCommand } from './shell-quote.js';
import {
  daemonSockets,
  queryClient,
  type ConnectionSpec,
  type DaemonEvent,
  type EventSubscription,
  type ExecOptions,
  type ExecResult,
  type HostSession,
  type IncusApi,
  type IncusResponse,
  type TransportOptions,
} from './types.js';

/**
 * Relays stdin/stdout to the unix socket named by its argument, both ways, until either side
 * ends; "ready" on stderr once connected. Run as root through `sudo -n` on become hosts.
 */
const SOCKET_RELAY = [
  'use IO::Socket::UNIX; use IO::Select;',
  'my $s = IO::Socket::UNIX->new(Peer => $ARGV[0], Type => SOCK_STREAM) or die "cannot connect to $ARGV[0]: $!\\n";',
  'binmode STDIN; binmode STDOUT; binmode $s; print STDERR "ready\\n";',
  'my $sel = IO::Select->new(\\*STDIN, $s);',
  'for (;;) { for my $in ($sel->can_read) {',
  '  my $n = sysread($in, my $buf, 65536); exit 0 unless $n;',
  '  my $out = fileno($in) == fileno($s) ? \\*STDOUT : $s;',
  '  while (length $buf) { my $w = syswrite($out, $buf); die "write: $!\\n" unless defined $w; substr($buf, 0, $w) = ""; }',
  '} }',
].join('\n');

/** OpenSSH's MaxSessions is 10 by default: stay under it. */
const MAX_EXEC_CHANNELS = 8;
const MAX_HTTP_STREAMS = 4;
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

interface Hop {
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  /** How messages name this hop: the inventory host, or "jump host ADDRESS". */
  label: string;
}

/**
 * The keys we may offer: the named file, or the default files that exist. `locked`: key files
 * left out because a passphrase protects them (only an agent can use them), for the message.
 */
async function loadKeys(host: string, hop: Hop): Promise<{ keys: { file: string; key: ParsedKey }[]; locked: string[] }> {
  const named = hop.privateKeyFile !== undefined;
  const files = named ? [hop.privateKeyFile!] : DEFAULT_KEYS.map((k) => path.join(os.homedir(), '.ssh', k)).filter((f) => existsSync(f));
  const keys: { file: string; key: ParsedKey }[] = [];
  const locked: string[] = [];
  for (const file of files) {
    const read = readKey(file);
    if ('missing' in read) {
      if (named) throw new TransportError(host, 'read private key', `${file} ${read.missing}`, true);
      continue;
    }
    // An encrypted key cannot be used without a prompt; the agent may hold it.
    if (read.key instanceof Error) {
      const encrypted = /passphrase|encrypted/i.test(read.key.message);
      if (named && !process.env.SSH_AUTH_SOCK) {
        throw new TransportError(host, 'read private key', encrypted ? lockedKeyAdvice([file]) : `${file}: ${read.key.message}`, true);
      }
      if (encrypted) locked.push(file);
      continue;
    }
    keys.push({ file, key: read.key });
  }
  return { keys, locked };
}

/**
 * A key file read and parsed once per run, not once per host (parsing builds a KeyObject: ~1 ms
 * each, 100 ms at 100 hosts); read again when its size or mtime changes (watch runs for weeks).
 * ssh2 takes the parsed key as it is.
 */
const keyCache = new Map<string, { version: string; read: { key: ParsedKey | Error } | { missing: string } }>();

function readKey(file: string): { key: ParsedKey | Error } | { missing: string } {
  const version = fileVersion(file).join(':');
  const cached = keyCache.get(file);
  if (cached?.version === version) return cached.read;
  const bytes = readLocalFile(file);
  let read: { key: ParsedKey | Error } | { missing: string };
  if ('bytes' in bytes) {
    // OpenSSH's own format parses to a list (of one key, as OpenSSH writes it).
    const parsed = keyParser.parseKey(bytes.bytes) as ParsedKey | ParsedKey[] | Error;
    read = { key: Array.isArray(parsed) ? (parsed[0] ?? new Error('no key in the file')) : parsed };
  } else {
    read = { missing: 'refused' in bytes ? bytes.refused : 'does not exist' };
  }
  keyCache.set(file, { version, read });
  return read;
}

/** What to do about keys only an agent could use (reconcile never asks for a passphrase). */
function lockedKeyAdvice(files: string[]): string {
  const shown = files.map((f) => f.replace(os.homedir(), '~'));
  return (
    `${shown.join(', ')} ${files.length === 1 ? 'is' : 'are'} protected by a passphrase and no ssh-agent holds ${files.length === 1 ? 'it' : 'them'} ` +
    `(SSH_AUTH_SOCK is not set): start one and run 'ssh-add ${shown[0]}', or name a key without a passphrase (ansible_ssh_private_key_file, --private-key)`
  );
}

function describeConnectError(e: Error & { code?: string; level?: string }, hop: Hop, timeoutMs: number): { step: string; message: string } {
  const where = `${hop.address}:${hop.port}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return { step: 'connect', message: `connection refused by ${where}` };
    case 'ETIMEDOUT':
      return { step: 'connect', message: `no answer from ${where} within ${timeoutMs} ms` };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { step: 'connect', message: `cannot resolve ${hop.address}` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { step: 'connect', message: `${where} is unreachable (${e.code})` };
    case 'ECONNRESET':
      return { step: 'connect', message: `${where} closed the connection` };
  }
  if (e.level === 'client-timeout') return { step: 'connect', message: `no SSH handshake with ${where} within ${timeoutMs} ms` };
  if (e.level === 'client-authentication') return { step: 'authenticate', message: `${hop.user}@${where} accepted none of the keys offered` };
  return { step: 'connect', message: `${where}: ${e.message}` };
}

const knownHostsCache = new Map<string, KnownHosts>();

function fileVersion(file: string): [number, number] {
  try {
    const st = statSync(file);
    return [st.size, st.mtimeMs];
  } catch {
    return [-1, -1];
  }
}

class KnownHosts {
  /** The entries naming each host, found once per host: the key types before connecting and the check during it share them. */
  private readonly naming = new Map<string, KnownHostEntry[]>();
  /** The entries holding each key (base64 as in the file). */
  private readonly holding = new Map<string, KnownHostEntry[]>();
  /** The key types of the plain lines. */
  private readonly types = new Set<string>();

  constructor(
    readonly files: string[],
    private entries: KnownHostEntry[],
  ) {
    for (const e of entries) this.index(e);
  }

  private index(e: KnownHostEntry): void {
    if (e.marker === undefined) this.types.add(e.keyType);
    const list = this.holding.get(e.keyBase64) ?? [];
    list.push(e);
    this.holding.set(e.keyBase64, list);
  }

  /**
   * Read and parsed once per run, not once per host: with N hosts known_hosts has N lines and
   * parsing it per host was N² work. Keyed by each file's size and mtime, so a file changed
   * meanwhile (by another program, or by add() below) is read again.
   */
  static load(files: string[]): KnownHosts {
    const key = JSON.stringify(files.map((f) => [f, ...fileVersion(f)]));
    let known = knownHostsCache.get(key);
    if (!known) {
      known = KnownHosts.read(files);
      knownHostsCache.set(key, known);
    }
    return known;
  }

  /** Synchronous: every connection waits for it, and an asynchronous read waited 1–4 ms for libuv's thread pool. */
  private static read(files: string[]): KnownHosts {
    const entries: KnownHostEntry[] = [];
    for (const f of files) {
      let text = '';
      try {
        text = readFileSync(f, 'utf8');
      } catch {
        // none yet: every host is unknown
      }
      entries.push(...parseKnownHosts(text, f));
    }
    return new KnownHosts(files, entries);
  }

  private entriesFor(hostName: string): KnownHostEntry[] {
    let found = this.naming.get(hostName);
    if (!found) {
      found = entriesNaming(this.entries, hostName);
      this.naming.set(hostName, found);
    }
    return found;
  }

  /**
   * The usual case first: a line holding the very key offered names the host (an HMAC or two
   * instead of one per hashed line). The same verdict as from all the host's lines: a revoked or
   * matching line holds that key. Anything else is decided from all of them.
   */
  check(hostName: string, blob: Buffer) {
    const verdict = verdictFor(entriesNaming(this.holding.get(blob.toString('base64')) ?? [], hostName), blob);
    return verdict.status === 'match' || verdict.status === 'revoked' ? verdict : verdictFor(this.entriesFor(hostName), blob);
  }

  keyTypes(hostName: string) {
    return knownKeyTypes(this.entriesFor(hostName));
  }

  /** The one key type of every plain line, if there is one. */
  onlyKeyType(): string | undefined {
    return this.types.size === 1 ? [...this.types][0] : undefined;
  }

  /** Records a key never seen before in the first file (hashed, as Debian's OpenSSH does). */
  async add(hostName: string, blob: Buffer): Promise<void> {
    const file = this.files[0];
    if (!file) return;
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const line = knownHostsLine(hostName, blob, true);
    await appendFile(file, `${line}\n`, { mode: 0o600 });
    for (const e of parseKnownHosts(line, file)) {
      this.entries.push(e);
      this.index(e);
    }
    this.naming.delete(hostName);
  }
}

/** Opens one authenticated SSH connection to a hop, over `sock` when it sits behind a jump. */
async function connectHop(host: string, hop: Hop, options: TransportOptions, knownHosts: KnownHosts, sock?: Duplex): Promise<Client> {
  const { keys, locked } = await loadKeys(host, hop);
  const agent = options.agentSocket === undefined ? process.env.SSH_AUTH_SOCK : (options.agentSocket ?? undefined);
  const methods: AnyAuthMethod[] = [];
  if (agent) methods.push({ type: 'agent', username: hop.user, agent });
  for (const k of keys) methods.push({ type: 'publickey', username: hop.user, key: k.key });
  if (methods.length === 0) {
    throw new TransportError(
      host,
      'authenticate',
      locked.length > 0
        ? `no key to offer ${hop.user}@${hop.address}: ${lockedKeyAdvice(locked)}`
        : `no key to offer ${hop.user}@${hop.address}: no ssh-agent (SSH_AUTH_SOCK) and no key file (${hop.privateKeyFile ?? DEFAULT_KEYS.map((k) => `~/.ssh/${k}`).join(', ')})`,
      true,
    );
  }

  const hostName = knownHostName(hop.address, hop.port);
  let hostKeyProblem: TransportError | undefined;
  const prefix = hop.label === host ? '' : `${hop.label}: `;
  const hostVerifier = (blob: Buffer, verify: (ok: boolean) => void): void => {
    const verdict = knownHosts.check(hostName, blob);
    if (verdict.status === 'match') return verify(true);
    // Only a key that is not simply known gets a message naming it.
    const fingerprint = sha256Fingerprint(blob);
    const type = keyTypeOfBlob(blob);
    if (verdict.status === 'unknown' && options.acceptNewHostKeys) {
      knownHosts.add(hostName, blob).then(
        () => verify(true),
        (e: Error) => {
          hostKeyProblem = new TransportError(
            host,
            'verify host key',
            `${prefix}cannot record the new key ${type} ${fingerprint} in ${knownHosts.files[0]}: ${e.message}`,
            true,
          );
          verify(false);
        },
      );
      return;
    }
    const message =
      verdict.status === 'unknown'
        ? `${prefix}${hostName} is not in ${knownHosts.files.join(', ') || 'known_hosts'}; it offered ${type} ${fingerprint} (check it, then add it or use --accept-new-host-keys)`
        : verdict.status === 'revoked'
          ? `${prefix}${hostName} offered ${type} ${fingerprint}, which is marked @revoked in ${verdict.entry.file}:${verdict.entry.line}`
          : `${prefix}HOST KEY CHANGED for ${hostName}: it offered ${type} ${fingerprint}, known_hosts expects ${verdict.expected
              .map((e) => `${e.keyType} ${sha256Fingerprint(Buffer.from(e.keyBase64, 'base64'))} (${e.file}:${e.line})`)
              .join(', ')}; not connecting (a changed key is never accepted)`;
    hostKeyProblem = new TransportError(host, 'verify host key', message, true);
    verify(false);
  };

  // Offer the key types known_hosts has for this host first, as OpenSSH does. When every line
  // holds a key of the type offered first anyway the order cannot change, and the host's lines
  // (an HMAC per hashed line) need not be looked for.
  const defaults = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  const known = knownHosts.onlyKeyType() === defaults[0] ? [] : knownHosts.keyTypes(hostName);
  // Only types ssh2 speaks (it refuses unknown names; e.g. sk-* keys in known_hosts are skipped).
  const serverHostKey = [...known.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])), ...defaults].filter(
    (t, i, all) => all.indexOf(t) === i && defaults.includes(t),
  );

  const config: ConnectConfig = {
    host: hop.address,
    port: hop.port,
    username: hop.user,
    sock: sock as ConnectConfig['sock'],
    readyTimeout: options.connectTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    authHandler: methods,
    hostVerifier,
    algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
  };
  // -vvvv: ssh2's own account of the negotiation; a line carrying a long base64 run (a key, a
  // signature) is left out, so nothing secret reaches the log.
  if (options.debug) config.debug = (line: string) => void (/[A-Za-z0-9+/=]{40,}/.test(line) || options.debug!(`${host}: ssh: ${line}`));
  const client = new SshClient();
  return new Promise<Client>((resolve, reject) => {
    const onError = (e: Error & { code?: string; level?: string }) => {
      client.removeListener('ready', onReady);
      client.on('error', () => {}); // ssh2 may report the same failure twice; the first one counts
      client.end();
      if (hostKeyProblem) return reject(hostKeyProblem);
      const { step, message } = describeConnectError(e, hop, options.connectTimeoutMs);
      reject(new TransportError(host, step, `${prefix}${message}`, true, { cause: e }));
    };
    const onReady = () => {
      client.removeListener('error', onError);
      resolve(client);
    };
    client.once('ready', onReady);
    client.once('error', onError);
    client.connect(config);
    // Requests and answers are small and come in turns: without TCP_NODELAY, Nagle holds each
    // request until the previous packet is acknowledged (a delayed ACK: up to 40 ms a turn).
    client.setNoDelay(true);
  });
}

/** Connects over SSH (through every jump host) and returns the host's session. */
export async function connectSsh(spec: ConnectionSpec, options: TransportOptions): Promise<HostSession> {
  const knownHosts = KnownHosts.load(spec.knownHostsFiles ?? options.knownHostsFiles);
  const clients: Client[] = [];
  const hops: Hop[] = [
    ...spec.jumps.map((j) => ({ ...j, label: `jump host ${j.user}@${knownHostName(j.address, j.port)}` })),
    { address: spec.address, port: spec.port, user: spec.user, privateKeyFile: spec.privateKeyFile, label: spec.host },
  ];
  const proxy = spec.proxyCommand !== undefined ? startProxyCommand(spec.proxyCommand) : undefined;
  try {
    let sock: Duplex | undefined = proxy?.stream;
    for (const [i, hop] of hops.entries()) {
      const client = await connectHop(spec.host, hop, options, knownHosts, sock).catch(async (e: unknown) => {
        // What the proxy said is why, most of the time (a relay that cannot reach the host):
        // give it a moment to finish saying it (SSH may see the stream break first).
        if (proxy) await proxy.ended(1000);
        const said = proxy?.stderr().trim();
        if (said && e instanceof TransportError) {
          throw new TransportError(spec.host, e.step, `${e.message.slice(`${e.host}: ${e.step}: `.length)}; ProxyCommand said: ${said}`, e.unreachable, {
            cause: e,
          });
        }
        throw e;
      });
      clients.push(client);
      const next = hops[i + 1];
      if (next) {
        sock = await new Promise<Duplex>((resolve, reject) => {
          const where = knownHostName(next.address, next.port);
          const timer = setTimeout(
            () => reject(new TransportError(spec.host, 'connect', `${hop.label} did not reach ${where} within ${options.connectTimeoutMs} ms`, true)),
            options.connectTimeoutMs,
          );
          client.forwardOut('127.0.0.1', 0, next.address, next.port, (err, stream) => {
            clearTimeout(timer);
            if (err) reject(new TransportError(spec.host, 'connect', `${hop.label} cannot reach ${where}: ${err.message}`, true, { cause: err }));
            else resolve(stream);
          });
        });
      }
    }
  } catch (e) {
    for (const c of clients.reverse()) c.end();
    proxy?.stop();
    throw e;
  }
  const session = new SshSession(spec, options, clients);
  if (proxy) clients[0]!.on('close', () => proxy.stop());
  return session;
}

/**
 * Runs a ProxyCommand as OpenSSH does (`/bin/sh -c`, in its own process group): its stdout and
 * stdin become the byte stream ssh2 speaks SSH over; its stderr is kept for the error message.
 */
function startProxyCommand(command: string): { stream: Duplex; stderr(): string; ended(withinMs: number): Promise<void>; stop(): void } {
  const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString('utf8');
  });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  // An exec that fails (no /bin/sh) or a proxy that dies ends the stream: ssh2 reports it.
  child.on('error', (e) => stream.destroy(e));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    stream,
    stderr: () => stderr,
    ended: (withinMs) => Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, withinMs).unref())]),
    stop: () => {
      if (child.exitCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // Gone already.
        }
      }
    },
  };
}

class SshSession implements HostSession {
  readonly incus: IncusApi;
  private readonly client: Client;
  private readonly limit = pLimit(MAX_EXEC_CHANNELS);
  private readonly pool: HttpStreams;
  private lost?: Error;
  private closed = false;

  constructor(
    readonly spec: ConnectionSpec,
    private readonly options: TransportOptions,
    private readonly clients: Client[],
  ) {
    this.client = clients[clients.length - 1]!;
    for (const c of clients) {
      c.on('error', (e: Error) => (this.lost ??= e));
      c.on('close', () => (this.lost ??= new Error('connection closed')));
    }
    // Under sudo the socket is root's: a relay the host runs as root carries the same HTTP, so
    // updates keep their ETag (If-Match) as over a forwarded socket.
    this.pool = new HttpStreams(
      firstSocketOpener(daemonSockets(spec), (socket) => (spec.become ? this.openRelay(socket) : this.openForwarded(socket))),
      MAX_HTTP_STREAMS,
      () => (this.lost ? new Error(`connection lost: ${this.lost.message}`) : undefined),
    );
    const { client, socket } = queryClient(spec);
    const query = incusOverQuery(spec.host, socket, (argv, step) => this.exec(argv, step, { privileged: spec.become }), client);
    // The socket first. When it cannot be opened (sshd may forbid stream-local forwarding, and
    // OpenSSH answers "open failed" either way; a sudo that allows only `incus` refuses the
    // relay), try `incus query` over exec: if that works, the run keeps using it.
    const http = incusOverHttp(spec.host, this.pool, options.commandTimeoutMs);
    let viaExec = false;
    const notes = this.notes;
    this.incus = {
      async request<T>(...args: Parameters<IncusApi['request']>): Promise<IncusResponse<T>> {
        if (viaExec) return query.request<T>(...args);
        try {
          return await http.request<T>(...args);
        } catch (e) {
          if (!(e instanceof TransportError && e.cause instanceof StreamOpenError)) throw e;
          let answer: IncusResponse<T>;
          try {
            answer = await query.request<T>(...args);
          } catch (again) {
            const why = again instanceof TransportError ? again.message.slice(`${again.host}: ${again.step}: `.length) : String(again);
            throw new TransportError(spec.host, args[2], `${e.message.slice(`${e.host}: ${e.step}: `.length)}; over exec: ${why}`, false, { cause: again });
          }
          // Concurrent reads may all get here: the note is said once.
          if (!viaExec) {
            notes.push(
              `the ${client === 'lxc' ? 'LXD' : 'Incus'} socket is reached through \`${client} query\` (${e.cause.message}): an update is re-read right before it is written, but without the entry's ETag, so a change in that last round trip is not detected`,
            );
          }
          viaExec = true;
          return answer;
        }
      },
    };
  }

  /** Transport notes the plan shows under the host (how it was reached when that weakens a guarantee). */
  readonly notes: string[] = [];

  /** The Incus socket through sshd's stream-local forwarding. */
  private openForwarded(socket: string): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      if (this.lost) return reject(this.lost);
      // A channel asked for while the connection dies gets no answer from ssh2: the loss ends the wait.
      const lost = () => {
        clearTimeout(timer);
        reject(new Error('connection lost'));
      };
      const timer = setTimeout(() => {
        this.client.off('close', lost);
        reject(new Error(`sshd did not open ${socket} within ${this.options.commandTimeoutMs} ms`));
      }, this.options.commandTimeoutMs);
      this.client.once('close', lost);
      this.client.openssh_forwardOutStreamLocal(socket, (err, stream) => {
        clearTimeout(timer);
        this.client.off('close', lost);
        if (err) reject(new StreamOpenError(`cannot open ${socket} on the host: ${err.message}`));
        else resolve(stream);
      });
    });
  }

  /**
   * The Incus socket through a relay run with `sudo -n` (perl: every Debian and Ubuntu has it,
   * perl-base is essential): its stdin and stdout are the socket's two directions. It says
   * "ready" on stderr once connected, so a relay that cannot run fails here, before any request.
   */
  private openRelay(socket: string): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      if (this.lost) return reject(this.lost);
      const command = shellCommand(['sudo', '-n', '--', 'perl', '-e', SOCKET_RELAY, socket]);
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        reject(new StreamOpenError(why));
      };
      const timer = setTimeout(
        () => fail(`the relay to ${socket} under sudo did not start within ${this.options.commandTimeoutMs} ms`),
        this.options.commandTimeoutMs,
      );
      this.client.exec(command, (err, channel) => {
        if (err) {
          clearTimeout(timer);
          return fail(`cannot run the relay to ${socket} under sudo: ${err.message}`);
        }
        let stderr = '';
        const onStderr = (d: Buffer) => {
          stderr += d.toString('utf8');
          if (stderr.includes('ready\n') && !settled) {
            settled = true;
            clearTimeout(timer);
            channel.stderr.off('data', onStderr);
            resolve(channel);
          }
        };
        channel.stderr.on('data', onStderr);
        // 'exit' comes even while nobody reads stdout (before "ready" nothing does: 'close' would wait).
        const ended = () => {
          clearTimeout(timer);
          fail(`the relay to ${socket} under sudo did not start: ${stderr.trim().split('\n')[0] || 'it ended at once'}`);
        };
        channel.on('exit', ended);
        channel.on('close', ended);
      });
    });
  }

  exec(argv: string[], step: string, options: ExecOptions = {}): Promise<ExecResult> {
    const words = options.privileged && this.spec.become ? ['sudo', '-n', '--', ...argv] : argv;
    const command = shellCommand(words);
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs;
    return this.limit(
      () =>
        new Promise<ExecResult>((resolve, reject) => {
          if (this.lost || this.closed) {
            return reject(new TransportError(this.spec.host, step, `connection lost: ${this.lost?.message ?? 'closed'}`, true));
          }
          // The timer runs from the channel request on: a channel that never opens times out too.
          let timedOut = false;
          let channel: ClientChannel | undefined;
          const timer = setTimeout(() => {
            timedOut = true;
            channel?.signal('KILL');
            channel?.close();
            reject(new TransportError(this.spec.host, step, `${commandName(argv)} did not finish within ${timeoutMs} ms`));
          }, timeoutMs);
          this.client.exec(command, (err, stream: ClientChannel) => {
            if (timedOut) return stream?.close();
            if (err) {
              clearTimeout(timer);
              return reject(new TransportError(this.spec.host, step, `cannot run ${argv[0]}: ${err.message}`, false, { cause: err }));
            }
            channel = stream;
            const out: Buffer[] = [];
            const errs: Buffer[] = [];
            stream.on('data', (d: Buffer) => out.push(d));
            stream.stderr.on('data', (d: Buffer) => errs.push(d));
            stream.on('close', (code: number | null | undefined, signal?: string) => {
              clearTimeout(timer);
              if (timedOut) return;
              if (code === undefined || code === null) {
                if (signal)
                  return resolve({ exitCode: 128, stdout: Buffer.concat(out), stderr: `${Buffer.concat(errs).toString('utf8')}killed by SIG${signal}` });
                return reject(new TransportError(this.spec.host, step, `connection lost while running ${argv[0]}`, true));
              }
              resolve({ exitCode: code, stdout: Buffer.concat(out), stderr: Buffer.concat(errs).toString('utf8') });
            });
            stream.end(options.stdin ?? '');
          });
        }),
    );
  }

  events(type: string, onEvent: (event: DaemonEvent) => void, onEnd: (why: string) => void): Promise<EventSubscription> {
    return this.pool.events(`/1.0/events?type=${encodeURIComponent(type)}`, onEvent, onEnd, this.options.commandTimeoutMs);
  }

  readFile(path: string, step: string, privileged = false): Promise<Buffer | undefined> {
    return readHostFile(this.spec.host, (a, s, o) => this.exec(a, s, o), path, step, privileged);
  }

  writeFile(path: string, content: string | Buffer, step: string, options: Parameters<HostSession['writeFile']>[3]): Promise<void> {
    return writeHostFile(this.spec.host, (a, s, o) => this.exec(a, s, o), path, content, step, { ...options, privileged: true });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Its channels (the daemon's HTTP connections) end with it: closing each first was two more
    // packets per channel for both ends to encrypt, send and handle, right before the disconnect.
    for (const c of [...this.clients].reverse()) c.end();
  }
}
