// The single executable's entry (scripts/package.mjs bundles it into one CommonJS file): it
// carries what npm would otherwise find on disk — the version, the shipped playbook, and the
// CommonJS modules loaded on demand — then starts the CLI as bin/reconcile.js does.
import { getAsset } from 'node:sea';
import * as listr2 from 'listr2';
import * as ajv2020 from 'ajv/dist/2020.js';
import * as x509 from '@peculiar/x509';
import WebSocket from 'ws';
import { setEmbedded } from '../dist/src/embedded.js';
import { main } from '../dist/src/cli/main.js';

setEmbedded({
  version: getAsset('version', 'utf8'),
  playbook: getAsset('playbooks/site.yaml', 'utf8'),
  modules: { listr2, 'ajv/dist/2020.js': ajv2020, '@peculiar/x509': x509, ws: WebSocket },
});
main(process.argv.slice(2));
