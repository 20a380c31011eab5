/**
 * Local atomic file write: a reader (node_exporter's textfile collector, Prometheus, a user)
 * sees either the old file or the new one, never a half-written one, even if we crash.
 *
 * Temporary file in the SAME folder (rename is atomic only within one file system), named with
 * a leading dot so collectors that read `*.prom` skip it, written and fsynced, then renamed over
 * the target; the folder is fsynced so the rename survives a power cut.
 */
import { randomBytes } from 'node:crypto';
import { close, fchmod, fsync, open, rename, unlink, writeFile } from '../async-fs.js';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o644; 0o600 for keys). */
  mode?: number;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const mode = options.mode ?? 0o644;
  let renamed = false;
  try {
    const fd = await open(temp, 'wx', mode);
    try {
      await writeFile(fd, data);
      // open() applies the umask; the caller's mode is what they asked for (0600 must stay 0600).
      await fchmod(fd, mode);
      await fsync(fd);
    } finally {
      await close(fd);
    }
    await rename(temp, path);
    renamed = true;
    await syncFolder(dir);
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}

async function syncFolder(dir: string): Promise<void> {
  try {
    const fd = await open(dir, 'r');
    try {
      await fsync(fd);
    } finally {
      await close(fd);
    }
  } catch {
    // Some file systems refuse fsync on a folder; the rename itself has happened.
  }
}
