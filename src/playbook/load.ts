/**
 * Playbooks: a YAML list of plays `{name, hosts: PATTERN, reconcile: [MODULE, …]}`.
 *
 * Exports:
 *   loadPlaybook(path: string): Promise<{ plays: Play[]; problems: Problem[] }>
 *     Reads and checks a playbook; every problem (file:line:column, value path, source line)
 *     is returned, none thrown. Plays are only meaningful when no problem is an error.
 *   parsePlaybook(file: string, text: string): { plays: Play[]; problems: Problem[] }
 *     The same, pure, on text already read.
 */
import { readFileSync } from 'node:fs';
import { parsePlaybook } from './parse.js';
import type { Problem } from '../errors.js';
import type { Play } from '../engine/plan-run.js';

export { parsePlaybook };

export async function loadPlaybook(path: string): Promise<{ plays: Play[]; problems: Problem[] }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8'); // synchronous, as the inventory (inventory/load.ts)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder, not a playbook file' : `cannot be read (${code ?? (e as Error).message})`;
    return { plays: [], problems: [{ severity: 'error', message: `playbook ${path} ${why}` }] };
  }
  return parsePlaybook(path, text);
}
