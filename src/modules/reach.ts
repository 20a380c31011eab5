/**
 * What a module needs of the way a host is reached. A host with `incus_api_url` or
 * `incus_remote` is reached through the daemon's REST API only: modules that read or write files
 * or run commands on the host (the Qubes policy, Prometheus's files) cannot work there. Said
 * before anything connects (validate, and the plan), naming the variable and where it is set. Pure.
 */
import type { InventoryHost } from '../inventory/model.js';
import type { ReconcileModule } from './types.js';

export const HTTPS_ONLY_VARIABLES = ['incus_api_url', 'incus_remote'] as const;

/** Why `module` cannot run on `host`, or undefined when it can (or the host gives it nothing). */
export function shellMismatch(host: InventoryHost, module: Pick<ReconcileModule, 'name' | 'needsShell' | 'variables'>): string | undefined {
  if (!module.needsShell || !module.variables.some((v) => host.vars[v] !== undefined)) return undefined;
  const via = HTTPS_ONLY_VARIABLES.find((v) => host.vars[v] !== undefined);
  if (via === undefined) return undefined;
  const at = host.vars[via]!.location;
  return (
    `${module.name} needs a shell on ${host.name} (files, commands), but ${host.name} is reached over HTTPS only ` +
    `(${via} at ${at.file}:${at.line}); to reach it over SSH instead, drop ${via} there (an HTTPS host is never reached over SSH, even with ansible_host), or leave it out of that play`
  );
}
