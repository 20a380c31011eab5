/**
 * Every kind of thing reconcile knows how to reconcile. Adding a kind = a folder under
 * src/modules/ implementing ReconcileModule, plus one line here.
 */
import type { ModuleName, ReconcileModule } from './types.js';

const modules = new Map<ModuleName, ReconcileModule>();

/** Called once per module file at import time (see the imports in modules/index.ts). */
export function registerModule(m: ReconcileModule<any, any>): void {
  modules.set(m.name, m as ReconcileModule);
}

export function moduleByName(name: ModuleName): ReconcileModule | undefined {
  return modules.get(name);
}

export function allModules(): ReconcileModule[] {
  return [...modules.values()];
}
