import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './write-atomic.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reconcile-atomic-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole, leaves no temporary file, and keeps the asked mode despite the umask', async () => {
    const file = join(dir, 'reconcile.prom');
    await writeFile(file, 'old\n');
    await writeFileAtomic(file, 'new\n');
    expect(await readFile(file, 'utf8')).toBe('new\n');
    expect(await readdir(dir)).toEqual(['reconcile.prom']);
    expect((await stat(file)).mode & 0o777).toBe(0o644);

    const key = join(dir, 'client.key');
    await writeFileAtomic(key, 'secret', { mode: 0o600 });
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    await rm(key);
  });

  it('a reader polling during many writes only ever sees a whole version', async () => {
    const file = join(dir, 'busy.prom');
    const versions = Array.from({ length: 40 }, (_, i) => `v${i} ${'x'.repeat(200_000)}\n`);
    await writeFileAtomic(file, versions[0]!);
    let writing = true;
    const seen = new Set<string>();
    const reader = (async () => {
      while (writing) seen.add(await readFile(file, 'utf8'));
    })();
    for (const v of versions) await writeFileAtomic(file, v);
    writing = false;
    await reader;
    for (const s of seen) expect(versions).toContain(s);
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('fails with the OS error when the folder does not exist, leaving nothing behind', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'x.prom'), 'a')).rejects.toThrow(/ENOENT/);
  });
});
