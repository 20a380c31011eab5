/**
 * The contract every reconciled kind of thing keeps. A module is a folder under
 * src/modules/ with four faces — desired (from inventory variables), observe (over a
 * HostSession), plan (pure), apply — registered in src/modules/registry.ts. The engine
 * knows nothing else about it: adding a kind means adding a folder.
 */
import type { Problem } from '../errors.js';
import type { InventoryHost, Inventory } from '../inventory/model.js';
import type { HostSession } from '../transport/types.js';
import type { GeneratedKeyPair } from '../engine/report.js';
import type { Action, ModulePlan } from '../plan/types.js';
import type { SchemaFragment } from '../inventory/schema-build.js';

export { ACTION_SYMBOL } from '../plan/types.js';
export type { Action, ActionType, FieldChange, ModulePlan, Precondition } from '../plan/types.js';

/** Names a playbook may list under `reconcile:` (the keys of src/modules/registry.ts). */
export type ModuleName = 'incus_trust' | 'qubes_prometheus_proxy' | 'prometheus_scrape' | 'prometheus_kubernetes';

/** Words for each reason code of a module: the module's report vocabulary (`detail` is Action.detail). */
export type ReasonVocabulary<R extends string> = Record<R, (detail?: string) => string>;

export interface DesiredContext {
  inventory: Inventory;
  /** Reads a file relative to the inventory folder (injected so that desired() stays pure; read once per run). */
  readInventoryFile(relativePath: string): Buffer | undefined;
  now: Date;
  /** What this module's observeRun() read in this run (undefined without it). */
  observedRun?: unknown;
}

/**
 * Input of a module's optional observeRun step: reading that needs other hosts than the one
 * planned (the scrape targets a Prometheus host needs). Part of the read phase: it changes nothing.
 */
export interface RunObserveContext {
  inventory: Inventory;
  /** The hosts this module runs on in this run (plays ∩ --limit), inventory order. */
  hosts: InventoryHost[];
  now: Date;
  /** The run's session to any inventory host (opened on first use, reused by observe, closed by the CLI). */
  session(host: InventoryHost): Promise<HostSession>;
  /** A read shared by modules (the same key: done once per run, its result handed to each). */
  once<T>(key: string, read: () => Promise<T>): Promise<T>;
}

export interface RunObserveResult {
  /** Errors stop the run before anything is planned, like inventory errors. */
  problems: Problem[];
  /** Handed to this module's desired() as ctx.observedRun. */
  facts?: unknown;
}

/** Input of a module's optional controller plan: work on the machine reconcile runs on. */
export interface ControllerPlanContext {
  inventory: Inventory;
  hosts: InventoryHost[];
  now: Date;
  readInventoryFile(relativePath: string): Buffer | undefined;
  /** What this module's observeRun() read in this run (undefined without it). */
  observedRun?: unknown;
}

export interface PlanContext {
  now: Date;
  /** --prune given on the command line. */
  prune: boolean;
  /** Warning window for expiring certificates, days. */
  warnDays: number;
}

export interface ApplyHooks {
  /** Called before each action, for progress output; throws to refuse starting it (interrupted). */
  actionStarted(action: Action): void;
  /** Called after each action that succeeded, so the report says exactly what was applied. */
  actionApplied(action: Action): void;
}

/** A certificate made during this apply by a controller action (public parts only). */
export interface ResolvedCertificate {
  /** Absolute path of the certificate file on the controller. */
  certificatePath: string;
  pem: string;
  derBase64: string;
  fingerprint: string;
}

/**
 * What apply knows beyond the plan: values "known after apply" that earlier actions of the
 * same apply produced (a key pair the controller generated), looked up by certificate path.
 */
export interface ApplyContext {
  /** The clock (a new certificate's validity starts now). */
  now(): Date;
  certificate(certificatePath: string): ResolvedCertificate | undefined;
  /** Controller actions call it for each certificate they made. */
  resolveCertificate(cert: ResolvedCertificate): void;
  /** Key pairs made on the controller, for the report (never key material). */
  keyPairGenerated(pair: Omit<GeneratedKeyPair, 'module'>): void;
}

/** Result of reading a module's variables for one host. */
export interface DesiredResult<D> {
  /** Undefined when the host has nothing for this module. */
  desired?: D;
  problems: Problem[];
}

/**
 * A module: D is its desired state, O what it observes, P its actions' payload and R its closed
 * set of reason codes.
 */
export interface ReconcileModule<D = unknown, O = unknown, P = unknown, R extends string = string> {
  readonly name: ModuleName;
  /** The words for every reason code (rendered at the edge; JSON consumers switch on the code). */
  readonly reasons: ReasonVocabulary<R>;
  /** The variables that give a host something for this module (named when a run finds nothing to do). */
  readonly variables: readonly string[];
  /** It runs commands or reads and writes files on the host: it cannot work over HTTPS only (reach.ts). */
  readonly needsShell?: boolean;
  /** The JSON Schema of every variable it reads (its part of schema/inventory.schema.json). */
  readonly schema: SchemaFragment;
  /** Pure: this module's desired state for one host, or every problem with its location. */
  desired(host: InventoryHost, ctx: DesiredContext): DesiredResult<D>;
  /**
   * Reads the live state; throws TransportError naming host and step. `ctx` is what the plan
   * will be made with: a module may plan a first time to see what else it must read.
   */
  observe(session: HostSession, desired: D, ctx: PlanContext): Promise<O>;
  /** Pure: the difference between desired and observed. */
  plan(desired: D, observed: O, ctx: PlanContext): ModulePlan<P, R>;
  /**
   * Applies the actions of a plan in order, calling hooks around each and checking each action's
   * precondition first; stops at the first failure by throwing (TransportError), leaving later
   * actions unapplied.
   */
  apply(session: HostSession, plan: ModulePlan<P, R>, hooks: ApplyHooks, ctx: ApplyContext): Promise<void>;
  /**
   * Optional: the trusted certificates this module observed on the host, for the report's
   * `certificates` / `expiring` (audit, expiry metrics). Pure.
   */
  trustedCertificates?(observed: O, desired: D): ObservedCertificate[];
  /** Optional: reads across hosts once per run, before desired() (see RunObserveContext). */
  observeRun?(ctx: RunObserveContext): Promise<RunObserveResult>;
  /**
   * Optional, pure over what was read: work on the controller (a key pair to generate). The
   * plan's `module` names the module whose applyController carries it out (work two modules
   * need is planned by both and kept once). Undefined: the inventory asks nothing of it.
   */
  planController?(ctx: ControllerPlanContext): ModulePlan | undefined;
  /** Applies controller actions planned under this module's name, before any host. */
  applyController?(plan: ModulePlan, hooks: ApplyHooks, ctx: ApplyContext): Promise<void>;
}

/** A certificate a host trusts, as a module observed it (see RunReport's ReportedCertificate). */
export interface ObservedCertificate {
  name: string;
  fingerprint: string;
  type: string;
  /** Undefined when the host returned something unparsable. */
  notAfter?: Date;
  /** The inventory names this certificate (it is the inventory's to renew). */
  managed: boolean;
}
