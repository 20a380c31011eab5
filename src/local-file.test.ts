import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readLocalFile } from './local-file.js';

const dir = mkdtempSync(join(tmpdir(), 'reconcile-local-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readLocalFile', () => {
  it('reads a file, says absent for none, and refuses at once what cannot be a certificate or key', () => {
    writeFileSync(join(dir, 'small.crt'), 'PEM');
    writeFileSync(join(dir, 'big.crt'), Buffer.alloc(2 * 1024 * 1024, 0x41));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    expect(readLocalFile(join(dir, 'small.crt'))).toEqual({ bytes: Buffer.from('PEM') });
    expect(readLocalFile(join(dir, 'none.crt'))).toEqual({ absent: true });
    expect(readLocalFile(join(dir, 'none', 'x.crt'))).toEqual({ absent: true });
    expect(readLocalFile(join(dir, 'big.crt'))).toEqual({ refused: 'is larger than 1024 KiB: not a certificate or key file' });
    expect(readLocalFile('/dev/zero')).toEqual({ refused: 'is a device, not a file' });
    expect(readLocalFile(join(dir, 'pipe'))).toEqual({ refused: 'is a FIFO (named pipe), not a file' });
    expect(readLocalFile(dir)).toEqual({ refused: 'is a folder, not a file' });
  });

  it('does not trust the size the file system reports (/proc files say 0)', () => {
    const status = readLocalFile('/proc/self/status');
    expect('bytes' in status && status.bytes.toString('utf8')).toMatch(/^Name:/);
    expect(readLocalFile('/proc/self/status', 10)).toEqual({ refused: 'is larger than 10 bytes: not a certificate or key file' });
  });
});
