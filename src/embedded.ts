/**
 * What the single executable (`npm run package`, scripts/package.mjs) carries inside itself
 * instead of files beside the code: the version, the shipped playbook, and the CommonJS modules
 * loaded on demand (listr2 for a terminal's progress, ajv for saved plans, @peculiar/x509 for
 * generating certificates, ws for watch's event streams). Its entry
 * (scripts/sea-entry.mjs) fills this before the CLI starts; run from npm, nothing is set and
 * everything comes from package.json, playbooks/ and node_modules as usual.
 */
import { createRequire } from 'node:module';

interface Embedded {
  version: string;
  /** The text of playbooks/site.yaml. */
  playbook: string;
  modules: Record<string, unknown>;
}

const KEY = Symbol.for('reconcile.embedded');

export function embedded(): Embedded | undefined {
  return (globalThis as Record<symbol, Embedded | undefined>)[KEY];
}

export function setEmbedded(e: Embedded): void {
  (globalThis as Record<symbol, Embedded | undefined>)[KEY] = e;
}

/** A CommonJS module by name: the embedded one in the single executable, else from node_modules. */
export function loadModule<T>(name: string, from: string): T {
  const inside = embedded()?.modules[name];
  return (inside ?? createRequire(from)(name)) as T;
}
