/**
 * The human view of a run, Terraform-like: per host the planned actions with their symbol
 * (+ ~ -/+ - ?) and reason, with --diff the before/after of each changed field, a summary
 * line, and after the run a recap per host. Pure: strings in, strings out.
 */
import type { HostReport, RunReport } from '../engine/report.js';
import { ACTION_SYMBOL, CONTROLLER, type Action, type ActionType, type HostPlan, type PlannedCertificate, type RunPlan } from '../plan/types.js';
import type { ReasonWords } from './view.js';
import { printable, printableField } from './printable.js';

export interface PlanTextOptions {
  /** --diff: before/after of every changed field, and file diffs. */
  diff: boolean;
  /** The words of each reason code (the modules' vocabularies). */
  words: ReasonWords;
  /** Managed certificates expiring within `days` of `now` are listed under their host. */
  expiring?: { now: Date; days: number };
}

export function renderPlan(plan: Pick<RunPlan, 'controller' | 'hosts'>, options: PlanTextOptions): string {
  const controller = plan.controller.length > 0 ? [renderHostPlan(controllerPlan(plan), options)] : [];
  const blocks = [...controller, ...plan.hosts.map((h) => renderHostPlan(h, options))];
  return `${blocks.join('\n')}\n${renderSummaryLine(plan)}\n`;
}

/** One host's block, control characters of what the host said made visible (printable.ts). */
export function renderHostPlan(h: HostPlan, options: PlanTextOptions): string {
  return printable(hostPlanText(h, options));
}

/** The controller's work, shown as a host of its own, first. */
function controllerPlan(plan: Pick<RunPlan, 'controller'>): HostPlan {
  return { host: CONTROLLER, plans: plan.controller, covered: [], warnings: plan.controller.flatMap((p) => p.warnings), certificates: [] };
}

function hostPlanText(h: HostPlan, options: PlanTextOptions): string {
  const lines: string[] = [];
  if (h.failure) {
    lines.push(`${h.host}: ${h.failure.unreachable ? 'unreachable' : 'failed'}: ${h.failure.step}: ${h.failure.message}`);
    return lines.join('\n') + '\n';
  }
  const actions = h.plans.flatMap((p) => p.actions);
  const errors = h.plans.flatMap((p) => p.errors.map((e) => `${p.module}: ${e}`));
  const covered = h.covered.map((c) => `${c.module} covered by ${c.by}`);
  const headerNote =
    actions.length === 0 && errors.length === 0
      ? ` no changes${covered.length ? ` (${covered.join(', ')})` : ''}`
      : covered.length
        ? ` (${covered.join(', ')})`
        : '';
  lines.push(`${h.host}:${headerNote}`);
  for (const p of h.plans) {
    for (const a of p.actions) lines.push(...renderAction(a, options.words(p.module, a.reason, a.detail), options));
  }
  for (const e of errors) lines.push(`  error: ${e} (nothing will be applied on ${h.host})`);
  if (options.expiring) for (const c of expiringManaged(h, options.expiring)) lines.push(`  ${expiringText(c, options.expiring.now)}`);
  for (const w of h.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n') + '\n';
}

/**
 * The certificates the inventory keeps trusted on this host that expire within the window: the
 * inventory's to renew, so the plan says so (not only the JSON report and the metrics). A
 * shared store covered by another member is listed under that member only.
 */
export function expiringManaged(h: HostPlan, window: { now: Date; days: number }): PlannedCertificate[] {
  const covered = new Set(h.covered.map((c) => c.module));
  const limit = window.now.getTime() + window.days * DAY;
  return h.certificates.filter((c) => c.managed && c.notAfter !== '' && !covered.has(c.module ?? '') && new Date(c.notAfter).getTime() < limit);
}

/** `expiring: certificate "ci" [0d830675e0ca] on 2026-12-08 (in 9 days); renew …` (a metrics pair renews itself: no advice). */
export function expiringText(c: PlannedCertificate, now: Date): string {
  const left = Math.floor((new Date(c.notAfter).getTime() - now.getTime()) / DAY);
  const when = left < 0 ? `${-left} day${left === -1 ? '' : 's'} ago` : left === 0 ? 'today' : `in ${left} day${left === 1 ? '' : 's'}`;
  return `expiring: certificate "${printableField(c.name)}" [${shortFingerprint(c.fingerprint)}] on ${c.notAfter.slice(0, 10)} (${when})${c.type === 'client' ? '; renew its certificate_file' : ''}`;
}

const DAY = 86_400_000;

function renderAction(a: Action, reason: string, options: PlanTextOptions): string[] {
  const symbol = ACTION_SYMBOL[a.action].padStart(3);
  const fingerprint = a.fingerprint ? ` [${shortFingerprint(a.fingerprint)}]` : '';
  const lines = [`${symbol} ${a.kind} "${printableField(a.name)}"${fingerprint}: ${describeAction(a.action)} (${printableField(reason)})`];
  if (!options.diff) return lines;
  const pad = '        ';
  switch (a.action) {
    case 'add':
      for (const [k, v] of fields(a.after)) lines.push(`${pad}+ ${k}: ${show(v)}`);
      break;
    case 'update':
    case 'rotate':
      for (const c of a.changes ?? []) lines.push(`${pad}~ ${c.field}: ${show(c.before)} → ${show(c.after)}`);
      break;
    case 'remove':
      for (const [k, v] of fields(a.before)) lines.push(`${pad}- ${k}: ${show(v)}`);
      break;
    case 'unmanaged':
      for (const [k, v] of fields(a.before)) lines.push(`${pad}? ${k}: ${show(v)}`);
      break;
    default:
      assertNever(a.action);
  }
  if (a.diff)
    lines.push(
      ...a.diff
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => `${pad}${l}`),
    );
  return lines;
}

