/**
 * Apply: executes a RunPlan exactly — the controller's work first (a key pair to generate), then
 * every host in parallel up to `forks`, one host's actions in plan order. It never re-reads the
 * inventory nor re-diffs: each module checks an action's precondition on the host right before
 * it and refuses the action when the live state moved since the plan.
 *
 * A failure stays in its host's result: it stops that host's remaining actions only. The report
 * says exactly which actions were applied.
 */
import pLimit from 'p-limit';
import { TransportError } from '../errors.js';
import type { ApplyContext, ReconcileModule, ResolvedCertificate } from '../modules/types.js';
import { CONTROLLER, type Action, type HostFailure, type HostPlan, type RunPlan } from '../plan/types.js';
import { failureOf, type SessionPool } from './plan-run.js';
import { buildReport, type AppliedState } from './report.js';
import type { GeneratedKeyPair, RunReport } from './report.js';

/** Progress of apply, for the views. Every hook is optional. */
export interface ApplyHooks {
  hostApplyStarted?(host: string): void;
  actionStarted?(host: string, module: string, action: Action): void;
  actionApplied?(host: string, module: string, action: Action): void;
  /** A host's apply ended, cleanly (no failure) or not. */
  hostApplyFinished?(host: string, failure?: HostFailure): void;
  keyPairGenerated?(pair: GeneratedKeyPair): void;
}

export interface ApplyOptions {
  forks: number;
  modules: Record<string, ReconcileModule<any, any, any, any>>;
  /** The clock, for the report's duration. */
  now: () => Date;
  /**
   * Aborted on SIGINT/SIGTERM: no new action starts, the ones in flight finish, and every host
   * not done reports the interruption (what was applied stays in the report).
   */
  interrupt?: AbortSignal;
}

/** True when a host's plan has something to apply and nothing that forbids it. */
export function hostApplies(h: HostPlan): boolean {
  return !h.failure && h.plans.every((p) => p.errors.length === 0) && h.plans.some((p) => p.actions.some((a) => a.applies));
}

export async function applyPlan(plan: RunPlan, pool: SessionPool, hooks: ApplyHooks, options: ApplyOptions): Promise<RunReport> {
  const startedAt = options.now();
  const state: AppliedState = { applied: new Set(), failures: new Map(), generated: [] };
  const certificates = new Map<string, ResolvedCertificate>();
  /** What a module's apply may know beyond its plan: the certificates made earlier in this apply. */
  const contextOf = (module: string): ApplyContext => ({
    now: options.now,
    certificate: (path) => certificates.get(path),
    resolveCertificate: (c) => void certificates.set(c.certificatePath, c),
    keyPairGenerated: (pair) => {
      const entry: GeneratedKeyPair = { module, ...pair };
      state.generated.push(entry);
      hooks.keyPairGenerated?.(entry);
    },
  });
  const refuseIfInterrupted = (host: string, before: string) => {
    if (options.interrupt?.aborted) {
      throw new TransportError(
        host,
        'apply',
        `interrupted by ${String(options.interrupt.reason)} before ${before}; what is marked applied was applied, nothing after it`,
      );
    }
  };
  const moduleHooks = (host: string, module: string) => ({
    actionStarted: (a: Action) => {
      refuseIfInterrupted(host, `${a.action} ${a.name}`);
      hooks.actionStarted?.(host, module, a);
    },
    actionApplied: (a: Action) => {
      state.applied.add(a);
      hooks.actionApplied?.(host, module, a);
    },
  });

  // The controller first: hosts may need what it makes (the certificate of a new key pair).
  let controllerFailure: HostFailure | undefined;
  if (plan.controller.some((p) => p.actions.some((a) => a.applies))) {
    hooks.hostApplyStarted?.(CONTROLLER);
    let step = 'apply';
    try {
      for (const p of plan.controller) {
        const module = options.modules[p.module];
        if (!module?.applyController) throw new TransportError(CONTROLLER, 'apply', `module ${p.module} has no controller work to apply`);
        step = `apply ${p.module}`;
        await module.applyController(p, moduleHooks(CONTROLLER, p.module), contextOf(p.module));
      }
    } catch (e) {
      controllerFailure = failureOf(e, CONTROLLER, step);
      state.failures.set(CONTROLLER, controllerFailure);
    }
    hooks.hostApplyFinished?.(CONTROLLER, controllerFailure);
  }

  const limit = pLimit(options.forks);
  await Promise.all(
    plan.hosts.filter(hostApplies).map((h) =>
      limit(async () => {
        hooks.hostApplyStarted?.(h.host);
        let step = 'connect';
        try {
          refuseIfInterrupted(h.host, 'its first action');
          if (!h.connection) throw new TransportError(h.host, 'connect', 'the plan holds no connection settings for this host');
          const session = await pool.session(h.connection);
          for (const p of h.plans) {
            const module = options.modules[p.module];
            if (!module) throw new TransportError(h.host, 'apply', `unknown module ${p.module} in the plan`);
            step = `apply ${p.module}`;
            await module.apply(session, p, moduleHooks(h.host, p.module), contextOf(p.module));
          }
        } catch (e) {
          state.failures.set(h.host, failureOf(e, h.host, step));
        }
        hooks.hostApplyFinished?.(h.host, state.failures.get(h.host));
      }),
    ),
  );
  return buildReport(plan, { mode: 'apply', state, startedAt, finishedAt: options.now() });
}
