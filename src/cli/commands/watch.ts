/**
 * `reconcile watch -i INVENTORY [--listen 127.0.0.1:9814] [--resync 15m] [--apply]`: the
 * long-running form of `--check` (src/watch/watcher.ts), serving /metrics, /healthz and /plan.
 * SIGTERM and SIGINT stop it cleanly (exit 0); SIGHUP re-reads the inventory.
 */
import { resolve } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import { inventoriesOf, readAnsibleSettings } from '../ansible-config.js';
import type { CliIO } from '../io.js';
import { packageVersion, shippedPlaybook } from '../package-info.js';
import { acquireRunLock, parseLockTimeout } from '../run-lock.js';
import { planRequest, type RunPlaybookOptions } from './run-playbook.js';
import { UsageError } from '../../errors.js';
import { defaultSessionPool } from '../../engine/inputs.js';
import { logLineWriter } from '../../render/log-lines.js';

export const HELP = `Usage: reconcile watch [PLAYBOOK] -i INVENTORY [--listen ADDRESS:PORT] [--resync DURATION] [--apply]

Keeps the plan of every host current, as one long-running process: one connection per host,
each Incus/LXD server's lifecycle event stream (a certificate created, updated or deleted, the
server's configuration changed) re-plans that host — a cluster once — as soon as the event
arrives, and a full re-plan every --resync catches what events miss. A host that goes away is
reported unreachable and reconnected with backoff. The inventory is read again when its files
change or on SIGHUP; an edit that does not load or validate keeps the last good inventory (said
in the log and in reconcile_watch_inventory_ok).

  -i, --inventory FILE     Ansible YAML inventory (several times for several)
  --listen ADDRESS:PORT    serve /metrics (Prometheus text format: the metrics of --metrics-file
                           plus watch's own), /healthz and /plan (the current plans as the JSON
                           report) here (default 127.0.0.1:9814)
  --resync DURATION        full re-plan interval: 90s, 15m, 1h (default 15m)
  --apply                  heal drift as it appears (off by default): every safety rule of a run,
                           under the run lock, each host at most once per --apply-interval
  --apply-interval DURATION  (default 60s)
  --limit PATTERN          only hosts matching an Ansible host pattern
  --prune                  remove trusted certificates the inventory does not name
  --forks N, --warn-days N, --strict, -u USER, --private-key FILE, --accept-new-host-keys,
  --lock-timeout SECONDS   as for a run
  -h, --help               this help

Log lines go to stderr, one per event, each starting with an ISO 8601 timestamp.
docs/operations.md has a systemd unit, the Prometheus scrape job and alert rules for it.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i', multiple: true },
  user: { type: 'string', short: 'u' },
  'private-key': { type: 'string' },
  listen: { type: 'string' },
  resync: { type: 'string' },
  apply: { type: 'boolean' },
  'apply-interval': { type: 'string' },
  limit: { type: 'string', short: 'l' },
  prune: { type: 'boolean' },
  forks: { type: 'string', short: 'f' },
  'warn-days': { type: 'string' },
  strict: { type: 'boolean' },
  'accept-new-host-keys': { type: 'boolean' },
  'lock-timeout': { type: 'string' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** 90s, 15m, 1h, 500ms (a bare number: seconds). */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m ? Number(m[1]) * unit[(m[2] ?? 's') as keyof typeof unit] : NaN;
  if (!Number.isFinite(ms) || ms < 100)
    throw new UsageError(`watch: ${flag} must be a duration such as 90s, 15m or 1h (at least 100ms), not ${JSON.stringify(text)}`);
  return ms;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`watch: --listen must be ADDRESS:PORT (127.0.0.1:9814, [::1]:9814), not ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2]!, port };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('watch', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`watch: one PLAYBOOK at most, got ${positionals.length}`);
  const settings = readAnsibleSettings(io.env, io.cwd);
  for (const w of settings.warnings) io.stderr(`reconcile: warning: ${w}\n`);
  const inventories = inventoriesOf(values.inventory, settings, io);
  const options: RunPlaybookOptions = {
    inventory: inventories[0]!,
    inventories,
    playbook: positionals[0] !== undefined ? resolve(io.cwd, positionals[0]) : shippedPlaybook(),
    check: true,
    diff: false,
    yes: true,
    strict: values.strict ?? false,
    limit: values.limit,
    forks: positiveInt('watch', '--forks', values.forks, settings.forks?.value ?? 10),
    warnDays: positiveInt('watch', '--warn-days', values['warn-days'], 30),
    prune: values.prune ?? false,
    json: false,
    lockTimeoutSeconds: parseLockTimeout(values['lock-timeout']),
    quiet: false,
    acceptNewHostKeys: values['accept-new-host-keys'] ?? false,
    verbose: values.verbose?.length ?? 0,
    listHosts: false,
    ansible: {
      settings,
      ...(values.user !== undefined ? { user: values.user } : {}),
      ...(values['private-key'] !== undefined ? { privateKey: resolve(io.cwd, values['private-key']) } : {}),
    },
  };
  const listen = parseListen(values.listen ?? '127.0.0.1:9814');
  const resyncMs = parseDuration('--resync', values.resync ?? '15m');
  const applyIntervalMs = parseDuration('--apply-interval', values['apply-interval'] ?? '60s');
  const request = { ...planRequest(options, io), toolVersion: packageVersion() };
  const log = logLineWriter({ write: io.stderr, clock: () => new Date() });
  const pool = defaultSessionPool(request.transport);

  const { startWatch } = await import('../../watch/watcher.js');
  const watcher = await startWatch({
    request,
    listen,
    resyncMs,
    apply: values.apply ?? false,
    applyIntervalMs,
    log,
    pool,
    lock: async () => {
      const lock = await acquireRunLock({
        inventoryPath: options.inventory,
        env: io.env,
        timeoutMs: options.lockTimeoutSeconds * 1000,
        onWait: (h) => log(`waiting for the run lock held by PID ${h.pid} (started ${h.startedAt}) before applying`),
      });
      return async () => lock.release();
    },
  }).catch(async (e) => {
    await pool.closeAll();
    throw e;
  });

  // Runs until SIGTERM or SIGINT; SIGHUP re-reads the inventory.
  const signal = await new Promise<NodeJS.Signals>((done) => {
    const onHup = () => {
      log('SIGHUP: re-reading the inventory');
      watcher.reload();
    };
    process.on('SIGHUP', onHup);
    const stop = (s: NodeJS.Signals) => {
      process.off('SIGHUP', onHup);
      done(s);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  log(`${signal}: stopping`);
  await watcher.stop();
  log('stopped');
  return 0;
}
