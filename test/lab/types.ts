/**
 * The test lab's API (implemented in test/lab/lab.ts): real hosts on this machine, each a
 * real sshd on its own loopback address and, unless disabled, a real incusd with its own
 * INCUS_DIR. Used by the e2e tests, `npm run demo` and `npm run bench`.
 *
 * The lab writes a home folder for the client side: HOME/.ssh/{id_ed25519, known_hosts,
 * config}. Run the CLI with `env: lab.env` (HOME pointing there) so that it finds the key,
 * known_hosts and ssh config exactly as it would on a user's machine.
 */

export interface LabHostOptions {
  /** Inventory name (default host1, host2 …). */
  name?: string;
  /** Start an incusd for this host (default true). */
  incus?: boolean;
  /** Open the HTTPS API on ADDRESS:8443 (needed for metrics scraping and clusters). */
  https?: boolean;
  /**
   * false: no sshd at all — the host is reached only through its HTTPS API (as IncusOS is): its
   * inventory variables are incus_api_url and the pinned server certificate; the lab's client
   * certificate is trusted on it. Implies https.
   */
  ssh?: boolean;
  /** The daemon: a real incusd (default), or a real LXD (Debian's `lxd`, LXD_DIR per host). */
  server?: 'incus' | 'lxd';
  /** 'root' (default) or 'sudoer': a non-root login user that must use `sudo -n`. */
  user?: 'root' | 'sudoer';
  /** sshd forbids stream-local forwarding (AllowStreamLocalForwarding no); default allowed. */
  streamLocalForwarding?: boolean;
  /** Only reachable through this other lab host (ProxyJump). */
  jumpVia?: string;
  /** known_hosts holds a different key for it: connecting must fail. */
  wrongHostKey?: boolean;
  /** Listed in the inventory but nothing listens there. */
  down?: boolean;
  /**
   * A Qubes dom0 stand-in: a real policy folder and recorded `qvm-*` stand-in commands on
   * PATH. Qubes OS cannot run here; these stand-ins only record and answer calls.
   */
  dom0?: boolean;
}

export interface LabHost {
  name: string;
  /** 127.x.y.z, unique per lab and per concurrently running lab. */
  address: string;
  sshPort: number;
  /** Login user ('root' or the sudoer's name). */
  user: string;
  /** INCUS_DIR of its incusd, or LXD_DIR of its LXD (undefined when incus: false). */
  incusDir?: string;
  /** The daemon's unix socket (INCUS_DIR/unix.socket). */
  incusSocket?: string;
  server: 'incus' | 'lxd';
  /** https://ADDRESS:8443 when the HTTPS API is open. */
  apiUrl?: string;
  /** The daemon's own certificate (INCUS_DIR/server.crt). */
  serverCertFile?: string;
  /** HTTPS-only hosts: the copy of it the inventory pins (as `incus remote add` keeps one under servercerts/). */
  pinnedServerCertFile?: string;
  /** SHA-256 fingerprint of its ssh host key, as OpenSSH prints it (SHA256:…). */
  hostKeyFingerprint: string;
  /** dom0 stand-in: the policy folder and the file where qvm-* calls are recorded. */
  qubesPolicyDir?: string;
  qvmCallLog?: string;
  /** Inventory variables that reach this host (ansible_host, ansible_port, ansible_user, incus_socket, …). */
  inventoryVars(): Record<string, unknown>;
  /** Runs the daemon's own client (`incus`, or `lxc` for LXD) against this host's daemon (INCUS_DIR / LXD_DIR set); returns stdout. `stdin` (e.g. a preseed) is written to it, else it is closed. */
  incus(args: string[], stdin?: string): Promise<string>;
  stopIncus(): Promise<void>;
  startIncus(): Promise<void>;
  /** Stops sshd; with `dropSessions`, its running sessions too (SIGKILL), as when the host goes away. */
  stopSshd(options?: { dropSessions?: boolean }): Promise<void>;
  startSshd(): Promise<void>;
}

export interface Lab {
  /** The lab's folder (logs under logs/, client HOME under home/). */
  dir: string;
  hosts: LabHost[];
  host(name: string): LabHost;
  /** Environment for a CLI subprocess: HOME → the lab's client home. */
  env: NodeJS.ProcessEnv;
  /**
   * The lab's incus client pair, HOME/.config/incus/client.{crt,key} (and the same under
   * .config/lxc): trusted on every HTTPS-only host, as after `incus remote add`.
   */
  clientCertFile: string;
  clientKeyFile: string;
  /**
   * Writes an inventory (YAML) for the given hosts under `group` with `extraVars` in all.vars
   * and returns its path. Tests can also write their own.
   */
  writeInventory(options?: { group?: string; hosts?: string[]; allVars?: Record<string, unknown>; file?: string }): Promise<string>;
  /** Stops every process the lab started (by PID) and removes incusd state. Idempotent. */
  stop(): Promise<void>;
}

export type StartLab = (options: { hosts: number | LabHostOptions[]; name?: string }) => Promise<Lab>;
