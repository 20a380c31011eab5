/**
 * The engine's real seams: the inventory, playbook and host-pattern stages, the transport and
 * the module registry. The only file of src/engine that knows where each stage lives.
 */
import { MODULES } from '../modules/registry.js';
import type { EngineDeps } from './run.js';
import {
  connectionSpecStandIn,
  connectStandIn,
  loadInventoryStandIn,
  loadPlaybookStandIn,
  readInventoryFileStandIn,
  selectHostsStandIn,
} from './standin-inputs.js';

export function defaultEngineDeps(): EngineDeps {
  return {
    loadInventory: loadInventoryStandIn,
    validateInventory: () => [],
    loadPlaybook: loadPlaybookStandIn,
    selectHosts: selectHostsStandIn,
    connectionSpec: (host) => connectionSpecStandIn(host),
    connect: connectStandIn,
    readInventoryFile: readInventoryFileStandIn,
    modules: MODULES,
  };
}
