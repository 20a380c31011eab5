/**
 * Reads what dom0 has today: the policy file (bytes, mode, owner) and, for each proxy VM,
 * whether the prometheus-qubes-proxy Qubes service is on (`qvm-service VM` lists the
 * VM's services as `NAME  on|off` rows, qubesadmin/tools/qvm_service.py).
 */
import { TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import { PROXY_SERVICE, type DesiredQubesProxy, type ObservedPolicyFile, type ObservedProxyService, type ObservedQubesProxy } from './model.js';
import { managedProxies } from './policy.js';

export async function observeQubesProxy(session: HostSession, desired: DesiredQubesProxy): Promise<ObservedQubesProxy> {
  const policy = await observePolicyFile(session, desired.policyPath);
  const services: ObservedProxyService[] = [];
  for (const vm of desired.proxies) services.push(await observeProxyService(session, vm));
  // A proxy VM reconcile set up and the inventory dropped still runs its proxy: read its service too.
  const retired: ObservedProxyService[] = [];
  for (const vm of managedProxies(policy.content).filter((p) => !desired.proxies.includes(p))) retired.push(await observeProxyService(session, vm));
  return { policy, services, retired };
}

async function observePolicyFile(session: HostSession, path: string): Promise<ObservedPolicyFile> {
  const step = `read policy file ${path}`;
  const bytes = await session.readFile(path, step, true);
  if (bytes === undefined) return { path };
  const stat = await session.exec(['stat', '-c', '%a %U %G', '--', path], `${step} (mode and owner)`, { privileged: true });
  if (stat.exitCode !== 0) throw new TransportError(session.spec.host, `${step} (mode and owner)`, stat.stderr.trim() || `stat exited with ${stat.exitCode}`);
  const [mode, owner, group] = stat.stdout.toString('utf8').trim().split(/\s+/);
  return { path, content: bytes.toString('utf8'), mode, owner, group };
}

async function observeProxyService(session: HostSession, vm: string): Promise<ObservedProxyService> {
  const step = `read Qubes services of ${vm}`;
  const result = await session.exec(['qvm-service', vm], step, { privileged: true });
  if (result.exitCode !== 0) {
    // No such VM, or qvm-service missing: an error of this host's plan, not of the connection.
    const why = result.stderr.trim() || `qvm-service exited with ${result.exitCode}`;
    return { vm, error: `${step}: ${why}` };
  }
  return { vm, enabled: parseServiceState(result.stdout.toString('utf8'), PROXY_SERVICE) };
}

/** The state of `service` in `qvm-service VM` output; undefined when it is not listed. */
export function parseServiceState(listing: string, service: string): boolean | undefined {
  for (const line of listing.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name !== service || value === undefined) continue;
    return ['on', '1', 'yes', 'true'].includes(value.toLowerCase());
  }
  return undefined;
}
