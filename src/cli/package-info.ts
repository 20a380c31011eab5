/**
 * Where reconcile's own files are (package.json, the shipped playbook), found from this module's
 * location: the nearest folder above it holding package.json and playbooks/. The same from the
 * sources (src/cli), the compiled files (dist/src/cli) and the bundle (dist/bundle).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { embedded } from '../embedded.js';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'playbooks'))) return dir;
    const up = dirname(dir);
    if (up === dir) return here;
    dir = up;
  }
}

export function shippedPlaybook(): string {
  const inside = embedded();
  // The single executable has no files beside it: its playbook is written out once per user.
  if (inside) return embeddedPlaybookFile(inside.playbook);
  return join(packageRoot(), 'playbooks', 'site.yaml');
}

/** The embedded playbook as a file the playbook loader (and its messages) can name: in the user's own cache, not a shared /tmp. */
function embeddedPlaybookFile(text: string): string {
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'reconcile');
  const file = join(dir, `site-${createHash('sha256').update(text).digest('hex').slice(0, 12)}.yaml`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.${process.pid}`, text, { mode: 0o644 });
    renameSync(`${file}.${process.pid}`, file);
  }
  return file;
}

let cachedVersion: string | undefined;

/** The tool's version from its package.json, read once ('unknown' when it cannot be read). */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    const inside = embedded();
    if (inside) return (cachedVersion = inside.version);
    try {
      cachedVersion = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}
