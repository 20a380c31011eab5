/**
 * The read phase and the plan: inventory + playbook → hosts → desired → connect + observe →
 * plan. `planRun` changes nothing anywhere (no host, no local file): controller-side work such
 * as generating a key pair is an action of the plan, done by apply. Every command that needs
 * the live state (run, audit, scrape-config) reads it here.
 *
 * - One connection per host for the whole run, opened through the SessionPool (the same pool
 *   serves apply); hosts are read in parallel up to `forks`.
 * - Hosts sharing a module's state (an Incus cluster's trust store: ModulePlan.scope) are
 *   planned once, through the first reachable member in name order; the others are `covered`.
 * - A host that cannot be read has a failure in its HostPlan; the other hosts go on.
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { formatProblem, InventoryError, TransportError, UsageError, type Problem } from '../errors.js';
import type { Inventory, InventoryHost } from '../inventory/model.js';
import type { ModuleName, PlanContext, ReconcileModule } from '../modules/types.js';
import { PLAN_FORMAT_VERSION, type HostFailure, type HostPlan, type ModulePlan, type PlannedCertificate, type RunPlan } from '../plan/types.js';
import { shellMismatch } from '../modules/reach.js';
import type { ConnectionSpec, HostSession, TransportOptions } from '../transport/types.js';

/** One play of a playbook: which modules to reconcile on which host pattern. */
export interface Play {
  name: string;
  hosts: string;
  reconcile: ModuleName[];
}

export interface PlanRequest {
  /** The (first) inventory source: the plan is named after it. */
  inventoryPath: string;
  /** Every source, read as one inventory (default: inventoryPath alone). */
  inventoryPaths?: string[];
  playbookPath: string;
  /** --limit pattern, intersected with every play's hosts. */
  limit?: string;
  /** Hosts read in parallel. */
  forks: number;
  /** --prune */
  prune: boolean;
  /** Certificates expiring within this many days are reported as expiring. */
  warnDays: number;
  /** --strict: a near-miss of a variable reconcile reads is an error. */
  strict?: boolean;
  transport: TransportOptions;
  /** The clock, passed in (tests pin it). */
  now: () => Date;
  toolVersion: string;
  /**
   * Nothing will be asked of a host once it is read (--check): its connection is closed then,
   * while others are still read, not at the end with every other (at 100 hosts the run's last
   * ~100 ms were spent closing them all at once).
   */
  closeAfterReading?: boolean;
}

/** Progress of the read phase, for the views. Every hook is optional. */
export interface PlanHooks {
  /** Inventory or playbook warnings (already formatted with file:line:column). */
  warning?(message: string): void;
  /** The hosts this run reads, in inventory order, before anything connects. */
  hostsSelected?(hosts: string[]): void;
  hostStep?(host: string, step: 'connect' | 'observe'): void;
  /** How a host is about to be reached (-vvv shows it, with where each setting came from). */
  hostConnecting?(host: string, connection: ConnectionSpec): void;
  /** One host is read and planned (or failed): its line may stop spinning. */
  hostPlanned?(plan: HostPlan): void;
}

/** The engine's seams to the other stages: real ones in inputs.ts, in-memory ones in unit tests. */
export interface PlanDeps {
  loadInventory(path: string | readonly string[]): Promise<Inventory>;
  /** Every problem (errors and warnings) of the loaded inventory; it runs the modules' desired() for their rules. */
  validateInventory(
    inventory: Inventory,
    now: Date,
    readFile: (relativePath: string) => Buffer | undefined,
    modules: Record<string, ReconcileModule<any, any, any, any>>,
    options?: { strict?: boolean },
  ): Problem[] | Promise<Problem[]>;
  loadPlaybook(path: string): Promise<{ plays: Play[]; problems: Problem[] }>;
  /** Hosts matching an Ansible pattern, in inventory order; warnings for terms matching nothing. */
  selectHosts(inventory: Inventory, pattern: string): { hosts: string[]; warnings: string[] };
  connectionSpec(host: InventoryHost, inventory: Inventory, transport: TransportOptions): ConnectionSpec | Promise<ConnectionSpec>;
  readInventoryFile(inventory: Inventory, relativePath: string): Buffer | undefined;
  modules: Record<string, ReconcileModule<any, any, any, any>>;
}

