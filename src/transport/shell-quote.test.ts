import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { shellCommand, shellQuote, splitShellWords } from './shell-quote.js';

describe('shellQuote', () => {
  it('leaves plain words bare and quotes everything else', () => {
    expect(shellQuote('/var/lib/incus/unix.socket')).toBe('/var/lib/incus/unix.socket');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("it's $(rm -rf /)")).toBe(`'it'\\''s $(rm -rf /)'`);
  });

  it('a real sh sees exactly the words it was given', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary', minLength: 0, maxLength: 12 }).map((s) => s.replace(/\0/g, '')),
          { minLength: 1, maxLength: 4 },
        ),
        (words) => {
          const out = execFileSync('sh', ['-c', `printf '%s\\0' ${shellCommand(words)}`]);
          expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(words);
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe('splitShellWords', () => {
  it('splits like a shell: quotes, escapes, repeated blanks', () => {
    expect(splitShellWords(`-o 'ProxyJump=a b'  -J "root@j1,j2" x\\ y`)).toEqual(['-o', 'ProxyJump=a b', '-J', 'root@j1,j2', 'x y']);
    expect(splitShellWords('')).toEqual([]);
  });
  it('refuses an unterminated quote', () => {
    expect(() => splitShellWords(`-o 'ProxyJump=x`)).toThrow(/unterminated '/);
  });
});
