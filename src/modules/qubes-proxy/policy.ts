/**
 * The qrexec policy file (Qubes policy v5 format, /etc/qubes/policy.d) that lets each proxy
 * VM reach each target's exporter ports through ruddo.PrometheusProxy, and nothing else.
 * Pure and deterministic: an unchanged inventory renders byte-identical text.
 *
 * qrexec takes the first matching line over all files in name order, so the closing deny
 * keeps any other caller, port or VM out even when a later file (such as the package's
 * 90-prometheus-proxy.policy) would allow it.
 */
import { compareStrings } from './desired.js';
import { DISCOVER_RPC, PROXY_RPC, type DesiredQubesProxy } from './model.js';

export const POLICY_HEADER = [
  '# Managed by reconcile (qubes_prometheus_proxy): edits here are replaced on its next apply.',
  '# Lets prometheus-qubes-proxy reach the exporters listed in the inventory, and nothing else.',
  '# Format: SERVICE +ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE] (argument = exporter port).',
];

/** One `allow` line per proxy VM × target × port, in a stable order. */
export function proxyRules(desired: DesiredQubesProxy): string[] {
  const autostart = desired.autostart ? 'yes' : 'no';
  const rules: string[] = [];
  for (const proxy of desired.proxies) {
    for (const t of desired.targets) {
      for (const port of t.ports) rules.push(`${PROXY_RPC} +${port} ${proxy} ${t.target} allow autostart=${autostart}`);
    }
  }
  return rules;
}

export function renderPolicy(desired: DesiredQubesProxy): string {
  // desired.ts sorts proxies, targets and ports; sort again so the text never depends on it.
  const allow = [...new Set(proxyRules(desired))].sort(compareRules);
  const discover = desired.proxies.map((p) => `${DISCOVER_RPC} * ${p} @adminvm allow`).sort(compareStrings);
  return [...POLICY_HEADER, '', ...allow, '', ...discover, '', `${PROXY_RPC} * @anyvm @anyvm deny notify=no`, ''].join('\n');
}

/** By source, then target, then port as a number (so +9100 sorts before +10000). */
function compareRules(a: string, b: string): number {
  const [, argA = '', srcA = '', dstA = ''] = a.split(' ');
  const [, argB = '', srcB = '', dstB = ''] = b.split(' ');
  return compareStrings(srcA, srcB) || compareStrings(dstA, dstB) || Number(argA.slice(1)) - Number(argB.slice(1)) || compareStrings(a, b);
}

/**
 * The proxy VMs a policy file written by reconcile set up: each has its discover line (and had
 * its service enabled by reconcile). Nothing from a file reconcile did not write.
 */
export function managedProxies(text: string | undefined): string[] {
  if (text === undefined || !text.startsWith(POLICY_HEADER[0]!)) return [];
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [service, argument, source, target, action] = line.trim().split(/\s+/);
    if (service === DISCOVER_RPC && argument === '*' && target === '@adminvm' && action === 'allow' && source) out.push(source);
  }
  return [...new Set(out)].sort(compareStrings);
}

/** Number of rule lines (not comments, not blank) in a policy text; for plan summaries. */
export function countRules(text: string): number {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).length;
}
