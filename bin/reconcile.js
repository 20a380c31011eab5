#!/usr/bin/env node
// Thin launcher: the CLI bundled by `npm run build` (dist/bundle/main.cjs), compiled from the V8
// code cache the build wrote beside it (scripts/bundle.mjs); else the compiled modules.
import { existsSync, readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const bundle = fileURLToPath(new URL('../dist/bundle/main.cjs', import.meta.url));
const cli = existsSync(bundle) ? runBundle(bundle) : await import('../dist/src/cli/main.js');
cli.main(process.argv.slice(2));

/** The bundle run as Node runs a CommonJS file, but compiled from its cache (V8 ignores one that does not fit). */
function runBundle(file) {
  let cachedData;
  try {
    cachedData = readFileSync(`${file}.cache`);
  } catch {
    // no cache: compiled as any module is
  }
  const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, file.slice(0, file.lastIndexOf('/')));
  return module.exports;
}
