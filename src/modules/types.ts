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

/** Names a playbook may list under `reconcile:`. */
export type ModuleName = 'incus_trust' | 'qubes_prometheus_proxy' | 'prometheus_scrape';

/** The five things a plan may do; a closed set, rendered with Terraform's symbols. */
export type ActionType = 'add' | 'update' | 'rotate' | 'remove' | 'unmanaged';

export const ACTION_SYMBOL: Record<ActionType, string> = {
  add: '+',
  update: '~',
  rotate: '-/+',
  remove: '-',
  unmanaged: '?',
};

/** One field that differs, for --diff and the JSON report. */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/**
 * One planned change. `kind` says what it acts on (a trust entry, a policy file, a Qubes
 * service, a key pair …); `reason` says why it was chosen. `data` is the module's own
 * payload for apply (e.g. the PEM to add, the ETag read at observe time) and is never
 * rendered — it must not hold private key material.
 */
export interface Action {
  action: ActionType;
  kind: string;
  /** What is acted on, as the user named it (certificate name, file path, VM name). */
  name: string;
  reason: string;
  fingerprint?: string;
  /** Whole before/after values, for the report (absent where there is none). */
  before?: unknown;
  after?: unknown;
  /** Field-level differences for `update`, shown by --diff. */
  changes?: FieldChange[];
  /** Text diff for files (unified diff), shown by --diff. */
  diff?: string;
  /** `unmanaged` entries are reported only; false means apply has nothing to do. */
  applies: boolean;
  data?: unknown;
}

/** What a module plans for one host. */
export interface ModulePlan {
  module: ModuleName;
  actions: Action[];
  /** Errors found while planning (e.g. a project missing on the host): the host is not applied. */
  errors: string[];
  warnings: string[];
  /**
   * Hosts that share this module's state (an Incus cluster's trust store) are planned once;
   * the scope key names that shared state. Absent: per host.
   */
  scope?: string;
}

export interface DesiredContext {
  inventory: Inventory;
  /** Reads a file relative to the inventory folder (injected so that desired() stays pure). */
  readInventoryFile(relativePath: string): Buffer | undefined;
  now: Date;
  /** What this module's prepare() returned as `facts` in this run (undefined without prepare). */
  prepared?: unknown;
}

/**
 * Input of a module's optional prepare step, run once per run before any desired(): for work
 * that must happen before the desired state can be read (generating a key pair in apply mode)
 * or that needs other hosts than the one planned (the scrape targets a Prometheus host needs).
 */
export interface PrepareContext {
  inventory: Inventory;
  /** The hosts this module runs on in this run (plays ∩ --limit), inventory order. */
  hosts: InventoryHost[];
  check: boolean;
  now: Date;
  /** The run's session to any inventory host (opened on first use, reused by observe, closed by the engine). */
  session(host: InventoryHost): Promise<HostSession>;
}

export interface PrepareResult {
  /** Errors stop the run before anything connects for planning, like inventory errors. */
  problems: Problem[];
  /** Handed to this module's desired() as ctx.prepared. */
  facts?: unknown;
  /** Key pairs this step made on the controller, shown to the user and in the report. */
  generated?: Omit<GeneratedKeyPair, 'module'>[];
}

export interface PlanContext {
  now: Date;
  /** --prune given on the command line. */
  prune: boolean;
  /** Warning window for expiring certificates, days. */
  warnDays: number;
}

export interface ApplyHooks {
  /** Called before each action, for progress output. */
  actionStarted(action: Action): void;
  /** Called after each action that succeeded, so the report says exactly what was applied. */
  actionApplied(action: Action): void;
}

/** Result of reading a module's variables for one host. */
export interface DesiredResult<D> {
  /** Undefined when the host has nothing for this module. */
  desired?: D;
  problems: Problem[];
}

export interface ReconcileModule<D = unknown, O = unknown> {
  readonly name: ModuleName;
  /** Pure: this module's desired state for one host, or every problem with its location. */
  desired(host: InventoryHost, ctx: DesiredContext): DesiredResult<D>;
  /** Reads the live state; throws TransportError naming host and step. */
  observe(session: HostSession, desired: D): Promise<O>;
  /** Pure: the difference between desired and observed. */
  plan(desired: D, observed: O, ctx: PlanContext): ModulePlan;
  /**
   * Applies the actions of a plan in order, calling hooks around each; stops at the first
   * failure by throwing (TransportError), leaving later actions unapplied.
   */
  apply(session: HostSession, plan: ModulePlan, hooks: ApplyHooks): Promise<void>;
  /**
   * Optional: the trusted certificates this module observed on the host, for the report's
   * `certificates` / `expiring` (audit, expiry metrics). Pure.
   */
  trustedCertificates?(observed: O): ObservedCertificate[];
  /** Optional: runs once per run before desired() (see PrepareContext). */
  prepare?(ctx: PrepareContext): Promise<PrepareResult>;
}

/** A certificate a host trusts, as a module observed it (see RunReport's ReportedCertificate). */
export interface ObservedCertificate {
  name: string;
  fingerprint: string;
  type: string;
  /** Undefined when the host returned something unparsable. */
  notAfter?: Date;
}
