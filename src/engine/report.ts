/**
 * The result of a run, as a value: what the engine hands to every renderer (human text,
 * JSON, Prometheus textfile). Its JSON form is schema/report.schema.json.
 */
import { CONTROLLER, type Action, type ActionType, type HostFailure, type HostPlan, type RunPlan } from '../plan/types.js';

/**
 * ok: in sync (or nothing to do; unmanaged certificates kept are not drift); changed: actions
 * applied; drift: check mode found actions an apply would carry out;
 * failed: a step failed (planning or applying); unreachable: could not connect;
 * covered: shared state (cluster trust store) reconciled through another member.
 */
export type HostStatus = 'ok' | 'changed' | 'drift' | 'failed' | 'unreachable' | 'covered';

export interface ReportedAction {
  module: string;
  action: ActionType;
  kind: string;
  name: string;
  /** The module's reason code (a closed set per module); words are added at the edge (reasonText). */
  reason: string;
  detail?: string;
  /** The reason in words, added by the JSON view. */
  reasonText?: string;
  fingerprint?: string;
  before?: unknown;
  after?: unknown;
  /** True once apply has done it; always false in check mode. */
  applied: boolean;
}

export interface ReportedCertificate {
  name: string;
  fingerprint: string;
  type: string;
  notAfter: string;
}

export interface HostReport {
  host: string;
  status: HostStatus;
  /** For `covered`: the member through which the shared state was reconciled. */
  coveredBy?: string;
  actions: ReportedAction[];
  warnings: string[];
  /** The failing step and its message, for failed/unreachable. */
  error?: { step: string; message: string };
  /** Trusted certificates seen on the host (for expiry metrics and audit). */
  certificates: ReportedCertificate[];
  /** Certificates expiring within the warning window. */
  expiring: ReportedCertificate[];
}

/**
 * A key pair this run made on the controller (a metrics pair generated or rotated by a
 * controller action of the plan): where it is and its certificate's fingerprint, never key material.
 */
export interface GeneratedKeyPair {
  module: string;
  /** The inventory entry's name (incus_metrics_certificates[].name). */
  name: string;
  /** generated: there was none; rotation started: a new pair replaces a due one; install resumed: an interrupted run's pair finished. */
  event: 'generated' | 'rotation started' | 'install resumed';
  /** Absolute paths on the controller. */
  certificateFile: string;
  keyFile: string;
  /** The key file's mode (always written 0600). */
  keyMode: '0600';
  fingerprint: string;
}

export interface RunReport {
  tool: { name: 'reconcile'; version: string };
  inventory: string;
  playbook: string;
  mode: 'check' | 'apply';
  startedAt: string;
  durationMs: number;
  hosts: HostReport[];
  /** Key pairs generated on the controller by this run (empty in check mode). */
  generated?: GeneratedKeyPair[];
  summary: {
    hosts: Record<HostStatus, number>;
    actions: Record<ActionType, number>;
  };
  /** 0 in sync / applied cleanly; 2 check found drift; 1 anything failed (exitCodeOf). */
  exitCode: 0 | 1 | 2;
}

/** What apply did, for the report: the actions carried out and each host's failure. */
export interface AppliedState {
  applied: Set<Action>;
  failures: Map<string, HostFailure>;
  generated: GeneratedKeyPair[];
}

const HOST_STATUSES: HostStatus[] = ['ok', 'changed', 'drift', 'failed', 'unreachable', 'covered'];
const ACTION_TYPES: ActionType[] = ['add', 'update', 'rotate', 'remove', 'unmanaged'];

/**
 * The report of a plan (check mode: `state` absent) or of its apply. Pure. The controller's work
 * is reported as one more host named "controller" when the plan has any.
 */
