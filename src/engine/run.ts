/**
 * The engine: load + validate → select hosts → desired → connect + observe → plan → apply →
 * report. It reports through hooks and never prints; the CLI picks the renderers. Plans are
 * values handed to apply unchanged (apply never re-reads the inventory nor re-diffs).
 *
 * - One connection per host for the whole run; connect/observe and apply both run hosts in
 *   parallel up to `forks`; one host's actions run in order.
 * - Hosts sharing a module's state (an Incus cluster's trust store: ModulePlan.scope) are
 *   planned and applied once, through the first reachable member in name order; the other
 *   members are reported `covered`.
 * - A failure stays in its host's result: it stops that host's remaining actions only.
 */
import pLimit from 'p-limit';
import { formatProblem, InventoryError, TransportError, UsageError, type Problem } from '../errors.js';
import type { Inventory, InventoryHost } from '../inventory/model.js';
import type { Action, ActionType, ModuleName, ModulePlan, ReconcileModule } from '../modules/types.js';
import type { ConnectionSpec, HostSession, TransportOptions } from '../transport/types.js';
import type { GeneratedKeyPair, HostReport, HostStatus, ReportedAction, ReportedCertificate, RunReport } from './report.js';

/** One play of a playbook: which modules to reconcile on which host pattern. */
export interface Play {
  name: string;
  hosts: string;
  reconcile: ModuleName[];
}

export interface RunRequest {
  inventoryPath: string;
  playbookPath: string;
  check: boolean;
  /** --limit pattern, intersected with every play's hosts. */
  limit?: string;
  forks: number;
  /** --prune */
  prune: boolean;
  /** Certificates expiring within this many days are reported as expiring. */
  warnDays: number;
  transport: TransportOptions;
  /** The clock, passed in (tests pin it). */
  now: () => Date;
  toolVersion: string;
  /**
   * Aborted on SIGINT/SIGTERM: no new action starts, the ones in flight finish, and every host
   * not done reports the interruption (what was applied stays in the report). The reason is the
   * signal's name.
   */
  interrupt?: AbortSignal;
}

/** Why a host has no plan: it could not be connected or read. */
export interface HostFailure {
  step: string;
  message: string;
  unreachable: boolean;
}

/** What the engine will do on one host, handed to renderers before apply. */
export interface HostPlan {
  host: string;
  /** Plans this host applies: its own, and shared ones it was chosen to reconcile. */
  plans: ModulePlan[];
  /** Modules whose shared state another member reconciles. */
  covered: { module: ModuleName; by: string }[];
  /** Set when connecting or observing failed: nothing is planned. */
  failure?: HostFailure;
  warnings: string[];
}

export interface RunPlan {
  mode: 'check' | 'apply';
  hosts: HostPlan[];
}

/**
 * Progress and results, for renderers (plan text, listr2, log lines, JSON, metrics). Every hook
 * is optional so a new output only implements what it needs.
 */
export interface EngineHooks {
  /** Inventory or playbook warnings (already formatted with file:line:column). */
  warning?(message: string): void;
  /** The hosts this run touches, in inventory order, before anything connects. */
  hostsSelected?(hosts: string[], mode: 'check' | 'apply'): void;
  hostStep?(host: string, step: 'connect' | 'observe' | 'apply'): void;
  /** Every host's plan, before anything is applied; the engine waits for it (a renderer may flush). */
  planned?(plan: RunPlan): void | Promise<void>;
  actionStarted?(host: string, module: ModuleName, action: Action): void;
  actionApplied?(host: string, module: ModuleName, action: Action): void;
  /** A host's apply ended, cleanly (no failure) or not. */
  hostApplyFinished?(host: string, failure?: HostFailure): void;
  hostFinished?(report: HostReport): void;
  /** A key pair a prepare step generated on the controller (before any plan), once per pair. */
  keyPairGenerated?(pair: GeneratedKeyPair): void;
  /** The engine waits for it (progress output may still be drawing). */
  finished?(report: RunReport): void | Promise<void>;
}

