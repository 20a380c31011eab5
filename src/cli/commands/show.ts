/**
 * `reconcile show PLAN [--format text|markdown|json]`: prints a saved plan — as text, the same
 * bytes as the `--check` that made it; as Markdown, for a pull-request comment; as JSON, the plan.
 */
import { resolve } from 'node:path';
import { parseCommandArgs } from '../args.js';
import type { CliIO } from '../io.js';
import { UsageError } from '../../errors.js';
import { reasonWords } from '../../engine/inputs.js';
import { buildReport } from '../../engine/report.js';
import { serializePlan } from '../../plan/saved-plan.js';
import { expiryWindow, hostsWithErrorShown, renderPlan, renderRecap } from '../../render/plan-text.js';
import { renderPlanMarkdown } from '../../render/plan-markdown.js';
import { readPlanFile } from '../plan-file.js';

export const HELP = `Usage: reconcile show PLAN [--format text|markdown|json] [--diff]

Prints a plan saved by 'reconcile --check --out PLAN'. Changes nothing, connects nowhere.

  --format text       the plan and recap, as the --check that made it printed them (default)
  --format markdown   a summary table, then the changes per host (collapsible when long),
                      for a pull-request comment
  --format json       the plan itself (schema/plan.schema.json)
  -D, --diff          with text or markdown: before/after of every changed field
  -h, --help          this help
`;

const OPTIONS = {
  format: { type: 'string' },
  diff: { type: 'boolean', short: 'D' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('show', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`show: one saved plan is required, got ${positionals.length} (see 'reconcile show --help')`);
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'markdown' && format !== 'json') {
    throw new UsageError(`show: --format takes text, markdown or json, not '${format}'`);
  }
  const plan = await readPlanFile(resolve(io.cwd, positionals[0]!));
  const words = reasonWords();
  const diff = values.diff ?? false;
  if (format === 'json') io.stdout(serializePlan(plan));
  else if (format === 'markdown') io.stdout(renderPlanMarkdown(plan, { diff, words }));
  else {
    const created = new Date(plan.createdAt);
    io.stdout(renderPlan(plan, { diff, words, expiring: expiryWindow(plan) }));
    io.stdout(`\n${renderRecap(buildReport(plan, { mode: 'check', startedAt: created, finishedAt: created }), hostsWithErrorShown(plan))}`);
  }
  return 0;
}
