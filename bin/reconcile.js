#!/usr/bin/env node
// Thin launcher: the CLI bundled by `npm run build` (dist/bundle), else the compiled modules.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/main.js', import.meta.url);
const entry = existsSync(bundle) ? bundle.href : new URL('../dist/src/cli/main.js', import.meta.url).href;
import(entry).then((m) => m.main(process.argv.slice(2)));
