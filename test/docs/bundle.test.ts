/**
 * What `npm run build` makes of ssh2 and yaml (scripts/bundle.mjs): each bundled apart with a V8
 * code cache that this Node accepts (a rejected cache is silently compiled again: every run would
 * pay ~60 ms more and nothing else would say so), and ssh2's native crypto found from the bundle
 * (without it ssh2 falls back to a cipher per packet and three writes per packet, which went
 * unnoticed until a syscall count: BENCHMARKS.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

const VENDOR = join(import.meta.dirname, '../../dist/bundle/vendor');

describe('the vendored bundles', () => {
  it.each(['ssh2', 'yaml'])('%s: its code cache fits this Node', (name) => {
    const file = join(VENDOR, `${name}.cjs`);
    const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData: readFileSync(`${file}.cache`) });
    expect(script.cachedDataRejected).toBe(false);
  });

  it('a cache that does not fit is refused by V8, not run: the bundle then compiles as usual', () => {
    const file = join(VENDOR, 'yaml.cjs');
    const other = readFileSync(join(VENDOR, 'ssh2.cjs.cache'));
    const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData: other });
    expect(script.cachedDataRejected).toBe(true);
  });

  it("ssh2's native crypto is asked for by a path Node resolves from the bundle", () => {
    const file = join(VENDOR, 'ssh2.cjs');
    const asked = [...readFileSync(file, 'utf8').matchAll(/require\("([^"]+\.node)"\)/g)].map((m) => m[1]!);
    expect(asked).toEqual(['ssh2/lib/protocol/crypto/build/Release/sshcrypto.node']);
    // Built by ssh2's install script where a compiler is present (as on the lab machines).
    const built = join(import.meta.dirname, '../../node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    expect(existsSync(built)).toBe(true);
    expect(createRequire(file).resolve(asked[0]!)).toBe(built);
  });
});
