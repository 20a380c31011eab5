/**
 * The sub-commands, each loaded only when used (so that `reconcile --version` loads almost
 * nothing): main.ts dispatches through this table, the completion script lists it.
 */
import type { CliIO } from './io.js';

/** A sub-command: parses its own argv, returns the exit code. Throws typed errors only. */
export type Command = (argv: string[], io: CliIO) => Promise<number>;

export const COMMANDS: Record<string, () => Promise<{ run: Command; HELP: string }>> = {
  apply: () => import('./commands/apply.js'),
  show: () => import('./commands/show.js'),
  validate: () => import('./commands/validate.js'),
  inventory: () => import('./commands/inventory.js'),
  audit: () => import('./commands/audit.js'),
  import: () => import('./commands/import.js'),
  cert: () => import('./commands/cert.js'),
  config: () => import('./commands/config.js'),
  'scrape-config': () => import('./commands/scrape-config.js'),
  watch: () => import('./commands/watch.js'),
  completion: () => import('./commands/completion.js'),
};

/** The default command (`reconcile [PLAYBOOK] -i INVENTORY …`). */
export const RUN_PLAYBOOK = () => import('./commands/run-playbook.js');
