/**
 * The desired Qubes proxy setup of one dom0 host, from its inventory variables:
 *
 *   qubes_prometheus_proxy:
 *     proxy: sys-net                 # or a list: [sys-net, sys-net-2]
 *     targets:
 *       - vm: work                   # a VM name, or "@tag:NAME"
 *         ports: [9100, 9101]        # or port: 9100
 *     autostart: false               # default false
 *     policy_file: 30-prometheus-proxy.policy   # default
 *     proxy_addresses:               # optional: how Prometheus reaches a proxy VM
 *       sys-net: 192.168.1.20        #   (default: the VM name)
 *   qubes_policy_dir: /etc/qubes/policy.d      # default
 *
 * Pure. Every problem is returned at once, each with file:line:column and the value path.
 */
import type { Problem, SourceLocation } from '../../errors.js';
import type { InventoryHost, VarDefinition } from '../../inventory/model.js';
import type { DesiredContext, DesiredResult } from '../types.js';
import { DEFAULT_POLICY_DIR, DEFAULT_POLICY_FILE, type DesiredQubesProxy, type ProxyTarget } from './model.js';

export const PROXY_VARIABLE = 'qubes_prometheus_proxy';
export const POLICY_DIR_VARIABLE = 'qubes_policy_dir';

const KNOWN_KEYS = ['proxy', 'targets', 'autostart', 'policy_file', 'proxy_addresses'];
const TARGET_KEYS = ['vm', 'port', 'ports'];
export const MIN_PORT = 1025;
export const MAX_PORT = 65535;

/**
 * Why `name` is not a valid Qubes VM name, or undefined when it is. The rules of
 * qubes-core-admin's validate_name: a letter first, then letters, digits, `_`, `.`, `-`;
 * at most 31 characters; not `none` or `default`; no `-dm` ending (reserved for the
 * device-model stub domains Xen creates).
 */
export function qubeNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'a VM name cannot be empty';
  if (name.length > 31) return `VM name "${name}" is longer than 31 characters`;
  if (!/^[a-zA-Z]/.test(name)) return `VM name "${name}" must start with a letter`;
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(name)) return `VM name "${name}" may only hold letters, digits, "_", "." and "-"`;
  if (name === 'none' || name === 'default') return `"${name}" is reserved and cannot name a VM`;
  if (name.endsWith('-dm')) return `VM name "${name}" cannot end with "-dm" (reserved for device-model domains)`;
  return undefined;
}

/** Why `tag` is not a valid Qubes tag name (letters, digits, `_`, `-`), or undefined. */
export function qubeTagProblem(tag: string): string | undefined {
  if (tag.length === 0) return 'an empty tag after "@tag:"';
  if (!/^[a-zA-Z0-9_-]+$/.test(tag)) return `tag "${tag}" may only hold letters, digits, "_" and "-"`;
  return undefined;
}

/**
 * Why `name` cannot be a policy file name, or undefined. qrexec reads only names of
 * [0-9a-z_.-] ending in `.policy` and not starting with `.`; one other name in the folder
 * makes it deny every call (qrexec/policy/parser.py, filter_filepaths).
 */
export function policyFileNameProblem(name: string): string | undefined {
  if (!/^[0-9a-z_.-]+$/.test(name)) return `policy file name "${name}" may only hold 0-9, a-z, "_", "." and "-" (qrexec denies every call otherwise)`;
  if (name.startsWith('.')) return `policy file name "${name}" starts with "." and would be ignored by qrexec`;
  if (!name.endsWith('.policy') || name === '.policy') return `policy file name "${name}" must end in ".policy"`;
  return undefined;
}