/** Several outputs as one: each hook is called on every member in order. */
export function combineHooks(...all: EngineHooks[]): EngineHooks {
  return {
    warning: (m) => all.forEach((h) => h.warning?.(m)),
    hostsSelected: (hosts, mode) => all.forEach((h) => h.hostsSelected?.(hosts, mode)),
    hostStep: (host, step) => all.forEach((h) => h.hostStep?.(host, step)),
    planned: async (plan) => {
      for (const h of all) await h.planned?.(plan);
    },
    actionStarted: (host, module, a) => all.forEach((h) => h.actionStarted?.(host, module, a)),
    actionApplied: (host, module, a) => all.forEach((h) => h.actionApplied?.(host, module, a)),
    hostApplyFinished: (host, f) => all.forEach((h) => h.hostApplyFinished?.(host, f)),
    hostFinished: (r) => all.forEach((h) => h.hostFinished?.(r)),
    keyPairGenerated: (p) => all.forEach((h) => h.keyPairGenerated?.(p)),
    finished: async (r) => {
      for (const h of all) await h.finished?.(r);
    },
  };
}

/** The engine's seams to the other stages: real ones in inputs.ts, in-memory ones in unit tests. */
export interface EngineDeps {
  loadInventory(path: string): Promise<Inventory>;
  /** Every problem (errors and warnings) of the loaded inventory. */
  validateInventory(inventory: Inventory, now: Date): Problem[] | Promise<Problem[]>;
  loadPlaybook(path: string): Promise<{ plays: Play[]; problems: Problem[] }>;
  /** Hosts matching an Ansible pattern, in inventory order; warnings for terms matching nothing. */
  selectHosts(inventory: Inventory, pattern: string): { hosts: string[]; warnings: string[] };
  connectionSpec(host: InventoryHost, inventory: Inventory, transport: TransportOptions): ConnectionSpec | Promise<ConnectionSpec>;
  connect(spec: ConnectionSpec, transport: TransportOptions): Promise<HostSession>;
  readInventoryFile(inventory: Inventory, relativePath: string): Buffer | undefined;
  modules: Record<ModuleName, ReconcileModule<any, any>>;
}

interface ModuleWork {
  module: ReconcileModule<any, any>;
  desired: unknown;
  observed?: unknown;
  plan?: ModulePlan;
  /** Shared state reconciled through another member. */
  coveredBy?: string;
}

interface HostWork {
  host: InventoryHost;
  modules: ModuleWork[];
  session?: HostSession;
  failure?: HostFailure;
  warnings: string[];
  applied: Set<Action>;
}

export async function runPlaybook(request: RunRequest, hooks: EngineHooks, deps: EngineDeps): Promise<RunReport> {
  const startedAt = request.now();
  const mode = request.check ? 'check' : 'apply';

  const inventory = await deps.loadInventory(request.inventoryPath);
  const inventoryProblems = await deps.validateInventory(inventory, startedAt);
  const playbook = await deps.loadPlaybook(request.playbookPath);
  throwOnErrors([...inventoryProblems, ...playbook.problems], hooks);

  let works = selectWork(inventory, playbook.plays, request, hooks, deps);
  // One session per host for the whole run, whether prepare() or observe opens it first.
  const sessions = new Map<string, Promise<HostSession>>();
  const sessionOf = (host: InventoryHost): Promise<HostSession> => {
    let s = sessions.get(host.name);
    if (!s) {
      s = Promise.resolve(deps.connectionSpec(host, inventory, request.transport)).then((spec) => deps.connect(spec, request.transport));
      sessions.set(host.name, s);
    }
    return s;
  };

  const limit = pLimit(request.forks);
  const generated: GeneratedKeyPair[] = [];
  try {
    const facts = await prepareModules(inventory, works, request, startedAt, sessionOf, hooks, generated);
    collectDesired(inventory, works, startedAt, hooks, deps, facts);
    // A host with nothing to reconcile in any of its plays is not part of the run (nor of the report).
    works = works.filter((w) => w.modules.length > 0);
    hooks.hostsSelected?.(works.map((w) => w.host.name), mode);
    await Promise.all(works.map((w) => limit(() => connectAndObserve(w, inventory, request, hooks, deps, sessionOf))));
    const runPlan = planAll(works, request, startedAt);
    await hooks.planned?.(runPlan);

    if (!request.check) {
      await pauseBeforeApplyForTests(hooks);
      await Promise.all(works.filter(shouldApply).map((w) => limit(() => applyHost(w, hooks, request.interrupt))));
    }
  } finally {
    await Promise.all([...sessions.values()].map((s) => s.then((x) => x.close()).catch(() => undefined)));
  }

  warnWhereOwnerFailed(works);
  const hosts = works.map((w) => hostReport(w, request, startedAt));
  for (const h of hosts) hooks.hostFinished?.(h);
  const report = runReport(hosts, request, mode, startedAt, generated);
  await hooks.finished?.(report);
  return report;
}

