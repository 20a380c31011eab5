/**
 * The asynchronous file operations reconcile uses (writes; the reads of `apply PLAN`, `cert` and
 * `import`), on node:fs's callback API. A run does not load node:fs/promises: with the folder,
 * watcher and readline modules it brings, loading it costs ~6 ms of every start (Node 20) — more
 * than reading a 30-host inventory does. What a run reads before it connects (the inventory, the
 * playbook, known_hosts) is read synchronously: nothing else could run meanwhile.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export const readFile = promisify(fs.readFile);
export const stat = promisify(fs.stat);
export const mkdir = promisify(fs.mkdir);
export const appendFile = promisify(fs.appendFile);
export const writeFile = promisify(fs.writeFile);
export const open = promisify(fs.open);
export const close = promisify(fs.close);
export const chmod = promisify(fs.chmod);
export const fchmod = promisify(fs.fchmod);
export const copyFile = promisify(fs.copyFile);
export const fsync = promisify(fs.fsync);
export const rename = promisify(fs.rename);
export const unlink = promisify(fs.unlink);
