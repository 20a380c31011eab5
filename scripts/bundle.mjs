// Bundles the compiled CLI (dist/src/cli/main.js) into one CommonJS file, dist/bundle/main.cjs
// (esbuild), with V8's code cache for it beside it (main.cjs.cache): bin/reconcile.js compiles the
// bundle from that cache, so a run neither resolves ~150 modules (~140 ms on the 2-core machine)
// nor compiles the code it runs (~60 ms of ssh2 and yaml alone, ~50 ms of ours: Node 20 cannot
// cache ES modules, hence CommonJS). BENCHMARKS.md has the measurements.
//
// The cache holds the functions a check and an apply run (the build runs both against stand-in
// hosts: cache-training.mjs), made under V8's default flags; V8 checks it against the source, its
// own version and its flags, and compiles as usual when it does not fit (another Node, --no-opt …):
// slower, never different. A function the training did not run is compiled when first called. The CLI's own
// V8 settings (src/cli/main.ts) are set after the bundle is compiled, so they do not void it.
// What a run does not load stays out: the large dependencies of one command (@peculiar/x509 for
// generating certificates, ws for watch) and those loaded on demand (ajv, listr2) come from
// node_modules when asked for; within the bundle, commands are still initialized only when run.
// Run as a script, the bundle cannot import(): what it loads on demand, it require()s.
// Run by `npm run build` after tsc and precompile-schema.mjs.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { trainCheck } from './cache-training.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;
const outfile = `${outdir}/main.cjs`;
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

/**
 * ssh2's native crypto (built when its install script ran; AES-GCM in one piece, where its
 * JavaScript fallback makes a cipher per packet and writes each packet in three) is required by a
 * path relative to ssh2's own files: the bundle asks for it by package path instead, which Node
 * resolves from wherever ssh2 is installed. Without the binding ssh2 falls back as before.
 */
const nativeFromPackage = {
  name: 'native-from-package',
  setup(b) {
    b.onResolve({ filter: /\.node$/ }, (args) => {
      const file = resolve(args.resolveDir, args.path);
      const at = file.lastIndexOf('/node_modules/');
      return { path: at >= 0 ? file.slice(at + '/node_modules/'.length) : args.path, external: true };
    });
  },
};

await build({
  entryPoints: [`${root}dist/src/cli/main.js`],
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  plugins: [nativeFromPackage],
  external: ['cpu-features', '@peculiar/x509', 'ws'],
  // import.meta.url of the ES module sources: the bundle's own URL (package.json and node_modules
  // are found from it, as from the compiled modules).
  define: { 'import.meta.url': '__reconcileUrl' },
  banner: { js: "const __reconcileUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});

// esbuild writes the code in ASCII (escapes) but keeps some comments as they are: one character
// beyond ASCII and V8 holds the whole 1.6 MB source as two-byte text, twice the memory of every
// run. Escaped as esbuild escapes the code, which leaves only comments to change.
const ascii = readFileSync(outfile, 'utf8').replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
writeFileSync(outfile, ascii);

// The bundle run once, here, as a `--check` against stand-in hosts (cache-training.mjs), then
// V8's cache of what that compiled. Made under V8's default flags: the cache carries their hash.
const script = new Script(Module.wrap(ascii), { filename: outfile });
const bundle = { exports: {} };
script.runInThisContext()(bundle.exports, Module.createRequire(outfile), bundle, outfile, outdir);
await trainCheck(bundle.exports.dispatch);
writeFileSync(`${outfile}.cache`, script.createCachedData());