/**
 * TEST-ONLY hook, read here and nowhere else: RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS=N waits N ms
 * between plan and apply so that the fault suite (test/faults) can change a host's trust store
 * behind the plan's back and check that the host's plan is refused (ETag), not forced. Unset in
 * real use; the pause is announced as a warning so that a stray setting is visible.
 */
async function pauseBeforeApplyForTests(hooks: EngineHooks): Promise<void> {
  const ms = Number(process.env.RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS ?? '');
  if (!Number.isInteger(ms) || ms <= 0) return;
  hooks.warning?.(`RECONCILE_TEST_PAUSE_BEFORE_APPLY_MS is set (test only): pausing ${ms} ms before apply`);
  await new Promise((resolveWait) => setTimeout(resolveWait, ms));
}

function throwOnErrors(problems: Problem[], hooks: EngineHooks): void {
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new InventoryError(problems);
  for (const p of problems) hooks.warning?.(formatProblem(p));
}

/** Hosts of every play ∩ --limit, in inventory order, each with its modules in play order. */
function selectWork(inventory: Inventory, plays: Play[], request: RunRequest, hooks: EngineHooks, deps: EngineDeps): HostWork[] {
  let limited: Set<string> | undefined;
  if (request.limit !== undefined) {
    const sel = deps.selectHosts(inventory, request.limit);
    for (const w of sel.warnings) hooks.warning?.(w);
    limited = new Set(sel.hosts);
  }
  const modulesOf = new Map<string, ModuleName[]>();
  for (const play of plays) {
    const sel = deps.selectHosts(inventory, play.hosts);
    for (const w of sel.warnings) hooks.warning?.(`play "${play.name}": ${w}`);
    for (const name of sel.hosts) {
      if (limited && !limited.has(name)) continue;
      const list = modulesOf.get(name) ?? [];
      for (const m of play.reconcile) if (!list.includes(m)) list.push(m);
      modulesOf.set(name, list);
    }
  }
  // As ansible-playbook does: a --limit that leaves no host is a mistake (a typo would
  // otherwise read as "in sync" to cron), not an empty success.
  if (limited && modulesOf.size === 0) {
    throw new UsageError(`--limit "${request.limit}" leaves no host of the playbook's plays to reconcile`);
  }
  const works: HostWork[] = [];
  for (const host of inventory.hosts.values()) {
    const names = modulesOf.get(host.name);
    if (!names) continue;
    works.push({
      host,
      modules: names.map((n) => ({ module: deps.modules[n], desired: undefined })),
      warnings: [],
      applied: new Set(),
    });
  }
  return works;
}

