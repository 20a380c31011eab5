/**
 * `reconcile apply PLAN`: applies exactly a saved plan. Before each action the module re-reads
 * what the action changes and refuses it when it moved since the plan (the rest of that host's
 * actions are not applied; other hosts go on). The plan is refused whole when its inventory
 * changed on disk (--ignore-inventory-change overrides) or it is older than --max-age.
 */
import { resolve } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { UsageError } from '../../errors.js';
import { checkPlanAge, parseDuration } from '../../plan/saved-plan.js';
import { parseLockTimeout } from '../run-lock.js';
import { runSession, SESSION_FLAGS } from '../run-session.js';
import { readPlanFile, verifyPlanInventory } from '../plan-file.js';
import { packageVersion } from './run-playbook.js';

export const HELP = `Usage: reconcile apply PLAN [options]

Applies exactly the plan saved by 'reconcile --check -i INVENTORY --out PLAN': no inventory is
read for it and nothing is planned again. Before each action, what it changes is read again on
the host; an action whose entry or file moved since the plan is refused (that host stops there,
the others go on, exit 1). Nothing is asked: the plan was the review.

  --max-age DURATION          refuse a plan older than this (default 24h; e.g. 90m, 7d)
  --ignore-inventory-change   apply even though the inventory's files changed since the plan
  --forks N                   hosts applied in parallel (default 10)
  --json                      print one JSON report (schema/report.schema.json)
  --metrics-file FILE         write Prometheus metrics for node_exporter's textfile collector
  --lock-timeout SECONDS      wait this long for another run on the same inventory (default 30)
  -q, --quiet                 print only changes and errors, one line each
  --accept-new-host-keys      record host keys never seen before in known_hosts
  -v, --verbose               log every action as it starts
  -h, --help                  this help

Exit codes: 0 every action applied; 1 anything failed or was refused (or the plan was refused).
`;

const OPTIONS = {
  'max-age': { type: 'string' },
  'ignore-inventory-change': { type: 'boolean' },
  ...SESSION_FLAGS,
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('apply', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`apply: one saved plan is required, got ${positionals.length} (see 'reconcile apply --help')`);
  const file = resolve(io.cwd, positionals[0]!);
  const maxAgeMs = parseDuration(values['max-age'] ?? '24h', 'apply: --max-age');
  const plan = await readPlanFile(file);
  checkPlanAge(plan, file, new Date(), maxAgeMs);
  if (!values['ignore-inventory-change']) await verifyPlanInventory(plan, file);
  else io.stderr(`reconcile: warning: --ignore-inventory-change: applying ${file} without checking that its inventory is unchanged\n`);
  return runSession(
    {
      inventory: plan.inventory.path,
      mode: 'apply',
      showPlan: false,
      confirm: false,
      diff: false,
      json: values.json ?? false,
      quiet: values.quiet ?? false,
      verbose: values.verbose?.length ?? 0,
      forks: positiveInt('apply', '--forks', values.forks, 10),
      metricsFile: values['metrics-file'] !== undefined ? resolve(io.cwd, values['metrics-file']) : undefined,
      lockTimeoutSeconds: parseLockTimeout(values['lock-timeout']),
      transport: transportOptions(io, values['accept-new-host-keys'] ?? false),
      toolVersion: packageVersion(),
    },
    io,
    async (view) => {
      view.hostsSelected?.(plan.hosts.map((h) => h.host));
      for (const h of plan.hosts) view.hostPlanned?.(h);
      return plan;
    },
  );
}
