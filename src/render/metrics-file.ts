/**
 * The Prometheus view of a run: text exposition format (version 0.0.4) for node_exporter's
 * textfile collector. Pure: a RunReport in, the file's text out (written by src/cli/write-atomic.ts).
 *
 * Every series carries `inventory` (the inventory's path), so files of several inventories
 * can sit in one textfile folder without clashing. Host status is a state set: one series per
 * possible status, 1 for the host's current one, so alert rules can match
 * `reconcile_host_status{status="drift"} == 1`.
 */
import type { HostReport, HostStatus, RunReport } from '../engine/report.js';
import type { ActionType } from '../modules/types.js';

const HOST_STATUSES: HostStatus[] = ['ok', 'changed', 'drift', 'failed', 'unreachable', 'covered'];
/** Actions that change something when applied; `unmanaged` is counted on its own. */
const PENDING_ACTIONS: Exclude<ActionType, 'unmanaged'>[] = ['add', 'update', 'rotate', 'remove'];

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'gauge';
  samples: { labels: Labels; value: number }[];
}

/**
 * A run that ended before it had a report (invalid inventory, lock held, internal error):
 * enough for "reconcile is failing" alerts.
 */
export interface FailedRun {
  inventory: string;
  startedAt: Date;
  durationMs: number;
  mode: 'check' | 'apply';
  version: string;
}

export function renderMetrics(report: RunReport): string {
  const inv = { inventory: report.inventory };
  const families = runFamilies({
    inventory: report.inventory,
    startedAt: new Date(report.startedAt),
    durationMs: report.durationMs,
    mode: report.mode,
    version: report.tool.version,
    playbook: report.playbook,
    exitCode: report.exitCode,
  });

  const status: Family = gauge('reconcile_host_status', 'Status of a host in the last run: 1 for its current status, 0 for the others.');
  const pending: Family = gauge('reconcile_host_pending_actions', 'Actions planned on a host and not applied, per kind of action (in check mode: the drift).');
  const unmanaged: Family = gauge('reconcile_host_unmanaged_certificates', 'Trusted certificates on a host that the inventory does not name.');
  const expiring: Family = gauge('reconcile_host_expiring_certificates', 'Trusted certificates on a host expiring within the warning window.');
  const expiry: Family = gauge('reconcile_certificate_expiry_timestamp_seconds', 'Unix time at which a trusted certificate expires (notAfter).');

  for (const h of report.hosts) {
    const host = { ...inv, host: h.host };
    for (const s of HOST_STATUSES) status.samples.push({ labels: { ...host, status: s }, value: h.status === s ? 1 : 0 });
    for (const a of PENDING_ACTIONS) {
      pending.samples.push({ labels: { ...host, action: a }, value: h.actions.filter((x) => x.action === a && !x.applied).length });
    }
    unmanaged.samples.push({ labels: host, value: h.actions.filter((x) => x.action === 'unmanaged').length });
    expiring.samples.push({ labels: host, value: h.expiring.length });
    expiry.samples.push(...certificateSamples(h, host));
  }
  families.push(status, pending, unmanaged, expiring, expiry);
  return renderFamilies(families);
}

/** The run-level series only, with success 0 and exit code 1. */
export function renderFailedRunMetrics(run: FailedRun): string {
  return renderFamilies(runFamilies({ ...run, playbook: undefined, exitCode: 1 }));
}

function runFamilies(run: FailedRun & { playbook: string | undefined; exitCode: number }): Family[] {
  const inv = { inventory: run.inventory };
  const info: Labels = { ...inv, mode: run.mode, version: run.version };
  if (run.playbook !== undefined) info.playbook = run.playbook;
  return [
    one('reconcile_last_run_info', 'Constant 1, labelled with what the last run was.', info, 1),
    one('reconcile_last_run_timestamp_seconds', 'Unix time at which the last run started.', inv, run.startedAt.getTime() / 1000),
    one('reconcile_last_run_duration_seconds', 'How long the last run took.', inv, run.durationMs / 1000),
    one('reconcile_last_run_success', '1 when the last run reached every host and nothing failed (exit code 0 or 2), else 0.', inv, run.exitCode === 1 ? 0 : 1),
    one('reconcile_last_run_exit_code', 'Exit code of the last run: 0 in sync or applied cleanly, 2 drift found by --check, 1 an error.', inv, run.exitCode),
  ];
}

function certificateSamples(h: HostReport, host: Labels): Family['samples'] {
  const seen = new Set<string>();
  const rows = [...h.certificates]
    // An empty notAfter means the host returned a certificate that could not be parsed: no expiry to report.
    .filter((c) => c.notAfter !== '' && !Number.isNaN(Date.parse(c.notAfter)))
    .sort((a, b) => cmp(a.name, b.name) || cmp(a.fingerprint, b.fingerprint));
  const samples: Family['samples'] = [];
  for (const c of rows) {
    const labels = { ...host, name: c.name, fingerprint: c.fingerprint, type: c.type };
    const key = JSON.stringify(labels);
    // Two modules may report the same trust store entry; one series each.
    if (seen.has(key)) continue;
    seen.add(key);
    samples.push({ labels, value: Date.parse(c.notAfter) / 1000 });
  }
  return samples;
}

function gauge(name: string, help: string): Family {
  return { name, help, type: 'gauge', samples: [] };
}

function one(name: string, help: string, labels: Labels, value: number): Family {
  return { name, help, type: 'gauge', samples: [{ labels, value }] };
}

function renderFamilies(families: Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(`${f.name}${renderLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return lines.join('\n') + '\n';
}

function renderLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** Label values escape backslash, double quote and line feed (exposition format 0.0.4). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