/** Each module's optional prepare step, once per run, with the hosts it runs on (see PrepareContext). */
async function prepareModules(
  inventory: Inventory,
  works: HostWork[],
  request: RunRequest,
  now: Date,
  session: (host: InventoryHost) => Promise<HostSession>,
  hooks: EngineHooks,
  generated: GeneratedKeyPair[],
): Promise<Map<ModuleName, unknown>> {
  const facts = new Map<ModuleName, unknown>();
  const problems: Problem[] = [];
  const modules = [...new Set(works.flatMap((w) => w.modules.map((m) => m.module)))];
  for (const module of modules) {
    if (!module.prepare) continue;
    const hosts = works.filter((w) => w.modules.some((m) => m.module === module)).map((w) => w.host);
    const result = await module.prepare({ inventory, hosts, check: request.check, now, session });
    problems.push(...result.problems);
    facts.set(module.name, result.facts);
    for (const pair of result.generated ?? []) {
      // A pair is made once per run, whichever module's prepare step made it.
      if (generated.some((g) => g.certificateFile === pair.certificateFile && g.fingerprint === pair.fingerprint)) continue;
      const entry: GeneratedKeyPair = { module: module.name, ...pair };
      generated.push(entry);
      hooks.keyPairGenerated?.(entry);
    }
  }
  throwOnErrors(problems, hooks);
  return facts;
}

/** Desired state of every host and module, before any connection: every problem at once. */
function collectDesired(inventory: Inventory, works: HostWork[], now: Date, hooks: EngineHooks, deps: EngineDeps, facts: Map<ModuleName, unknown>): void {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const ctx = { inventory, now, readInventoryFile: (rel: string) => deps.readInventoryFile(inventory, rel) };
  for (const w of works) {
    for (const m of w.modules) {
      const result = m.module.desired(w.host, { ...ctx, prepared: facts.get(m.module.name) });
      for (const p of result.problems) {
        // Hosts sharing a group variable would repeat the same problem once each.
        const key = `${p.severity}|${p.location?.file}:${p.location?.line}:${p.location?.column}|${p.valuePath}|${p.message}`;
        if (seen.has(key)) continue;
        seen.add(key);
        problems.push(p);
      }
      m.desired = result.desired;
    }
    // A module with nothing to reconcile on this host is left out.
    w.modules = w.modules.filter((m) => m.desired !== undefined);
  }
  // Warnings were reported by validation already (it reads desired() too): only errors matter here.
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems.filter((p) => p.severity === 'error'));
}

async function connectAndObserve(
  w: HostWork,
  inventory: Inventory,
  request: RunRequest,
  hooks: EngineHooks,
  deps: EngineDeps,
  session: (host: InventoryHost) => Promise<HostSession>,
): Promise<void> {
  if (w.modules.length === 0) return;
  let step = 'connect';
  try {
    hooks.hostStep?.(w.host.name, 'connect');
    w.session = await session(w.host);
    w.warnings.push(...(w.session.spec.warnings ?? []));
    hooks.hostStep?.(w.host.name, 'observe');
    for (const m of w.modules) {
      step = `observe ${m.module.name}`;
      m.observed = await m.module.observe(w.session, m.desired);
    }
  } catch (e) {
    w.failure = failureOf(e, w.host.name, step);
  }
}