export function desiredQubesProxy(host: InventoryHost, ctx?: Pick<DesiredContext, 'inventory'>): DesiredResult<DesiredQubesProxy> {
  const def = host.vars[PROXY_VARIABLE];
  if (!def) return { problems: [] };
  const problems: Problem[] = [];
  const sources = ctx?.inventory.sources;
  const problemAt = (location: SourceLocation, valuePath: string, message: string): Problem => {
    const sourceLine = sources?.get(location.file)?.split('\n')[location.line - 1];
    return { severity: 'error', location, valuePath, message, ...(sourceLine !== undefined ? { sourceLine } : {}) };
  };
  const error = (sub: string, message: string) => problems.push(problemAt(locate(def, sub), `${def.valuePath}${sub}`, message));
  // An unknown key is pointed at by its key, not its value.
  const keyError = (sub: string, message: string) =>
    problems.push(problemAt(def.nested.get(`key:${sub}`) ?? locate(def, sub), `${def.valuePath}${sub}`, message));

  const raw = def.value;
  if (!isMap(raw)) {
    error('', 'must be a mapping with proxy and targets');
    return { problems };
  }
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.includes(key)) keyError(`.${key}`, `unknown key "${key}" (known: ${KNOWN_KEYS.join(', ')})`);
  }

  const proxies = new Set<string>();
  const proxyValue = raw.proxy;
  const proxyList = typeof proxyValue === 'string' ? [proxyValue] : proxyValue;
  if (proxyValue === undefined || proxyValue === null) error('', 'proxy is missing: the VM(s) running prometheus-qubes-proxy, e.g. proxy: sys-net');
  else if (!Array.isArray(proxyList) || proxyList.length === 0) error('.proxy', 'must be a VM name or a non-empty list of VM names');
  else {
    proxyList.forEach((p: unknown, i: number) => {
      const sub = typeof proxyValue === 'string' ? '.proxy' : `.proxy[${i}]`;
      if (typeof p !== 'string') return error(sub, 'must be a VM name (a string)');
      const why = qubeNameProblem(p);
      if (why) return error(sub, why);
      proxies.add(p);
    });
  }

  const byTarget = new Map<string, Set<number>>();
  const targets = raw.targets;
  if (targets === undefined || targets === null) error('', 'targets is missing: the VMs to scrape, e.g. targets: [{vm: work, ports: [9100]}]');
  else if (!Array.isArray(targets)) error('.targets', 'must be a list of {vm, ports}');
  else {
    targets.forEach((t: unknown, i: number) => {
      const base = `.targets[${i}]`;
      if (!isMap(t)) return error(base, 'must be a mapping {vm: NAME or "@tag:NAME", ports: [PORT, ...]}');
      for (const key of Object.keys(t)) {
        if (!TARGET_KEYS.includes(key)) keyError(`${base}.${key}`, `unknown key "${key}" (known: ${TARGET_KEYS.join(', ')})`);
      }
      const target = checkTarget(t.vm, `${base}.vm`, base, error);
      const ports = checkPorts(t, base, error);
      if (target === undefined || ports === undefined) return;
      const set = byTarget.get(target) ?? new Set<number>();
      for (const p of ports) set.add(p);
      byTarget.set(target, set);
    });
  }

  let autostart = false;
  if (raw.autostart !== undefined) {
    if (typeof raw.autostart !== 'boolean') error('.autostart', 'must be true or false');
    else autostart = raw.autostart;
  }

  let policyFile = DEFAULT_POLICY_FILE;
  if (raw.policy_file !== undefined) {
    if (typeof raw.policy_file !== 'string') error('.policy_file', 'must be a file name');
    else {
      const why = policyFileNameProblem(raw.policy_file);
      if (why) error('.policy_file', why);
      else policyFile = raw.policy_file;
    }
  }

  const proxyAddresses: Record<string, string> = {};
  if (raw.proxy_addresses !== undefined) {
    if (!isMap(raw.proxy_addresses)) error('.proxy_addresses', 'must map proxy VM names to the host or address Prometheus reaches them at');
    else {
      for (const [vm, address] of Object.entries(raw.proxy_addresses)) {
        const sub = `.proxy_addresses.${vm}`;
        if (!proxies.has(vm)) keyError(sub, `"${vm}" is not one of the proxy VMs (${[...proxies].join(', ') || 'none'})`);
        else if (typeof address !== 'string' || !/^[A-Za-z0-9_.:[\]-]+$/.test(address)) error(sub, 'must be a host name or IP address (without port)');
        else proxyAddresses[vm] = address;
      }
    }
  }

  let policyDir = DEFAULT_POLICY_DIR;
  const dirDef = host.vars[POLICY_DIR_VARIABLE];
  if (dirDef) {
    const dir = dirDef.value;
    if (typeof dir !== 'string' || !dir.startsWith('/') || /[\n\0]/.test(dir)) {
      problems.push(problemAt(dirDef.location, dirDef.valuePath, 'must be an absolute folder path, e.g. /etc/qubes/policy.d'));
    } else policyDir = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  }

  if (problems.some((p) => p.severity === 'error')) return { problems };
  const sortedTargets: ProxyTarget[] = [...byTarget.entries()]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([target, ports]) => ({ target, ports: [...ports].sort((x, y) => x - y) }));
  return {
    desired: {
      proxies: [...proxies].sort(compareStrings),
      targets: sortedTargets,
      autostart,
      proxyAddresses,
      policyDir,
      policyFile,
      policyPath: `${policyDir === '/' ? '' : policyDir}/${policyFile}`,
    },
    problems,
  };
}

