import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { HostReport, RunReport } from '../engine/report.js';
import { escapeLabelValue, renderFailedRunMetrics, renderMetrics } from './metrics-file.js';

const run = promisify(execFile);
const FP_A = 'a'.repeat(64);
const FP_B = 'b'.repeat(64);
const FP_C = 'c'.repeat(64);

function host(h: Partial<HostReport> & Pick<HostReport, 'host' | 'status'>): HostReport {
  return { actions: [], warnings: [], certificates: [], expiring: [], ...h };
}

/** A check run: web1 drifted (one to add, one to update, one unmanaged), web2 covered by web1, web3 down. */
const report: RunReport = {
  tool: { name: 'reconcile', version: '0.1.0' },
  inventory: '/srv/infra/inventory.yaml',
  playbook: '/usr/lib/reconcile/playbooks/site.yaml',
  mode: 'check',
  startedAt: '2026-11-23T13:00:00.000Z',
  durationMs: 1250,
  hosts: [
    host({
      host: 'web1',
      status: 'drift',
      actions: [
        { module: 'incus_trust', action: 'add', kind: 'incus certificate', name: 'alice', reason: 'missing', fingerprint: FP_A, applied: false },
        {
          module: 'incus_trust',
          action: 'update',
          kind: 'incus certificate',
          name: 'bob',
          reason: 'fields differ: projects',
          fingerprint: FP_B,
          applied: false,
        },
        {
          module: 'incus_trust',
          action: 'unmanaged',
          kind: 'incus certificate',
          name: 'stranger',
          reason: 'not in inventory',
          fingerprint: FP_C,
          applied: false,
        },
      ],
      certificates: [
        { name: 'stranger', fingerprint: FP_C, type: 'client', notAfter: '2027-01-01T00:00:00.000Z' },
        { name: 'bob "the\\builder"', fingerprint: FP_B, type: 'client', notAfter: '2036-11-21T13:00:00.000Z' },
        { name: 'broken', fingerprint: 'd'.repeat(64), type: 'client', notAfter: '' },
      ],
      expiring: [],
    }),
    host({
      host: 'web2',
      status: 'covered',
      coveredBy: 'web1',
      certificates: [{ name: 'prometheus', fingerprint: FP_A, type: 'metrics', notAfter: '2026-12-01T00:00:00.000Z' }],
      expiring: [{ name: 'prometheus', fingerprint: FP_A, type: 'metrics', notAfter: '2026-12-01T00:00:00.000Z' }],
    }),
    host({ host: 'web3', status: 'unreachable', error: { step: 'connect', message: 'connection refused' } }),
  ],
  summary: {
    hosts: { ok: 0, changed: 0, drift: 1, failed: 0, unreachable: 1, covered: 1 },
    actions: { add: 1, update: 1, rotate: 0, remove: 0, unmanaged: 1 },
  },
  exitCode: 1,
};

const I = 'inventory="/srv/infra/inventory.yaml"';