/** Pure: plans every observed host, then gives each shared scope to its first member by name. */
function planAll(works: HostWork[], request: RunRequest, now: Date): RunPlan {
  const planCtx = { now, prune: request.prune, warnDays: request.warnDays };
  const owners = new Map<string, { host: string; work: ModuleWork }>();
  const byName = [...works].sort((a, b) => (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0));
  for (const w of byName) {
    if (w.failure) continue;
    try {
      for (const m of w.modules) m.plan = m.module.plan(m.desired, m.observed, planCtx);
    } catch (e) {
      // A planner that throws (a bug, or live state of a shape nobody checked) fails this host
      // only: the other hosts are still planned, applied and reported.
      for (const m of w.modules) m.plan = undefined;
      w.failure = failureOf(e, w.host.name, 'plan');
      continue;
    }
    for (const m of w.modules) {
      if (m.plan!.scope === undefined) continue;
      const key = `${m.module.name}|${m.plan!.scope}`;
      const owner = owners.get(key);
      if (!owner) {
        owners.set(key, { host: w.host.name, work: m });
        continue;
      }
      m.coveredBy = owner.host;
      if (JSON.stringify(m.desired) !== JSON.stringify(owner.work.desired)) {
        w.warnings.push(
          `${m.module.name}: shares its state with ${owner.host} (${m.plan!.scope}) but its inventory variables differ; ${owner.host}'s were applied`,
        );
      }
    }
  }
  return {
    mode: request.check ? 'check' : 'apply',
    hosts: works.map((w) => ({
      host: w.host.name,
      plans: w.modules.filter((m) => m.plan && !m.coveredBy).map((m) => m.plan!),
      covered: w.modules.filter((m) => m.coveredBy).map((m) => ({ module: m.module.name, by: m.coveredBy! })),
      failure: w.failure,
      warnings: [...w.warnings, ...w.modules.flatMap((m) => (m.plan && !m.coveredBy ? m.plan.warnings : []))],
    })),
  };
}

/** A covered member says so when the member reconciling its shared state did not get through. */
function warnWhereOwnerFailed(works: HostWork[]): void {
  const byName = new Map(works.map((w) => [w.host.name, w]));
  for (const w of works) {
    for (const m of w.modules) {
      if (!m.coveredBy) continue;
      const owner = byName.get(m.coveredBy);
      if (owner && (owner.failure || planErrors(owner).length > 0)) {
        w.warnings.push(`${m.module.name}: ${m.coveredBy}, through which this shared state is reconciled, failed; see its error`);
      }
    }
  }
}

function ownPlans(w: HostWork): ModuleWork[] {
  return w.modules.filter((m) => m.plan && !m.coveredBy);
}

function planErrors(w: HostWork): string[] {
  return ownPlans(w).flatMap((m) => m.plan!.errors.map((e) => `${m.module.name}: ${e}`));
}

function shouldApply(w: HostWork): boolean {
  return !w.failure && planErrors(w).length === 0 && ownPlans(w).some((m) => m.plan!.actions.some((a) => a.applies));
}

async function applyHost(w: HostWork, hooks: EngineHooks, interrupt?: AbortSignal): Promise<void> {
  const session = w.session!;
  hooks.hostStep?.(w.host.name, 'apply');
  let step = 'apply';
  // Interrupted: refuse to start the next action (modules call actionStarted before each one),
  // so the action in flight finishes and the report says exactly what was applied.
  const refuseIfInterrupted = (before: string) => {
    if (interrupt?.aborted) {
      throw new TransportError(w.host.name, 'apply', `interrupted by ${String(interrupt.reason)} before ${before}; what is marked applied was applied, nothing after it`);
    }
  };
  try {
    refuseIfInterrupted('its first action');
    for (const m of ownPlans(w)) {
      const name = m.module.name;
      step = `apply ${name}`;
      await m.module.apply(session, m.plan!, {
        actionStarted: (a) => {
          refuseIfInterrupted(`${a.action} ${a.name}`);
          hooks.actionStarted?.(w.host.name, name, a);
        },
        actionApplied: (a) => {
          w.applied.add(a);
          hooks.actionApplied?.(w.host.name, name, a);
        },
      });
    }
  } catch (e) {
    w.failure = failureOf(e, w.host.name, step);
  }
  hooks.hostApplyFinished?.(w.host.name, w.failure);
}

function failureOf(e: unknown, host: string, fallbackStep: string): HostFailure {
  if (e instanceof TransportError) {
    const prefix = `${e.host}: ${e.step}: `;
    const message = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
    return { step: e.step, message, unreachable: e.unreachable };
  }
  if (e instanceof InventoryError) {
    return { step: fallbackStep, message: e.problems.map((p) => formatProblem(p)).join('; '), unreachable: false };
  }
  // Not a typed error: a bug, but it stays this host's failure rather than stopping the run.
  return { step: fallbackStep, message: `internal error: ${(e as Error)?.message ?? String(e)}`, unreachable: false };
}