function checkTarget(value: unknown, sub: string, base: string, error: (sub: string, message: string) => void): string | undefined {
  if (value === undefined || value === null) {
    error(base, 'vm is missing: a VM name or "@tag:NAME"');
    return undefined;
  }
  if (typeof value !== 'string') {
    error(sub, 'must be a VM name or "@tag:NAME"');
    return undefined;
  }
  if (value.startsWith('@')) {
    if (!value.startsWith('@tag:')) {
      error(sub, `"${value}": only VM names and "@tag:NAME" can be scraped through the proxy`);
      return undefined;
    }
    const why = qubeTagProblem(value.slice('@tag:'.length));
    if (why) {
      error(sub, why);
      return undefined;
    }
    return value;
  }
  const why = qubeNameProblem(value);
  if (why) {
    error(sub, why);
    return undefined;
  }
  if (value.includes('.')) {
    // main.go of prometheus-qubes-proxy keeps only what precedes the first "." of `target`.
    error(sub, `VM name "${value}" holds a ".": prometheus-qubes-proxy would call "${value.split('.')[0]}" instead`);
    return undefined;
  }
  return value;
}

function checkPorts(t: Record<string, unknown>, base: string, error: (sub: string, message: string) => void): number[] | undefined {
  if (t.port !== undefined && t.ports !== undefined) {
    error(`${base}.port`, 'give either port or ports, not both');
    return undefined;
  }
  let entries: [unknown, string][];
  if (t.port !== undefined) entries = [[t.port, `${base}.port`]];
  else if (Array.isArray(t.ports) && t.ports.length > 0) entries = t.ports.map((p, i) => [p, `${base}.ports[${i}]`] as [unknown, string]);
  else {
    error(
      t.ports === undefined ? base : `${base}.ports`,
      t.ports === undefined ? 'ports is missing: the exporter port(s), e.g. ports: [9100]' : 'must be a non-empty list of ports',
    );
    return undefined;
  }
  const ports: number[] = [];
  let ok = true;
  for (const [p, sub] of entries) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < MIN_PORT || p > MAX_PORT) {
      error(sub, `${JSON.stringify(p)} is not a port in ${MIN_PORT}–${MAX_PORT} (prometheus-qubes-proxy refuses others)`);
      ok = false;
    } else ports.push(p);
  }
  return ok ? ports : undefined;
}

/**
 * Where a nested value sits. The loader records positions below a variable keyed by the
 * sub-path (`[2].projects`, `.targets[0].vm`); the nearest recorded ancestor stands in for
 * positions it did not record.
 */
function locate(def: VarDefinition, sub: string): SourceLocation {
  let path = sub;
  while (path !== '') {
    const hit = def.nested.get(path) ?? (path.startsWith('.') ? def.nested.get(path.slice(1)) : undefined);
    if (hit) return hit;
    const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
    path = cut <= 0 ? '' : path.slice(0, cut);
  }
  return def.location;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Byte order, not locale order: the policy file must not depend on the machine's locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
