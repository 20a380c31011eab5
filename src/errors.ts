/**
 * The few error classes of reconcile. Every user-facing error says where (file:line:column
 * and value path, or host and step) and what; only src/cli turns one into an exit code.
 * Anything that is not one of these is a bug and is reported as an InternalError.
 */

/** A place in an inventory, playbook or other user file. Lines and columns count from 1. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** One problem found while loading or validating user input. Validation collects them all. */
export interface Problem {
  severity: 'error' | 'warning';
  /** Where the offending value is; absent only when there is no file (e.g. a missing -i path). */
  location?: SourceLocation;
  /** Path of the value, Ansible-style: `all.vars.incus_trusted_clients[2].projects`. */
  valuePath?: string;
  message: string;
  /** The source line, for a caret under `location.column`. */
  sourceLine?: string;
}

/** Bad command-line use: one line, exit 1. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The inventory or playbook is not usable; carries every problem found. */
export class InventoryError extends Error {
  override readonly name = 'InventoryError';
  constructor(readonly problems: Problem[]) {
    super(`${problems.filter((p) => p.severity === 'error').length} problem(s) in the inventory`);
  }
}

/** A host could not be reached or a step on it failed. Lives in that host's result. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly host: string,
    /** What was being done: "connect", "verify host key", "read trust store", "add certificate web" … */
    readonly step: string,
    message: string,
    /** True when the host itself could not be reached (as opposed to a failed step on it). */
    readonly unreachable = false,
    options?: { cause?: unknown },
  ) {
    super(`${host}: ${step}: ${message}`, options);
  }
}

/** A bug in reconcile, never the user's fault. */
export class InternalError extends Error {
  override readonly name = 'InternalError';
}

/** Renders a problem as `file:line:column: severity: path: message` plus the source line and a caret. */
export function formatProblem(p: Problem): string {
  const where = p.location ? `${p.location.file}:${p.location.line}:${p.location.column}: ` : '';
  const path = p.valuePath ? `${p.valuePath}: ` : '';
  let text = `${where}${p.severity}: ${path}${p.message}`;
  if (p.sourceLine !== undefined && p.location) {
    text += `\n    ${p.sourceLine}\n    ${' '.repeat(Math.max(0, p.location.column - 1))}^`;
  }
  return text;
}
