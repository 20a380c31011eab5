/**
 * What `npm run build` makes of the CLI (scripts/bundle.mjs): one CommonJS file with a V8 code
 * cache that a run really uses (a refused cache is silently compiled again: every run would pay
 * ~100 ms more and nothing else would say so — as happened once V8 flags set at start voided the
 * caches, found only by a benchmark), and ssh2's native crypto found from the bundle (without it
 * ssh2 falls back to a cipher per packet and three writes per packet, which went unnoticed until a
 * syscall count: BENCHMARKS.md).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../..');
const BUNDLE = join(REPO, 'dist/bundle/main.cjs');

/** Loaded before the launcher: reports, as the process exits, whether V8 took each code cache it was given. */
const REPORT_CACHES = `data:text/javascript,${encodeURIComponent(`
import vm from 'node:vm';
import { syncBuiltinESMExports } from 'node:module';
const Original = vm.Script;
vm.Script = class extends Original {
  constructor(code, options) {
    super(code, options);
    if (options?.cachedData) process.on('exit', () => process.stderr.write('code cache for ' + options.filename + ': ' + (this.cachedDataRejected ? 'refused' : 'used') + '\\n'));
  }
};
syncBuiltinESMExports();
`)}`;

describe('the bundled CLI', () => {
  it('a run compiles it from its code cache, which V8 accepts (the CLI sets its V8 flags only after)', async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', REPORT_CACHES, join(REPO, 'bin/reconcile.js'), 'validate', '-i', 'test/fixtures/nested-inventory'],
      { cwd: REPO },
    );
    expect(stdout).toContain('valid — 7 hosts');
    expect(stderr).toBe(`code cache for ${BUNDLE}: used\n`);
  });

  it('a cache that does not fit is refused by V8, not run: the bundle then compiles as usual', () => {
    const edited = `${readFileSync(BUNDLE, 'utf8')}\n// edited after the build\n`;
    const script = new Script(Module.wrap(edited), { filename: BUNDLE, cachedData: readFileSync(`${BUNDLE}.cache`) });
    expect(script.cachedDataRejected).toBe(true);
  });

  it('is ASCII: one other character and V8 would hold its whole source as two-byte text (3.3 MB, not 1.6)', () => {
    expect(readFileSync(BUNDLE, 'utf8').match(/[^\x00-\x7f].{0,40}/gs)).toBeNull();
  });

  it('has no import(): run as a script (vm.Script), it would fail to load that module when asked', () => {
    expect(readFileSync(BUNDLE, 'utf8').match(/[^\w$.]import\(.{0,40}/g)).toBeNull();
  });

  it("ssh2's native crypto is asked for by a path Node resolves from the bundle", () => {
    const asked = [...readFileSync(BUNDLE, 'utf8').matchAll(/require\("([^"]+\.node)"\)/g)].map((m) => m[1]!);
    expect(asked).toEqual(['ssh2/lib/protocol/crypto/build/Release/sshcrypto.node']);
    // Built by ssh2's install script where a compiler is present (as on the lab machines).
    const built = join(REPO, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    expect(existsSync(built)).toBe(true);
    expect(createRequire(BUNDLE).resolve(asked[0]!)).toBe(built);
  });

  it("without a bundle, the launcher's fallback (the compiled modules) loads the transport under Node's ES module loader", async () => {
    // ssh2's files are CommonJS: a named import Node cannot find in one fails only here, never in the bundle.
    const connect = join(REPO, 'dist/src/transport/connect.js');
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(connect)}); console.log(typeof m.connectHost);`,
    ]);
    expect(stdout).toBe('function\n');
  });
});
