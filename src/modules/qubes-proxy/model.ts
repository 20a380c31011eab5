/**
 * What the qubes_prometheus_proxy module works with: the desired proxy setup of one dom0
 * (from the inventory), and what dom0 has today (policy file, proxy service per proxy VM).
 */

/** The Qubes service that starts prometheus-qubes-proxy in a proxy VM. */
export const PROXY_SERVICE = 'prometheus-qubes-proxy';
/** The qrexec service each scraped VM offers (argument: the exporter's port). */
export const PROXY_RPC = 'ruddo.PrometheusProxy';
/** The qrexec service the proxy calls in dom0 to list what it may scrape. */
export const DISCOVER_RPC = 'ruddo.PrometheusDiscover';
/** Where prometheus-qubes-proxy listens in its VM. */
export const PROXY_LISTEN_PORT = 8199;

export const DEFAULT_POLICY_FILE = '30-prometheus-proxy.policy';
export const DEFAULT_POLICY_DIR = '/etc/qubes/policy.d';
/** Mode and owner of the policy file; group `qubes` lets the dom0 user's tools read it. */
export const POLICY_MODE = 0o664;
export const POLICY_OWNER = 'root';
export const POLICY_GROUP = 'qubes';

/** A VM scraped through the proxy: a VM name or `@tag:NAME`, and its exporter ports. */
export interface ProxyTarget {
  /** `work` or `@tag:monitored`. */
  target: string;
  /** Sorted, without duplicates, each in 1025–65535. */
  ports: number[];
}

/**
 * The desired state on one dom0. Invariants (desired.ts): every name passed Qubes' VM name
 * rules, `proxies` is sorted and unique, `targets` sorted by target with merged ports,
 * `policyFile` matches [0-9a-z_.-]+ and ends in `.policy`.
 */
export interface DesiredQubesProxy {
  proxies: string[];
  targets: ProxyTarget[];
  /** Start a stopped target VM when the proxy calls it (`autostart=yes`). */
  autostart: boolean;
  /** Host or address Prometheus reaches a proxy VM at; a proxy not listed is reached by its name. */
  proxyAddresses: Record<string, string>;
  policyDir: string;
  policyFile: string;
  /** policyDir/policyFile */
  policyPath: string;
}

/** The policy file as dom0 has it. */
export interface ObservedPolicyFile {
  path: string;
  /** Undefined when the file does not exist. */
  content?: string;
  /** Octal permission bits as `stat -c %a` prints them (`664`); undefined when missing. */
  mode?: string;
  owner?: string;
  group?: string;
}

/** What `qvm-service VM` said about the proxy service of one proxy VM. */
export interface ObservedProxyService {
  vm: string;
  /** true: listed as on; false: listed as off; undefined: not listed (VM's default, off). */
  enabled?: boolean;
  /** qvm-service failed (e.g. no such VM): the message, for the plan's errors. */
  error?: string;
}

export interface ObservedQubesProxy {
  policy: ObservedPolicyFile;
  services: ObservedProxyService[];
  /** Proxy VMs the policy file on dom0 set up that the inventory no longer names: their service, to disable. */
  retired?: ObservedProxyService[];
}
