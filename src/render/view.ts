/**
 * What a run shows, as one interface (Terraform's views): the read phase's progress, the plan,
 * apply's progress and the report. The CLI picks the views once (human text, JSON, quiet log
 * lines, listr2 progress) and hands them to the engine as hooks; the engine never prints.
 */
import type { ApplyHooks } from '../engine/apply-plan.js';
import type { PlanHooks } from '../engine/plan-run.js';
import type { HostReport, RunReport } from '../engine/report.js';
import type { RunPlan } from '../plan/types.js';

export interface RunView extends PlanHooks, ApplyHooks {
  /** The whole plan, before anything is applied; the CLI waits for it (a view may flush). */
  planned?(plan: RunPlan): void | Promise<void>;
  /** Apply is about to start (after a confirmation, where one was asked). */
  applyStarting?(plan: RunPlan): void;
  hostFinished?(report: HostReport): void;
  /** The CLI waits for it (progress output may still be drawing). */
  finished?(report: RunReport): void | Promise<void>;
}

/**
 * The words of an action's reason code: the module's vocabulary, looked up at the edge (the CLI
 * builds it from the registry) so that renderers stay pure.
 */
export type ReasonWords = (module: string, reason: string, detail?: string) => string;

/** Several views as one: each hook is called on every member in order. */
export function combineViews(...all: RunView[]): RunView {
  return {
    warning: (m) => all.forEach((v) => v.warning?.(m)),
    hostsSelected: (hosts) => all.forEach((v) => v.hostsSelected?.(hosts)),
    hostStep: (host, step) => all.forEach((v) => v.hostStep?.(host, step)),
    hostConnecting: (host, c) => all.forEach((v) => v.hostConnecting?.(host, c)),
    hostPlanned: (p) => all.forEach((v) => v.hostPlanned?.(p)),
    planned: async (plan) => {
      for (const v of all) await v.planned?.(plan);
    },
    applyStarting: (plan) => all.forEach((v) => v.applyStarting?.(plan)),
    hostApplyStarted: (host) => all.forEach((v) => v.hostApplyStarted?.(host)),
    actionStarted: (host, module, a) => all.forEach((v) => v.actionStarted?.(host, module, a)),
    actionApplied: (host, module, a) => all.forEach((v) => v.actionApplied?.(host, module, a)),
    hostApplyFinished: (host, f) => all.forEach((v) => v.hostApplyFinished?.(host, f)),
    keyPairGenerated: (p) => all.forEach((v) => v.keyPairGenerated?.(p)),
    hostFinished: (r) => all.forEach((v) => v.hostFinished?.(r)),
    finished: async (r) => {
      for (const v of all) await v.finished?.(r);
    },
  };
}
