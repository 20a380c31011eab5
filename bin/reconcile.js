#!/usr/bin/env node
// Thin launcher: the CLI bundled by `npm run build` (dist/bundle/main.cjs), compiled from the V8
// code cache the build wrote beside it (scripts/bundle.mjs); else the compiled modules.
// CommonJS (bin/package.json says so): started as an ES module, Node would first load its ES
// module loader: 10–20 ms of every run.
const { existsSync, readFileSync } = require('node:fs');
const Module = require('node:module');
const { join } = require('node:path');
const { Script } = require('node:vm');

const bundle = join(__dirname, '../dist/bundle/main.cjs');
const cli = existsSync(bundle) ? Promise.resolve(runBundle(bundle)) : import('../dist/src/cli/main.js');
cli.then((m) => m.main(process.argv.slice(2)));

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
  script.runInThisContext()(module.exports, Module.createRequire(file), module, file, file.slice(0, file.lastIndexOf('/')));
  return module.exports;
}
