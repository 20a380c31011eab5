/**
 * The result of a run, as a value: what the engine hands to every renderer (human text,
 * JSON, Prometheus textfile). Its JSON form is schema/report.schema.json.
 */
import type { ActionType, ModuleName } from '../modules/types.js';

/**
 * ok: in sync (or nothing to do); changed: actions applied; drift: check mode found actions;
 * failed: a step failed (planning or applying); unreachable: could not connect;
 * covered: shared state (cluster trust store) reconciled through another member.
 */
export type HostStatus = 'ok' | 'changed' | 'drift' | 'failed' | 'unreachable' | 'covered';

export interface ReportedAction {
  module: ModuleName;
  action: ActionType;
  kind: string;
  name: string;
  reason: string;
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
 * module's prepare step): where it is and its certificate's fingerprint, never key material.
 */
export interface GeneratedKeyPair {
  module: ModuleName;
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
  /** 0 in sync / applied cleanly; 2 check found drift; 1 anything failed. */
  exitCode: 0 | 1 | 2;
}