function describeAction(t: ActionType): string {
  switch (t) {
    case 'add':
      return 'add';
    case 'update':
      return 'update in place';
    case 'rotate':
      return 'rotate (add new, then remove old)';
    case 'remove':
      return 'remove';
    case 'unmanaged':
      return 'unmanaged, still trusted';
    default:
      return assertNever(t);
  }
}

/** Incus shows 12 hex digits; "(known after apply)" stays whole. */
function shortFingerprint(fp: string): string {
  return /^[0-9a-f]{13,}$/.test(fp) ? fp.slice(0, 12) : fp;
}

function fields(value: unknown): [string, unknown][] {
  return value && typeof value === 'object' ? Object.entries(value as Record<string, unknown>) : [];
}

function show(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => show(x)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/** The plan's own clock and --warn-days: a saved plan shows what its --check showed. */
export function expiryWindow(plan: Pick<RunPlan, 'createdAt' | 'options'>): { now: Date; days: number } {
  return { now: new Date(plan.createdAt), days: plan.options.warnDays };
}

export function countActions(plan: Pick<RunPlan, 'controller' | 'hosts'>): Record<ActionType, number> {
  const counts: Record<ActionType, number> = { add: 0, update: 0, rotate: 0, remove: 0, unmanaged: 0 };
  for (const p of plan.controller) for (const a of p.actions) counts[a.action] += 1;
  for (const h of plan.hosts) for (const p of h.plans) for (const a of p.actions) counts[a.action] += 1;
  return counts;
}

export function renderSummaryLine(plan: Pick<RunPlan, 'controller' | 'hosts'>): string {
  const c = countActions(plan);
  return `Plan: ${c.add} to add, ${c.update} to change, ${c.rotate} to rotate, ${c.remove} to remove; ${c.unmanaged} unmanaged`;
}

/**
 * The recap after a run: one line per host with its status and what was (not) applied.
 * `shownAbove`: hosts whose error the plan text already printed; their line names only the
 * step, so an unreachable host's error is read once, not three times.
 */
export function renderRecap(report: RunReport, shownAbove: ReadonlySet<string> = new Set()): string {
  const width = Math.max(4, ...report.hosts.map((h) => h.host.length));
  const lines = ['Recap:'];
  const failed = new Set(report.hosts.filter((h) => h.status === 'failed').map((h) => h.host));
  for (const h of report.hosts)
    lines.push(`  ${h.host.padEnd(width)}  ${h.status.padEnd(11)}  ${printableField(recapDetail(h, report.mode, failed, shownAbove.has(h.host)))}`.trimEnd());
  return lines.join('\n') + '\n';
}

/** Hosts whose plan block carries their error (a failure while reading, or a plan error). */
export function hostsWithErrorShown(plan: Pick<RunPlan, 'hosts'>): Set<string> {
  return new Set(plan.hosts.filter((h) => h.failure !== undefined || h.plans.some((p) => p.errors.length > 0)).map((h) => h.host));
}

function recapDetail(h: HostReport, mode: 'check' | 'apply', failedHosts: Set<string>, errorShown: boolean): string {
  const applying = h.actions.filter((a) => a.action !== 'unmanaged');
  const applied = applying.filter((a) => a.applied).length;
  const unmanaged = h.actions.length - applying.length;
  const parts: string[] = [];
  switch (h.status) {
    case 'covered':
      parts.push(`by ${h.coveredBy ?? '?'}${h.coveredBy && failedHosts.has(h.coveredBy) ? ', which failed' : ''}`);
      break;
    case 'unreachable':
    case 'failed':
      parts.push(errorShown ? `${h.error?.step ?? '?'} (error above)` : `${h.error?.step ?? '?'}: ${h.error?.message ?? ''}`);
      if (mode === 'apply' && applying.length > 0) parts.push(`${applied} of ${applying.length} applied`);
      break;
    case 'drift':
      if (applying.length > 0) parts.push(`${applying.length} to apply`);
      break;
    case 'changed':
      parts.push(`${applied} applied`);
      break;
    case 'ok':
      break;
    default:
      assertNever(h.status);
  }
  if (unmanaged > 0) parts.push(`${unmanaged} unmanaged`);
  return parts.join(', ');
}

function assertNever(x: never): never {
  throw new Error(`unexpected ${String(x)}`);
}