describe('renderMetrics', () => {
  it('renders run, host status, pending actions, unmanaged, expiring and certificate expiry families', () => {
    expect(renderMetrics(report)).toBe(`# HELP reconcile_last_run_info Constant 1, labelled with what the last run was.
# TYPE reconcile_last_run_info gauge
reconcile_last_run_info{${I},mode="check",version="0.1.0",playbook="/usr/lib/reconcile/playbooks/site.yaml"} 1
# HELP reconcile_last_run_timestamp_seconds Unix time at which the last run started.
# TYPE reconcile_last_run_timestamp_seconds gauge
reconcile_last_run_timestamp_seconds{${I}} 1795438800
# HELP reconcile_last_run_duration_seconds How long the last run took.
# TYPE reconcile_last_run_duration_seconds gauge
reconcile_last_run_duration_seconds{${I}} 1.25
# HELP reconcile_last_run_success 1 when the last run reached every host and nothing failed (exit code 0 or 2), else 0.
# TYPE reconcile_last_run_success gauge
reconcile_last_run_success{${I}} 0
# HELP reconcile_last_run_exit_code Exit code of the last run: 0 in sync or applied cleanly, 2 drift found by --check, 1 an error.
# TYPE reconcile_last_run_exit_code gauge
reconcile_last_run_exit_code{${I}} 1
# HELP reconcile_host_status Status of a host in the last run: 1 for its current status, 0 for the others.
# TYPE reconcile_host_status gauge
reconcile_host_status{${I},host="web1",status="ok"} 0
reconcile_host_status{${I},host="web1",status="changed"} 0
reconcile_host_status{${I},host="web1",status="drift"} 1
reconcile_host_status{${I},host="web1",status="failed"} 0
reconcile_host_status{${I},host="web1",status="unreachable"} 0
reconcile_host_status{${I},host="web1",status="covered"} 0
reconcile_host_status{${I},host="web2",status="ok"} 0
reconcile_host_status{${I},host="web2",status="changed"} 0
reconcile_host_status{${I},host="web2",status="drift"} 0
reconcile_host_status{${I},host="web2",status="failed"} 0
reconcile_host_status{${I},host="web2",status="unreachable"} 0
reconcile_host_status{${I},host="web2",status="covered"} 1
reconcile_host_status{${I},host="web3",status="ok"} 0
reconcile_host_status{${I},host="web3",status="changed"} 0
reconcile_host_status{${I},host="web3",status="drift"} 0
reconcile_host_status{${I},host="web3",status="failed"} 0
reconcile_host_status{${I},host="web3",status="unreachable"} 1
reconcile_host_status{${I},host="web3",status="covered"} 0
# HELP reconcile_host_pending_actions Actions planned on a host and not applied, per kind of action (in check mode: the drift).
# TYPE reconcile_host_pending_actions gauge
reconcile_host_pending_actions{${I},host="web1",action="add"} 1
reconcile_host_pending_actions{${I},host="web1",action="update"} 1
reconcile_host_pending_actions{${I},host="web1",action="rotate"} 0
reconcile_host_pending_actions{${I},host="web1",action="remove"} 0
reconcile_host_pending_actions{${I},host="web2",action="add"} 0
reconcile_host_pending_actions{${I},host="web2",action="update"} 0
reconcile_host_pending_actions{${I},host="web2",action="rotate"} 0
reconcile_host_pending_actions{${I},host="web2",action="remove"} 0
reconcile_host_pending_actions{${I},host="web3",action="add"} 0
reconcile_host_pending_actions{${I},host="web3",action="update"} 0
reconcile_host_pending_actions{${I},host="web3",action="rotate"} 0
reconcile_host_pending_actions{${I},host="web3",action="remove"} 0
# HELP reconcile_host_unmanaged_certificates Trusted certificates on a host that the inventory does not name.
# TYPE reconcile_host_unmanaged_certificates gauge
reconcile_host_unmanaged_certificates{${I},host="web1"} 1
reconcile_host_unmanaged_certificates{${I},host="web2"} 0
reconcile_host_unmanaged_certificates{${I},host="web3"} 0
# HELP reconcile_host_expiring_certificates Trusted certificates on a host expiring within the warning window.
# TYPE reconcile_host_expiring_certificates gauge
reconcile_host_expiring_certificates{${I},host="web1"} 0
reconcile_host_expiring_certificates{${I},host="web2"} 1
reconcile_host_expiring_certificates{${I},host="web3"} 0
# HELP reconcile_certificate_expiry_timestamp_seconds Unix time at which a trusted certificate expires (notAfter).
# TYPE reconcile_certificate_expiry_timestamp_seconds gauge
reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="bob \\"the\\\\builder\\"",fingerprint="${FP_B}",type="client"} 2110885200
reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="stranger",fingerprint="${FP_C}",type="client"} 1798761600
reconcile_certificate_expiry_timestamp_seconds{${I},host="web2",name="prometheus",fingerprint="${FP_A}",type="metrics"} 1796083200
`);
  });

  it('renders only the run-level series, success 0, for a run that ended before a report', () => {
    expect(renderFailedRunMetrics({ inventory: '/srv/inv', startedAt: new Date('2026-11-23T13:00:00Z'), durationMs: 40, mode: 'apply', version: '0.1.0' }))
      .toBe(`# HELP reconcile_last_run_info Constant 1, labelled with what the last run was.
# TYPE reconcile_last_run_info gauge
reconcile_last_run_info{inventory="/srv/inv",mode="apply",version="0.1.0"} 1
# HELP reconcile_last_run_timestamp_seconds Unix time at which the last run started.
# TYPE reconcile_last_run_timestamp_seconds gauge
reconcile_last_run_timestamp_seconds{inventory="/srv/inv"} 1795438800
# HELP reconcile_last_run_duration_seconds How long the last run took.
# TYPE reconcile_last_run_duration_seconds gauge
reconcile_last_run_duration_seconds{inventory="/srv/inv"} 0.04
# HELP reconcile_last_run_success 1 when the last run reached every host and nothing failed (exit code 0 or 2), else 0.
# TYPE reconcile_last_run_success gauge
reconcile_last_run_success{inventory="/srv/inv"} 0
# HELP reconcile_last_run_exit_code Exit code of the last run: 0 in sync or applied cleanly, 2 drift found by --check, 1 an error.
# TYPE reconcile_last_run_exit_code gauge
reconcile_last_run_exit_code{inventory="/srv/inv"} 1
`);
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
  });

  it('is accepted by the real `promtool check metrics`', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reconcile-metrics-'));
    try {
      for (const [name, text] of [
        ['report.prom', renderMetrics(report)],
        ['in-sync.prom', renderMetrics({ ...report, hosts: [host({ host: 'web1', status: 'ok' })], exitCode: 0 })],
        ['failed.prom', renderFailedRunMetrics({ inventory: '/srv/inv', startedAt: new Date(), durationMs: 5, mode: 'check', version: '0.1.0' })],
      ] as const) {
        const file = join(dir, name);
        await writeFile(file, text);
        // promtool reads the exposition on stdin; lint problems go to stdout/stderr with exit 1.
        const { stdout, stderr } = await run('sh', ['-c', `promtool check metrics < "${file}"`]);
        expect({ name, stdout, stderr }).toEqual({ name, stdout: '', stderr: '' });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
