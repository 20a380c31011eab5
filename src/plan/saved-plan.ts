/**
 * A saved plan's text ⇄ RunPlan, pure: what `--out` writes and what `apply PLAN` / `show PLAN`
 * read. Reading refuses, with one clear line each, what is not a plan of this version: not JSON,
 * another format or version, a shape schema/plan.schema.json rejects, too old (--max-age).
 */
import { loadModule } from '../embedded.js';
import type { Ajv2020 as Ajv2020Class, ErrorObject } from 'ajv/dist/2020.js';
import { UsageError } from '../errors.js';
import planSchema from '../../schema/plan.schema.json' with { type: 'json' };
import { PLAN_FORMAT_VERSION, type RunPlan } from './types.js';

/** A saved plan larger than this is refused before parsing (plans of 100 hosts are well under 10 MB). */
export const MAX_PLAN_BYTES = 64 * 1024 * 1024;

/** One line that names the file and what is wrong with it; nothing is applied. */
export class PlanFileError extends UsageError {
  constructor(file: string, message: string) {
    super(`${file}: ${message}; nothing was applied`);
  }
}

export function serializePlan(plan: RunPlan): string {
  return JSON.stringify(plan, null, 2) + '\n';
}

let validate: ReturnType<Ajv2020Class['compile']> | undefined;

/**
 * The schema's validator, compiled when a plan is first read: ajv costs ~65 ms to import, which
 * every run would pay for (a --check that saves a plan only serializes it).
 */
function planValidator(): ReturnType<Ajv2020Class['compile']> {
  if (!validate) {
    const { Ajv2020 } = loadModule<{ Ajv2020: typeof Ajv2020Class }>('ajv/dist/2020.js', import.meta.url);
    validate = new Ajv2020({ allErrors: false, strict: false, validateFormats: false }).compile(planSchema);
  }
  return validate;
}

export function parsePlan(text: string, file: string): RunPlan {
  if (text.length > MAX_PLAN_BYTES) throw new PlanFileError(file, `is ${text.length} bytes, more than a saved plan may be (${MAX_PLAN_BYTES})`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PlanFileError(file, `is not a saved plan (not JSON: ${(e as Error).message})`);
  }
  const head = value as { format?: unknown; formatVersion?: unknown; tool?: { version?: unknown } } | null;
  if (typeof head !== 'object' || head === null || head.format !== 'reconcile-plan') {
    throw new PlanFileError(file, 'is not a saved plan of reconcile (no "format": "reconcile-plan")');
  }
  if (head.formatVersion !== PLAN_FORMAT_VERSION) {
    throw new PlanFileError(
      file,
      `is a plan of format version ${JSON.stringify(head.formatVersion)} (made by reconcile ${JSON.stringify(head.tool?.version ?? '?')}); this reconcile reads version ${PLAN_FORMAT_VERSION}: plan again`,
    );
  }
  const check = planValidator();
  if (!check(value)) throw new PlanFileError(file, `is not a valid plan: ${describe(check.errors?.[0])}`);
  const plan = value as RunPlan;
  if (Number.isNaN(Date.parse(plan.createdAt))) throw new PlanFileError(file, `is not a valid plan: createdAt ${JSON.stringify(plan.createdAt)} is not a date`);
  return plan;
}

function describe(e: ErrorObject | undefined): string {
  if (!e) return 'unknown shape';
  const where = e.instancePath === '' ? 'the plan' : e.instancePath.slice(1).replace(/\//g, '.');
  return `${where} ${e.message ?? 'is wrong'}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`;
}

/** "24h", "90m", "7d", "3600s" or a number of seconds → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} takes a duration such as 24h, 90m, 7d or 3600s, not '${text}'`);
  const n = Number(m[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  const ms = n * unit * 1000;
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`${flag} takes a duration of at least 1s, not '${text}'`);
  return ms;
}

/** Refuses a plan older than maxAgeMs (or made in the future: a clock gone wrong). */
export function checkPlanAge(plan: RunPlan, file: string, now: Date, maxAgeMs: number): void {
  const age = now.getTime() - Date.parse(plan.createdAt);
  if (age > maxAgeMs) {
    throw new PlanFileError(
      file,
      `was made ${formatAge(age)} ago (${plan.createdAt}), more than --max-age ${formatAge(maxAgeMs)}: plan again, or pass a larger --max-age`,
    );
  }
  if (age < -5 * 60_000) throw new PlanFileError(file, `was made in the future (${plan.createdAt}); check this machine's clock`);
}

function formatAge(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} d`;
}

/** Which files differ between the plan's inventory and the one on disk now (empty: the same). */
export function changedInventoryFiles(planned: RunPlan['inventory']['files'], now: RunPlan['inventory']['files']): string[] {
  const before = new Map(planned.map((f) => [f.path, f.sha256]));
  const after = new Map(now.map((f) => [f.path, f.sha256]));
  const out: string[] = [];
  for (const [path, hash] of before) {
    const h = after.get(path);
    if (h === undefined) out.push(`${path} (no longer read)`);
    else if (h !== hash) out.push(`${path} (${hash === 'absent' ? 'created' : h === 'absent' ? 'removed' : 'changed'})`);
  }
  for (const path of after.keys()) if (!before.has(path)) out.push(`${path} (new)`);
  return out.sort();
}