/**
 * One connection per host for the whole run, shared by the read phase and apply. Opening is
 * lazy; a failed connection stays failed for the run (the host is reported once).
 */
export interface SessionPool {
  session(spec: ConnectionSpec): Promise<HostSession>;
  closeAll(): Promise<void>;
  /** Closes and drops one host's session: the next session() connects again (watch, after a failure). */
  forget?(host: string): void;
}

export function sessionPool(connect: (spec: ConnectionSpec) => Promise<HostSession>): SessionPool {
  const sessions = new Map<string, Promise<HostSession>>();
  return {
    session(spec) {
      let s = sessions.get(spec.host);
      if (!s) {
        s = connect(spec);
        sessions.set(spec.host, s);
      }
      return s;
    },
    async closeAll() {
      await Promise.all([...sessions.values()].map((s) => s.then((x) => x.close()).catch(() => undefined)));
      sessions.clear();
    },
    forget(host) {
      const s = sessions.get(host);
      sessions.delete(host);
      s?.then((x) => x.close()).catch(() => undefined);
    },
  };
}

interface ModuleWork {
  module: ReconcileModule<any, any, any, any>;
  desired: unknown;
}

interface SelectedHost {
  host: InventoryHost;
  modules: ModuleWork[];
}

/** What reading one host gave: the observed state per module, or why it could not be read. */
interface HostObservation {
  selected: SelectedHost;
  connection?: ConnectionSpec;
  observed: Map<ModuleName, unknown>;
  failure?: HostFailure;
  warnings: string[];
}

export async function planRun(request: PlanRequest, hooks: PlanHooks, deps: PlanDeps, pool: SessionPool): Promise<RunPlan> {
  const now = request.now();
  const inventory = await deps.loadInventory(request.inventoryPaths ?? request.inventoryPath);
  const readFile = onceReader(inventory, deps);
  const modules = desiredOnce(deps.modules);
  const inventoryProblems = await deps.validateInventory(inventory, now, readFile.read, modules, { strict: request.strict });
  const playbook = await deps.loadPlaybook(request.playbookPath);
  throwOnErrors([...inventoryProblems, ...playbook.problems], hooks);

  let selected = selectHosts(inventory, playbook.plays, request, hooks, modules, deps);
  const specOf = async (host: InventoryHost) => deps.connectionSpec(host, inventory, request.transport);
  const sessionOf = async (host: InventoryHost) => pool.session(await specOf(host));

  const facts = await observeAcrossHosts(inventory, selected, now, sessionOf, hooks);
  // Controller work is planned for every host a play gives the module, even one left out below.
  const played = selected.map((s) => ({ host: s.host, modules: [...s.modules] }));
  collectDesired(inventory, selected, now, readFile.read, facts);
  // A host with nothing to reconcile in any of its plays is not part of the run (nor of the report).
  selected = selected.filter((s) => s.modules.length > 0);
  const controller = planController(inventory, played, now, readFile.read, facts);
  // A selection that gives nothing anything to do is a mistake (a typo in a variable name, a
  // play on the wrong group), never an in-sync report: cron would stay green checking nothing.
  if (selected.length === 0 && !controller.considered) throw new UsageError(nothingToReconcile(playbook.plays, played, inventory, deps));
  hooks.hostsSelected?.(selected.map((s) => s.host.name));

  const planCtx = { now, prune: request.prune, warnDays: request.warnDays };
  const limit = pLimit(request.forks);
  const observations = await Promise.all(
    selected.map((s) =>
      limit(async () => {
        const observation = await observeHost(s, specOf, pool, hooks, planCtx);
        if (request.closeAfterReading && observation.connection) pool.forget?.(observation.connection.host);
        return observation;
      }),
    ),
  );
  const hosts = planHosts(observations, planCtx);
  for (const h of hosts) hooks.hostPlanned?.(h);

  return {
    format: 'reconcile-plan',
    formatVersion: PLAN_FORMAT_VERSION,
    tool: { name: 'reconcile', version: request.toolVersion },
    createdAt: now.toISOString(),
    inventory: { path: request.inventoryPath, ...inventoryDigest(inventory, readFile.files) },
    playbook: request.playbookPath,
    options: { prune: request.prune, warnDays: request.warnDays, ...(request.limit !== undefined ? { limit: request.limit } : {}) },
    controller: controller.plans,
    hosts,
  };
}

