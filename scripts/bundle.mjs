// Bundles the compiled CLI (dist/src/cli/main.js) into dist/bundle/ with esbuild: a handful of
// files instead of ~150 modules to resolve and compile, which was ~140 ms of every run's
// start-up on the 2-core machine (BENCHMARKS.md). Commands stay lazy (code splitting: `reconcile
// --version` loads almost nothing). bin/reconcile.js runs the bundle when it is there.
// Run by `npm run build` after tsc and precompile-schema.mjs.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [`${root}dist/src/cli/main.js`],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // ssh2's optional native crypto (built only when its install script ran) and cpu-features.
  external: ['*.node', 'cpu-features'],
  // CommonJS dependencies require() Node's own modules and read __dirname: give the ESM chunks both.
  banner: {
    js: [
      "import { createRequire as __reconcileRequire } from 'node:module';",
      "import { fileURLToPath as __reconcileFileURLToPath } from 'node:url';",
      'const require = __reconcileRequire(import.meta.url);',
      'const __filename = __reconcileFileURLToPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join(' '),
  },
  logLevel: 'warning',
});
