// Bundles the compiled CLI (dist/src/cli/main.js) into dist/bundle/ with esbuild: a handful of
// files instead of ~150 modules to resolve and compile, which was ~140 ms of every run's
// start-up on the 2-core machine (BENCHMARKS.md). Commands stay lazy (code splitting: `reconcile
// --version` loads almost nothing). bin/reconcile.js runs the bundle when it is there.
//
// The two large CommonJS dependencies every run loads, ssh2 and yaml, are bundled apart
// (dist/bundle/vendor/NAME.cjs) together with V8's code cache for them (NAME.cjs.cache): every
// function compiled once, here, instead of in every run (ssh2 alone was ~90 ms of a run's CPU,
// ~60 ms of it compiling). V8 checks the cache against the source and its own version and flags,
// and compiles as usual when it does not fit (another Node, --no-opt …): slower, never different.
// Run by `npm run build` after tsc and precompile-schema.mjs.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { Script } from 'node:vm';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;
const VENDORED = ['ssh2', 'yaml'];
rmSync(outdir, { recursive: true, force: true });
mkdirSync(`${outdir}/vendor`, { recursive: true });

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

for (const name of VENDORED) {
  const file = `${outdir}/vendor/${name}.cjs`;
  await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root },
    outfile: file,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: ['cpu-features'],
    plugins: [nativeFromPackage],
    logLevel: 'warning',
  });
  // Compiled eagerly (--no-lazy for this one script), then the flags put back: the cache carries
  // the flags' hash, and a run has the default ones.
  v8.setFlagsFromString('--no-lazy');
  const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file });
  v8.setFlagsFromString('--lazy');
  writeFileSync(`${file}.cache`, script.createCachedData());
}

/** `import … from 'ssh2'` in the CLI's modules: the vendored copy, run from its code cache. */
const vendored = {
  name: 'vendored',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${VENDORED.join('|')})$`) }, (args) => ({ path: args.path, namespace: 'vendored' }));
    b.onResolve({ filter: /^reconcile:load-vendored$/ }, (args) => ({ path: args.path, namespace: 'vendored' }));
    b.onLoad({ filter: /^reconcile:load-vendored$/, namespace: 'vendored' }, () => ({ contents: LOADER, loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'vendored' }, (args) => {
      const names = Object.keys(createRequire(root)(args.path)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default');
      return {
        contents: [
          "import { loadVendored } from 'reconcile:load-vendored';",
          `const m = loadVendored(${JSON.stringify(args.path)});`,
          'export default m;',
          ...(names.length > 0 ? [`export const { ${names.join(', ')} } = m;`] : []),
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

const LOADER = `
import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { Script } from 'node:vm';
export function loadVendored(name) {
  const file = __dirname + '/vendor/' + name + '.cjs';
  let cachedData;
  try {
    cachedData = readFileSync(file + '.cache');
  } catch {
    // no cache: compiled as any module is
  }
  const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, __dirname + '/vendor');
  return module.exports;
}
`;

await build({
  entryPoints: [`${root}dist/src/cli/main.js`],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [vendored],
  // Native code is ssh2's alone (vendored above); kept outside should another dependency ask for some.
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
