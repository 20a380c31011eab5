// `npm run package`: reconcile as one self-contained executable for Linux x64 (Node's
// single-executable applications): the CLI and its dependencies bundled into one CommonJS file
// (esbuild), turned into a blob with the version and the shipped playbook as assets, and
// injected into a copy of this Node binary (postject). Runs where there is no Node.js and no
// node_modules. Needs `npm run build` first (it bundles dist/src). Output: dist/sea/reconcile.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/sea`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [`${root}scripts/sea-entry.mjs`],
  outfile: `${out}/reconcile.cjs`,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // ssh2's optional native crypto and cpu-features: ssh2 runs without them.
  external: ['*.node', 'cpu-features'],
  // import.meta.url of the ESM sources: the executable itself (nothing is resolved from it in the executable).
  define: { 'import.meta.url': '__reconcileUrl' },
  banner: { js: "const __reconcileUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});

const version = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).version;
writeFileSync(`${out}/version`, version);
writeFileSync(
  `${out}/sea-config.json`,
  JSON.stringify({
    main: `${out}/reconcile.cjs`,
    output: `${out}/reconcile.blob`,
    disableExperimentalSEAWarning: true,
    assets: { version: `${out}/version`, 'playbooks/site.yaml': `${root}playbooks/site.yaml` },
  }),
);
execFileSync(process.execPath, ['--experimental-sea-config', `${out}/sea-config.json`], { stdio: 'inherit' });
copyFileSync(process.execPath, `${out}/reconcile`);
execFileSync(
  process.execPath,
  [
    `${root}node_modules/postject/dist/cli.js`,
    `${out}/reconcile`,
    'NODE_SEA_BLOB',
    `${out}/reconcile.blob`,
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { stdio: 'inherit' },
);
for (const f of ['reconcile.cjs', 'reconcile.blob', 'sea-config.json', 'version']) rmSync(`${out}/${f}`);
console.log(`wrote ${out}/reconcile (reconcile ${version}, Linux x64, no Node.js needed)`);