export function buildReport(plan: RunPlan, run: { mode: 'check' | 'apply'; state?: AppliedState; startedAt: Date; finishedAt: Date }): RunReport {
  const state = run.state ?? { applied: new Set<Action>(), failures: new Map<string, HostFailure>(), generated: [] };
  const warnDays = plan.options.warnDays;
  const now = new Date(plan.createdAt);
  const controller: HostPlan[] = plan.controller.length > 0 ? [{ host: CONTROLLER, plans: plan.controller, covered: [], warnings: [], certificates: [] }] : [];
  const hosts = [...controller, ...plan.hosts].map((h) => hostReport(h, run.mode, state, now, warnDays));
  warnWhereOwnerFailed(hosts, plan);
  const hostCounts = Object.fromEntries(HOST_STATUSES.map((s) => [s, 0])) as Record<HostStatus, number>;
  const actionCounts = Object.fromEntries(ACTION_TYPES.map((a) => [a, 0])) as Record<ActionType, number>;
  for (const h of hosts) {
    hostCounts[h.status] += 1;
    for (const a of h.actions) actionCounts[a.action] += 1;
  }
  const report: RunReport = {
    tool: plan.tool,
    inventory: plan.inventory.path,
    playbook: plan.playbook,
    mode: run.mode,
    startedAt: run.startedAt.toISOString(),
    durationMs: Math.max(0, run.finishedAt.getTime() - run.startedAt.getTime()),
    hosts,
    generated: state.generated,
    summary: { hosts: hostCounts, actions: actionCounts },
    exitCode: 0,
  };
  report.exitCode = exitCodeOf(report);
  return report;
}

/**
 * The exit code, an interface (as Terraform's -detailed-exitcode): 1 when anything failed, else
 * 2 when check mode found something an apply would change, else 0. Unmanaged certificates that
 * are kept are reported, not drift: a converged inventory stays green.
 */
export function exitCodeOf(report: Pick<RunReport, 'hosts' | 'mode'>): 0 | 1 | 2 {
  if (report.hosts.some((h) => h.status === 'failed' || h.status === 'unreachable')) return 1;
  return report.mode === 'check' && report.hosts.some((h) => h.status === 'drift') ? 2 : 0;
}

/** A covered member says so when the member reconciling its shared state did not get through. */
function warnWhereOwnerFailed(hosts: HostReport[], plan: RunPlan): void {
  const byName = new Map(hosts.map((h) => [h.host, h]));
  for (const hp of plan.hosts) {
    const report = byName.get(hp.host)!;
    for (const c of hp.covered) {
      const owner = byName.get(c.by);
      const warning = `${c.module}: ${c.by}, through which this shared state is reconciled, failed; see its error`;
      if (owner && (owner.status === 'failed' || owner.status === 'unreachable') && !report.warnings.includes(warning)) {
        report.warnings = [...report.warnings, warning];
      }
    }
  }
}

function hostReport(h: HostPlan, mode: 'check' | 'apply', state: AppliedState, now: Date, warnDays: number): HostReport {
  const actions: ReportedAction[] = [];
  for (const p of h.plans) {
    for (const a of p.actions) {
      const r: ReportedAction = { module: p.module, action: a.action, kind: a.kind, name: a.name, reason: a.reason, applied: state.applied.has(a) };
      if (a.detail !== undefined) r.detail = a.detail;
      if (a.fingerprint !== undefined) r.fingerprint = a.fingerprint;
      if (a.before !== undefined) r.before = a.before;
      if (a.after !== undefined) r.after = a.after;
      actions.push(r);
    }
  }
  const planErrors = h.plans.flatMap((p) => p.errors.map((e) => `${p.module}: ${e}`));
  const failure = h.failure ?? state.failures.get(h.host);
  const toApply = h.plans.flatMap((p) => p.actions.filter((a) => a.applies));
  let error: HostReport['error'];
  let status: HostStatus;
  if (failure) {
    status = failure.unreachable ? 'unreachable' : 'failed';
    error = { step: failure.step, message: failure.message };
  } else if (planErrors.length > 0) {
    status = 'failed';
    error = { step: 'plan', message: planErrors.join('; ') };
  } else if (mode === 'check' ? toApply.length > 0 : toApply.some((a) => state.applied.has(a))) {
    status = mode === 'check' ? 'drift' : 'changed';
  } else if (h.plans.length === 0 && h.covered.length > 0) {
    status = 'covered';
  } else {
    status = 'ok';
  }
  // A host that failed after some actions succeeded still says what was applied (actions[].applied).
  const expiring = h.certificates.filter((c) => c.notAfter !== '' && new Date(c.notAfter).getTime() - now.getTime() < warnDays * 86_400_000);
  const report: HostReport = { host: h.host, status, actions, warnings: h.warnings, certificates: h.certificates, expiring };
  const coveredBy = h.covered[0]?.by;
  if (coveredBy !== undefined) report.coveredBy = coveredBy;
  if (error) report.error = error;
  return report;
}
