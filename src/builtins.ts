/**
 * Node's built-ins that only some runs need, loaded on first use: a check over SSH then never
 * compiles http, https and tls (~13 ms of every run's CPU), which HTTPS hosts, the watch's event
 * streams and Prometheus reloads need; readline only for a terminal's question. Required, not
 * import()ed: the bundle runs as a script (bin/reconcile.js), which cannot import().
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const lazyBuiltins = {
  http: () => require('node:http') as typeof import('node:http'),
  https: () => require('node:https') as typeof import('node:https'),
  tls: () => require('node:tls') as typeof import('node:tls'),
  readline: () => require('node:readline/promises') as typeof import('node:readline/promises'),
};