/** Which plays matched which hosts, and what their modules would have needed. */
function nothingToReconcile(plays: Play[], played: SelectedHost[], inventory: Inventory, deps: PlanDeps): string {
  const lines = ['nothing to reconcile: no selected host sets anything the plays reconcile'];
  for (const play of plays) {
    const hosts = played.filter((s) => deps.selectHosts(inventory, play.hosts).hosts.includes(s.host.name)).map((s) => s.host.name);
    const shown = hosts.length > 8 ? `${hosts.slice(0, 8).join(', ')} and ${hosts.length - 8} more` : hosts.join(', ');
    lines.push(`  play "${play.name}" (hosts: ${play.hosts}) matched ${hosts.length === 0 ? 'no host' : shown}`);
    for (const name of play.reconcile) {
      const module = deps.modules[name];
      if (module) lines.push(`    ${name} needs ${orList(module.variables)} on a host`);
    }
  }
  lines.push("  (a misspelled variable name is the usual cause: 'reconcile validate -i INVENTORY' names near misses)");
  return lines.join('\n');
}

function orList(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? 'its variables') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

/**
 * The inventory's fingerprint: every inventory and *_vars file and every file read beside it
 * (certificates), each by SHA-256, and one digest over the list. A saved plan carries it so that
 * apply can refuse a plan made from another inventory.
 */
export function inventoryDigest(
  inventory: Pick<Inventory, 'files' | 'sources' | 'baseDir'>,
  readFiles: ReadonlyMap<string, Buffer | undefined>,
): { digest: string; files: { path: string; sha256: string }[] } {
  const entries = new Map<string, string>();
  for (const file of inventory.files) {
    const text = inventory.sources?.get(file);
    if (text !== undefined) entries.set(relativeTo(inventory.baseDir, file), sha256(text));
  }
  for (const [rel, bytes] of readFiles) entries.set(relativeTo(inventory.baseDir, rel), bytes ? sha256(bytes) : 'absent');
  const files = [...entries.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, hash]) => ({ path, sha256: hash }));
  const digest = sha256(files.map((f) => `${f.sha256}  ${f.path}\n`).join(''));
  return { digest, files };
}

function relativeTo(baseDir: string, path: string): string {
  const base = baseDir.endsWith('/') ? baseDir : `${baseDir}/`;
  return path.startsWith(base) ? path.slice(base.length) : path;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * desired() once per host and module in a run: validation runs it for the modules' rules, the
 * plan needs the same result. Remembered per host object when the module read no cross-host
 * facts (prometheus_scrape's targets arrive only after validation: it runs again with them).
 */
function desiredOnce(modules: PlanDeps['modules']): PlanDeps['modules'] {
  return Object.fromEntries(
    Object.entries(modules).map(([name, module]) => {
      const seen = new WeakMap<InventoryHost, ReturnType<typeof module.desired>>();
      const desired: typeof module.desired = (host, ctx) => {
        if (ctx.observedRun !== undefined) return module.desired(host, ctx);
        let result = seen.get(host);
        if (!result) {
          result = module.desired(host, ctx);
          seen.set(host, result);
        }
        return result;
      };
      return [name, { ...module, desired }];
    }),
  );
}

/**
 * Files beside the inventory are read once per run, whichever stage asks (validation, every
 * host's desired(), the controller plan): the same Buffer each time, so what modules parse from
 * it is cached too. The files read are part of the inventory digest.
 */
function onceReader(inventory: Inventory, deps: PlanDeps) {
  const files = new Map<string, Buffer | undefined>();
  return {
    files,
    read(relativePath: string): Buffer | undefined {
      if (!files.has(relativePath)) files.set(relativePath, deps.readInventoryFile(inventory, relativePath));
      return files.get(relativePath);
    },
  };
}

function throwOnErrors(problems: Problem[], hooks: PlanHooks): void {
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new InventoryError(problems);
  for (const p of problems) hooks.warning?.(formatProblem(p));
}

/** Hosts of every play ∩ --limit, in inventory order, each with its modules in play order. */
function selectHosts(
  inventory: Inventory,
  plays: Play[],
  request: PlanRequest,
  hooks: PlanHooks,
  modules: PlanDeps['modules'],
  deps: PlanDeps,
): SelectedHost[] {
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
  const out: SelectedHost[] = [];
  for (const host of inventory.hosts.values()) {
    const names = modulesOf.get(host.name);
    if (!names) continue;
    out.push({ host, modules: names.map((n) => ({ module: modules[n]!, desired: undefined })) });
  }
  return out;
}

/** Each module's optional observeRun step, once per run, with the hosts it runs on. */
async function observeAcrossHosts(
  inventory: Inventory,
  selected: SelectedHost[],
  now: Date,
  session: (host: InventoryHost) => Promise<HostSession>,
  hooks: PlanHooks,
): Promise<Map<ModuleName, unknown>> {
  const facts = new Map<ModuleName, unknown>();
  const problems: Problem[] = [];
  const modules = [...new Set(selected.flatMap((s) => s.modules.map((m) => m.module)))];
  const reads = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    if (!reads.has(key)) reads.set(key, read());
    return reads.get(key) as Promise<T>;
  };
  for (const module of modules) {
    if (!module.observeRun) continue;
    const hosts = selected.filter((s) => s.modules.some((m) => m.module === module)).map((s) => s.host);
    const result = await module.observeRun({ inventory, hosts, now, session, once });
    problems.push(...result.problems);
    facts.set(module.name, result.facts);
  }
  throwOnErrors(problems, hooks);
  return facts;
}

/** Desired state of every host and module, before any connection: every error at once. */
function collectDesired(
  inventory: Inventory,
  selected: SelectedHost[],
  now: Date,
  readInventoryFile: (rel: string) => Buffer | undefined,
  facts: Map<ModuleName, unknown>,
): void {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const s of selected) {
    for (const m of s.modules) {
      const result = m.module.desired(s.host, { inventory, now, readInventoryFile, observedRun: facts.get(m.module.name) });
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
    s.modules = s.modules.filter((m) => m.desired !== undefined);
  }
  // Warnings were reported by validation already (it reads desired() too): only errors matter here.
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems.filter((p) => p.severity === 'error'));
}

