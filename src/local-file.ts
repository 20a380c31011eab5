/**
 * Reading a file named by the user on this machine (a certificate beside the inventory, an SSH
 * key), bounded: a folder, a FIFO (reading one waits forever), a device (/dev/zero never ends)
 * or anything larger than a certificate or a key could be is refused with a reason, at once.
 * The FIFO is opened non-blocking and everything is checked on the opened file, so a path
 * swapped between a check and the read cannot slip through.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/** Certificates, keys and CA bundles are a few KiB; a large CA bundle stays well under this. */
export const MAX_LOCAL_FILE_BYTES = 1024 * 1024;

export type LocalFile = { bytes: Buffer } | { absent: true } | { refused: string };

export function readLocalFile(path: string, maxBytes = MAX_LOCAL_FILE_BYTES): LocalFile {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { absent: true };
    return { refused: `cannot be read (${code ?? (e as Error).message})` };
  }
  try {
    const st = fstatSync(fd);
    const kind = notAFile(st);
    if (kind) return { refused: `is ${kind}, not a file` };
    const chunks: Buffer[] = [];
    let total = 0;
    // Read up to one byte past the limit: the size stat gives is not trusted (/proc files say 0),
    // but it sizes the first read (a certificate is then read in one, not into a zeroed 64 KiB).
    for (let want = st.size > 0 ? st.size + 1 : 64 * 1024; ; want = 64 * 1024) {
      const chunk = Buffer.allocUnsafe(Math.min(want, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes)
        return { refused: `is larger than ${maxBytes >= 1024 ? `${Math.round(maxBytes / 1024)} KiB` : `${maxBytes} bytes`}: not a certificate or key file` };
    }
    return { bytes: Buffer.concat(chunks, total) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { refused: `cannot be read (${code ?? (e as Error).message})` };
  } finally {
    closeSync(fd);
  }
}

function notAFile(st: Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}
