/**
 * The engine's real seams: the inventory, playbook and host-pattern stages, the transport and
 * the module registry. The only file of src/engine that knows where each stage lives.
 */
import { loadInventory, readInventoryFile } from '../inventory/load.js';
import { selectHosts } from '../inventory/patterns.js';
import { loadInventoryValidator, validateInventory } from '../inventory/validate.js';
import { loadPlaybook } from '../playbook/load.js';
import { MODULES } from '../modules/registry.js';
import type { ReasonWords } from '../render/view.js';
import type { ConnectionSpec, HostSession, TransportOptions } from '../transport/types.js';
import { sessionPool, type PlanDeps, type SessionPool } from './plan-run.js';

export function defaultPlanDeps(): PlanDeps {
  return {
    loadInventory,
    // The precompiled schema validator first (a few ms; compiling it would cost 100-300 ms).
    validateInventory: async (...args: Parameters<typeof validateInventory>) => {
      await loadInventoryValidator();
      return validateInventory(...args);
    },
    loadPlaybook,
    selectHosts,
    // The transport (and ssh2 with it) loads only when a run connects: --help and usage errors stay fast.
    connectionSpec: async (host, _inventory, transport) => (await import('../transport/connect.js')).connectionSpecOf(host, transport),
    readInventoryFile,
    modules: MODULES,
  };
}

/** The run's connections: one per host, shared by the read phase and apply, closed by the CLI. */
export function defaultSessionPool(transport: TransportOptions): SessionPool {
  return sessionPool(async (spec: ConnectionSpec): Promise<HostSession> => (await import('../transport/connect.js')).connectHost(spec, transport));
}

/** Each module's words for its reason codes; an unknown code is shown as it is. */
export function reasonWords(modules: Record<string, { reasons: Record<string, (detail?: string) => string> }> = MODULES): ReasonWords {
  return (module, reason, detail) => {
    const words = modules[module]?.reasons[reason];
    return words ? words(detail) : detail ? `${reason}: ${detail}` : reason;
  };
}