async function observeHost(
  s: SelectedHost,
  specOf: (host: InventoryHost) => Promise<ConnectionSpec>,
  pool: SessionPool,
  hooks: PlanHooks,
  planCtx: PlanContext,
): Promise<HostObservation> {
  const obs: HostObservation = { selected: s, observed: new Map(), warnings: [] };
  let step = 'connect';
  try {
    step = 'validate';
    const mismatch = s.modules.map((m) => shellMismatch(s.host, m.module)).find((w) => w !== undefined);
    if (mismatch) throw new TransportError(s.host.name, step, mismatch);
    step = 'read connection settings';
    obs.connection = await specOf(s.host);
    step = 'connect';
    hooks.hostStep?.(s.host.name, 'connect');
    hooks.hostConnecting?.(s.host.name, obs.connection);
    const session = await pool.session(obs.connection);
    obs.warnings.push(...(obs.connection.warnings ?? []));
    hooks.hostStep?.(s.host.name, 'observe');
    for (const m of s.modules) {
      step = `observe ${m.module.name}`;
      obs.observed.set(m.module.name, await m.module.observe(session, m.desired, planCtx));
    }
    obs.warnings.push(...(session.notes ?? []));
  } catch (e) {
    obs.failure = failureOf(e, s.host.name, step);
  }
  return obs;
}

