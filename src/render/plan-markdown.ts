/**
 * A plan as Markdown for a pull-request comment (pure): a summary table (one row per host with
 * its counts), then each host's changes as the text view shows them, in a fenced block —
 * collapsed in <details> when a host has more than a screenful.
 */
import { ACTION_SYMBOL, CONTROLLER, type ActionType, type HostPlan, type RunPlan } from '../plan/types.js';
import { renderHostPlan, renderSummaryLine } from './plan-text.js';
import type { PlanTextOptions } from './plan-text.js';

/** Hosts with more lines than this are collapsed. */
const COLLAPSE_AFTER_LINES = 15;

const COLUMNS: ActionType[] = ['add', 'update', 'rotate', 'remove', 'unmanaged'];

export function renderPlanMarkdown(plan: RunPlan, options: PlanTextOptions): string {
  const hosts: HostPlan[] = [
    ...(plan.controller.length > 0
      ? [{ host: CONTROLLER, plans: plan.controller, covered: [], warnings: plan.controller.flatMap((p) => p.warnings), certificates: [] }]
      : []),
    ...plan.hosts,
  ];
  const out: string[] = [];
  out.push(`### reconcile plan`, '');
  out.push(
    `${cell(renderSummaryLine(plan))}. Made ${plan.createdAt} by reconcile ${plan.tool.version} from \`${cell(plan.inventory.path)}\` (inventory digest \`${plan.inventory.digest.slice(0, 12)}\`).`,
    '',
  );
  out.push(`| host | status | ${COLUMNS.map((c) => `${ACTION_SYMBOL[c]} ${c}`).join(' | ')} |`);
  out.push(`|---|---|${COLUMNS.map(() => '---:').join('|')}|`);
  for (const h of hosts) {
    const counts = Object.fromEntries(COLUMNS.map((c) => [c, 0])) as Record<ActionType, number>;
    for (const p of h.plans) for (const a of p.actions) counts[a.action] += 1;
    out.push(`| ${cell(h.host)} | ${status(h, counts)} | ${COLUMNS.map((c) => (counts[c] ? String(counts[c]) : '')).join(' | ')} |`);
  }
  out.push('');
  for (const h of hosts) {
    const text = renderHostPlan(h, options).replace(/\n$/, '');
    const lines = text.split('\n');
    if (lines.length <= 1 && !h.failure) continue; // "no changes": the table says it
    const fence = '```' + (text.includes('```') ? '`' : '');
    const block = [`${fence}diff`, ...lines.map(diffPrefix), fence];
    if (lines.length > COLLAPSE_AFTER_LINES) {
      out.push(`<details><summary>${escapeHtml(h.host)}: ${lines.length - 1} lines</summary>`, '', ...block, '', '</details>', '');
    } else {
      out.push(`**${cell(h.host)}**`, '', ...block, '');
    }
  }
  return out.join('\n');
}

function status(h: HostPlan, counts: Record<ActionType, number>): string {
  if (h.failure) return h.failure.unreachable ? 'unreachable' : 'failed';
  if (h.plans.some((p) => p.errors.length > 0)) return 'error';
  if (h.plans.length === 0 && h.covered.length > 0) return `covered by ${cell(h.covered[0]!.by)}`;
  return counts.add + counts.update + counts.rotate + counts.remove > 0 ? 'changes' : 'no changes';
}

/**
 * GitHub colours a ```diff block by each line's first character: `+` green, `-` red. The text
 * view indents symbols; here they move to the first column so the colours follow the actions.
 */
function diffPrefix(line: string): string {
  const m = /^(\s*)(-\/\+|[+~?-])( .*)$/.exec(line);
  if (!m) return line;
  const symbol = m[2]!;
  const lead = symbol === '-/+' ? '!' : symbol === '~' ? '!' : symbol === '?' ? '#' : symbol;
  return `${lead}${m[1]}${symbol}${m[3]}`;
}

/** Table cells: a pipe or a newline would break the row. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
