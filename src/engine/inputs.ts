/**
 * The engine's real seams: the inventory, playbook and host-pattern stages, the transport and
 * the module registry. The only file of src/engine that knows where each stage lives.
 */
import { loadInventory, readInventoryFile } from '../inventory/load.js';
import { selectHosts } from '../inventory/patterns.js';
import { validateInventory } from '../inventory/validate.js';
import { loadPlaybook } from '../playbook/load.js';
import { MODULES } from '../modules/registry.js';
import type { EngineDeps } from './run.js';

export function defaultEngineDeps(): EngineDeps {
  return {
    loadInventory,
    validateInventory: (inventory, now) => validateInventory(inventory, now, (rel) => readInventoryFile(inventory, rel), MODULES),
    loadPlaybook,
    selectHosts,
    // The transport (and ssh2 with it) loads only when a run connects: --help and usage errors stay fast.
    connectionSpec: async (host, _inventory, transport) => (await import('../transport/connect.js')).connectionSpecOf(host, transport),
    connect: async (spec, transport) => (await import('../transport/connect.js')).connectHost(spec, transport),
    readInventoryFile,
    modules: MODULES,
  };
}