/** Pure: plans every observed host, then gives each shared scope to its first member by name. */
function planHosts(observations: HostObservation[], ctx: PlanContext): HostPlan[] {
  interface Planned {
    obs: HostObservation;
    plans: { work: ModuleWork; plan: ModulePlan; coveredBy?: string }[];
    failure?: HostFailure;
    warnings: string[];
  }
  const planned = new Map<string, Planned>();
  const owners = new Map<string, { host: string; work: ModuleWork }>();
  const byName = [...observations].sort((a, b) => (a.selected.host.name < b.selected.host.name ? -1 : a.selected.host.name > b.selected.host.name ? 1 : 0));
  for (const obs of byName) {
    const p: Planned = { obs, plans: [], failure: obs.failure, warnings: [...obs.warnings] };
    planned.set(obs.selected.host.name, p);
    if (obs.failure) continue;
    try {
      for (const m of obs.selected.modules) p.plans.push({ work: m, plan: m.module.plan(m.desired, obs.observed.get(m.module.name), ctx) });
    } catch (e) {
      // A planner that throws (a bug, or live state of a shape nobody checked) fails this host
      // only: the other hosts are still planned, applied and reported.
      p.plans = [];
      p.failure = failureOf(e, obs.selected.host.name, 'plan');
      continue;
    }
    for (const entry of p.plans) {
      if (entry.plan.scope === undefined) continue;
      const key = `${entry.work.module.name}|${entry.plan.scope}`;
      const owner = owners.get(key);
      if (!owner) {
        owners.set(key, { host: obs.selected.host.name, work: entry.work });
        continue;
      }
      entry.coveredBy = owner.host;
      if (JSON.stringify(entry.work.desired) !== JSON.stringify(owner.work.desired)) {
        p.warnings.push(
          `${entry.work.module.name}: shares its state with ${owner.host} (${entry.plan.scope}) but its inventory variables differ; ${owner.host}'s were applied`,
        );
      }
    }
  }
  // A covered member says so when the member reconciling its shared state cannot be applied.
  for (const p of planned.values()) {
    for (const entry of p.plans) {
      if (!entry.coveredBy) continue;
      const owner = planned.get(entry.coveredBy)!;
      if (owner.failure || owner.plans.some((o) => !o.coveredBy && o.plan.errors.length > 0)) {
        p.warnings.push(`${entry.work.module.name}: ${entry.coveredBy}, through which this shared state is reconciled, failed; see its error`);
      }
    }
  }
  return observations.map((obs) => {
    const p = planned.get(obs.selected.host.name)!;
    const own = p.plans.filter((e) => !e.coveredBy);
    const hostPlan: HostPlan = {
      host: obs.selected.host.name,
      plans: own.map((e) => e.plan),
      covered: p.plans.filter((e) => e.coveredBy).map((e) => ({ module: e.work.module.name, by: e.coveredBy! })),
      warnings: [...p.warnings, ...own.flatMap((e) => e.plan.warnings)],
      certificates: trustedCertificates(obs),
    };
    if (obs.connection) hostPlan.connection = withoutWarnings(obs.connection);
    if (p.failure) hostPlan.failure = p.failure;
    return hostPlan;
  });
}

/** What a plan keeps of how a host is reached: not the warnings (reported) nor where each setting came from. */
function withoutWarnings(spec: ConnectionSpec): ConnectionSpec {
  const { warnings: _warnings, sources: _sources, ...rest } = spec;
  return rest;
}

function trustedCertificates(obs: HostObservation): PlannedCertificate[] {
  const out: PlannedCertificate[] = [];
  for (const m of obs.selected.modules) {
    const observed = obs.observed.get(m.module.name);
    if (observed === undefined || !m.module.trustedCertificates) continue;
    for (const c of m.module.trustedCertificates(observed, m.desired)) {
      const notAfter = c.notAfter ? c.notAfter.toISOString() : '';
      out.push({ name: c.name, fingerprint: c.fingerprint, type: c.type, notAfter, module: m.module.name, managed: c.managed });
    }
  }
  return out;
}

/** Controller work of every module (a key pair is planned once, whichever modules need it). */
function planController(
  inventory: Inventory,
  selected: SelectedHost[],
  now: Date,
  readInventoryFile: (rel: string) => Buffer | undefined,
  facts: Map<ModuleName, unknown>,
): { plans: ModulePlan[]; considered: boolean } {
  const modules = [...new Set(selected.flatMap((s) => s.modules.map((m) => m.module)))];
  const seen = new Set<string>();
  const plans: ModulePlan[] = [];
  let considered = false;
  for (const module of modules) {
    if (!module.planController) continue;
    const hosts = selected.filter((s) => s.modules.some((m) => m.module === module)).map((s) => s.host);
    const plan = module.planController({ inventory, hosts, now, readInventoryFile, observedRun: facts.get(module.name) });
    if (!plan) continue;
    considered = true;
    plan.actions = plan.actions.filter((a) => {
      const key = `${a.kind}|${a.name}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    if (plan.actions.length > 0 || plan.errors.length > 0 || plan.warnings.length > 0) plans.push(plan);
  }
  return { plans, considered };
}

export function failureOf(e: unknown, host: string, fallbackStep: string): HostFailure {
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
