/**
 * Where reconcile's own files are (package.json, the shipped playbook), found from this module's
 * location: the nearest folder above it holding package.json and playbooks/. The same from the
 * sources (src/cli), the compiled files (dist/src/cli) and the bundle (dist/bundle).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
  return join(packageRoot(), 'playbooks', 'site.yaml');
}

let cachedVersion: string | undefined;

/** The tool's version from its package.json, read once ('unknown' when it cannot be read). */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      cachedVersion = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}
