/**
 * The plan as a value. `planRun` (src/engine/plan-run.ts) reads everything first and returns a
 * RunPlan; it changes nothing anywhere. Renderers show it, `--out` saves it (its JSON form is
 * schema/plan.schema.json), and `applyPlan` (src/engine/apply-plan.ts) executes it without
 * re-reading the inventory nor re-diffing: before each action the module checks the action's
 * precondition on the host and refuses the action when the live state moved since the plan.
 *
 * Nothing here does I/O; the types are shared by the engine, the modules and the renderers.
 */

/** What a plan may do to one thing; a closed set, rendered with Terraform's symbols. */
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
 * What an action depends on: the thing it changes as it was read while planning. `digest` is
 * the SHA-256 (hex) of the thing as the module reads it, or null when it did not exist. Apply
 * reads the thing again right before the action and refuses it when the digest differs.
 */
export interface Precondition {
  /** What was read, as a user would name it ("certificate 1a2b3c4d5e6f", "/etc/qubes/policy.d/x.policy"). */
  subject: string;
  digest: string | null;
}

/**
 * One planned change. `kind` says what it acts on (a trust entry, a policy file, a key pair …);
 * `reason` says why it was chosen, as a code of the module's closed vocabulary (rendered to words
 * at the edge, src/render/reasons.ts), with `detail` for the specifics (which fields, which date).
 * `payload` is the module's own input for apply (the PEM to add, the file text to write) and is
 * never rendered: it never holds private key material, so a plan can be saved and reviewed.
 */
export interface Action<P = unknown, R extends string = string> {
  action: ActionType;
  kind: string;
  /** What is acted on, as the user named it (certificate name, file path, VM name). */
  name: string;
  reason: R;
  detail?: string;
  fingerprint?: string;
  /** Whole before/after values, for the report (absent where there is none). */
  before?: unknown;
  after?: unknown;
  /** Field-level differences for `update`, shown by --diff. */
  changes?: FieldChange[];
  /** Text diff for files, shown by --diff. */
  diff?: string;
  /** `unmanaged` entries are reported only; false means apply has nothing to do. */
  applies: boolean;
  /** Absent for actions whose effect does not depend on what was read (enabling a service). */
  precondition?: Precondition;
  payload?: P;
}

/** What one module plans for one host (or for the controller). */
export interface ModulePlan<P = unknown, R extends string = string> {
  /** The module's registry name (src/modules/registry.ts). */
  module: string;
  actions: Action<P, R>[];
  /** Errors found while planning (e.g. a project missing on the host): the host is not applied. */
  errors: string[];
  warnings: string[];
  /**
   * Hosts that share this module's state (an Incus cluster's trust store) are planned once;
   * the scope key names that shared state. Absent: per host.
   */
  scope?: string;
}

/** How a host is reached: the transport's ConnectionSpec, kept in the plan so a saved plan needs no inventory. */
export type PlannedConnection = import('../transport/types.js').ConnectionSpec;

/** Why a host has no plan: it could not be connected or read. */
export interface HostFailure {
  step: string;
  message: string;
  unreachable: boolean;
}

/** A certificate a host trusts, as observed (for the report's expiry and audit data). */
export interface PlannedCertificate {
  name: string;
  fingerprint: string;
  type: string;
  /** ISO 8601, or '' when the host returned something unparsable. */
  notAfter: string;
  /** The module that read it (a covered member's shared store is shown by its owner only). */
  module?: string;
  /** The inventory names it: its expiry is the inventory's to act on (shown in the plan). */
  managed?: boolean;
}

/** What the run will do on one host. */
export interface HostPlan {
  host: string;
  connection?: PlannedConnection;
  /** Plans this host applies: its own, and shared ones it was chosen to reconcile. */
  plans: ModulePlan[];
  /** Modules whose shared state another member reconciles. */
  covered: { module: string; by: string }[];
  /** Set when connecting or observing failed: nothing is planned. */
  failure?: HostFailure;
  warnings: string[];
  /** Trusted certificates seen on the host. */
  certificates: PlannedCertificate[];
}

/** The version of a saved plan's format; a plan of another version is refused. */
export const PLAN_FORMAT_VERSION = 1;

export interface RunPlan {
  format: 'reconcile-plan';
  formatVersion: typeof PLAN_FORMAT_VERSION;
  tool: { name: 'reconcile'; version: string };
  /** When the plan was made (ISO 8601); apply refuses plans older than --max-age. */
  createdAt: string;
  /** The inventory it came from; apply refuses a plan whose inventory changed since. */
  inventory: { path: string; digest: string; files: { path: string; sha256: string }[] };
  playbook: string;
  options: { prune: boolean; warnDays: number; limit?: string };
  /** Work on the machine reconcile runs on (generating a key pair), done before any host. */
  controller: ModulePlan[];
  hosts: HostPlan[];
}

/** Every action of a plan, with where it is applied. */
export function* allActions(plan: Pick<RunPlan, 'controller' | 'hosts'>): Generator<{ host: string; module: string; action: Action }> {
  for (const p of plan.controller) for (const a of p.actions) yield { host: CONTROLLER, module: p.module, action: a };
  for (const h of plan.hosts) for (const p of h.plans) for (const a of p.actions) yield { host: h.host, module: p.module, action: a };
}

/** The name the controller's work is shown under. */
export const CONTROLLER = 'controller';