function hostReport(w: HostWork, request: RunRequest, now: Date): HostReport {
  const actions: ReportedAction[] = [];
  for (const m of ownPlans(w)) {
    for (const a of m.plan!.actions) {
      const r: ReportedAction = {
        module: m.module.name,
        action: a.action,
        kind: a.kind,
        name: a.name,
        reason: a.reason,
        applied: w.applied.has(a),
      };
      if (a.fingerprint !== undefined) r.fingerprint = a.fingerprint;
      if (a.before !== undefined) r.before = a.before;
      if (a.after !== undefined) r.after = a.after;
      actions.push(r);
    }
  }
  const errors = planErrors(w);
  let error: HostReport['error'];
  let status: HostStatus;
  if (w.failure) {
    status = w.failure.unreachable ? 'unreachable' : 'failed';
    error = { step: w.failure.step, message: w.failure.message };
  } else if (errors.length > 0) {
    status = 'failed';
    error = { step: 'plan', message: errors.join('; ') };
  } else if (request.check ? actions.length > 0 : w.applied.size > 0) {
    status = request.check ? 'drift' : 'changed';
  } else if (w.modules.length > 0 && w.modules.every((m) => m.coveredBy)) {
    status = 'covered';
  } else {
    status = 'ok';
  }
  // A host that failed after some actions succeeded still says what was applied (actions[].applied).

  const certificates: ReportedCertificate[] = [];
  const expiring: ReportedCertificate[] = [];
  for (const m of w.modules) {
    if (m.observed === undefined || !m.module.trustedCertificates) continue;
    for (const c of m.module.trustedCertificates(m.observed)) {
      const rc: ReportedCertificate = { name: c.name, fingerprint: c.fingerprint, type: c.type, notAfter: c.notAfter ? c.notAfter.toISOString() : '' };
      certificates.push(rc);
      if (c.notAfter && c.notAfter.getTime() - now.getTime() < request.warnDays * 86_400_000) expiring.push(rc);
    }
  }

  const report: HostReport = { host: w.host.name, status, actions, warnings: w.warnings.concat(ownPlans(w).flatMap((m) => m.plan!.warnings)), certificates, expiring };
  const coveredBy = w.modules.find((m) => m.coveredBy)?.coveredBy;
  if (coveredBy !== undefined) report.coveredBy = coveredBy;
  if (error) report.error = error;
  return report;
}

const HOST_STATUSES: HostStatus[] = ['ok', 'changed', 'drift', 'failed', 'unreachable', 'covered'];
const ACTION_TYPES: ActionType[] = ['add', 'update', 'rotate', 'remove', 'unmanaged'];

function runReport(hosts: HostReport[], request: RunRequest, mode: 'check' | 'apply', startedAt: Date, generated: GeneratedKeyPair[]): RunReport {
  const hostCounts = Object.fromEntries(HOST_STATUSES.map((s) => [s, 0])) as Record<HostStatus, number>;
  const actionCounts = Object.fromEntries(ACTION_TYPES.map((a) => [a, 0])) as Record<ActionType, number>;
  for (const h of hosts) {
    hostCounts[h.status] += 1;
    for (const a of h.actions) actionCounts[a.action] += 1;
  }
  const failed = hostCounts.failed + hostCounts.unreachable > 0;
  const exitCode = failed ? 1 : mode === 'check' && hostCounts.drift > 0 ? 2 : 0;
  return {
    tool: { name: 'reconcile', version: request.toolVersion },
    inventory: request.inventoryPath,
    playbook: request.playbookPath,
    mode,
    startedAt: startedAt.toISOString(),
    durationMs: Math.max(0, request.now().getTime() - startedAt.getTime()),
    hosts,
    generated,
    summary: { hosts: hostCounts, actions: actionCounts },
    exitCode,
  };
}
