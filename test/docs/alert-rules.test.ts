/**
 * The example alert rules of docs/operations.md, checked with the real promtool: syntax
 * (`promtool check rules`) and behaviour (`promtool test rules`) on series shaped exactly as
 * reconcile's --metrics-file writes them. The rules quoted in the doc must be the file's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const RULES = join(REPO, 'docs/prometheus/reconcile-alerts.yaml');
const WATCH_RULES = join(REPO, 'docs/prometheus/reconcile-watch-alerts.yaml');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reconcile-rules-'));
  await copyFile(RULES, join(dir, 'rules.yaml'));
  await copyFile(WATCH_RULES, join(dir, 'watch-rules.yaml'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const I = 'inventory="/srv/infra/hosts.yaml"';
const DAY = 86_400;

describe('example alert rules', () => {
  it('pass `promtool check rules`', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', 'rules.yaml'], { cwd: dir });
    expect(stdout).toBe('Checking rules.yaml\n  SUCCESS: 7 rules found\n\n');
  });

  it('are the ones docs/operations.md shows', () => {
    const doc = readFileSync(join(REPO, 'docs/operations.md'), 'utf8');
    const rules = readFileSync(RULES, 'utf8');
    expect(doc).toContain('```yaml\n' + rules.replace(/^#.*\n/gm, '') + '```');
  });

  it('fire on drift, failures, a stale run and certificates expiring soon (`promtool test rules`)', async () => {
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          // Samples every minute: a gap longer than the 5 min lookback would reset `for:`.
          interval: '1m',
          input_series: [
            { series: `reconcile_host_status{${I},host="web1",status="drift"}`, values: '1x300' },
            { series: `reconcile_host_status{${I},host="web2",status="drift"}`, values: '0x300' },
            { series: `reconcile_host_status{${I},host="web3",status="unreachable"}`, values: '1x300' },
            { series: `reconcile_host_unmanaged_certificates{${I},host="web1"}`, values: '2x300' },
            { series: `reconcile_host_unmanaged_certificates{${I},host="web2"}`, values: '0x300' },
            { series: `reconcile_last_run_success{${I}}`, values: '0x300' },
            // The run's start time follows the clock for 30 minutes, then runs stop (the file keeps 1800).
            { series: `reconcile_last_run_timestamp_seconds{${I}}`, values: '0+60x30 1800x270' },
            {
              series: `reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="metrics",fingerprint="${'a'.repeat(64)}",type="metrics"}`,
              values: `${10 * DAY}x300`,
            },
            {
              series: `reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="alice",fingerprint="${'b'.repeat(64)}",type="client"}`,
              values: `${5 * DAY}x300`,
            },
            {
              series: `reconcile_certificate_expiry_timestamp_seconds{${I},host="web1",name="bob",fingerprint="${'c'.repeat(64)}",type="client"}`,
              values: `${400 * DAY}x300`,
            },
          ],
          alert_rule_test: [
            {
              eval_time: '2h',
              alertname: 'ReconcileDrift',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', inventory: '/srv/infra/hosts.yaml', host: 'web1', status: 'drift' },
                  exp_annotations: {
                    summary: 'web1 has drifted from the inventory',
                    description:
                      'reconcile --check found changes pending on web1 (inventory /srv/infra/hosts.yaml); `reconcile --check -i /srv/infra/hosts.yaml --limit web1` shows them.',
                  },
                },
              ],
            },
            { eval_time: '30m', alertname: 'ReconcileDrift', exp_alerts: [] },
            { eval_time: '30m', alertname: 'ReconcileUnmanagedCertificates', exp_alerts: [] },
            {
              eval_time: '2h',
              alertname: 'ReconcileUnmanagedCertificates',
              exp_alerts: [
                {
                  exp_labels: { severity: 'info', inventory: '/srv/infra/hosts.yaml', host: 'web1' },
                  exp_annotations: {
                    summary: 'web1 trusts 2 certificate(s) the inventory does not name',
                    description:
                      '`reconcile audit -i /srv/infra/hosts.yaml --limit web1` lists them; name them in the inventory to keep them, or set incus_trust_prune (or pass --prune) to remove them.',
                  },
                },
              ],
            },
            {
              eval_time: '1h',
              alertname: 'ReconcileHostFailing',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', inventory: '/srv/infra/hosts.yaml', host: 'web3', status: 'unreachable' },
                  exp_annotations: {
                    summary: 'reconcile cannot check web3 (unreachable)',
                    description: "The last runs on inventory /srv/infra/hosts.yaml found web3 unreachable; see the run's log.",
                  },
                },
              ],
            },
            {
              eval_time: '1h',
              alertname: 'ReconcileRunFailing',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', inventory: '/srv/infra/hosts.yaml' },
                  exp_annotations: {
                    summary: 'reconcile runs on /srv/infra/hosts.yaml are failing',
                    description: 'The last run exited 1; its log (journalctl -u reconcile-check, or cron mail) says why.',
                  },
                },
              ],
            },
            { eval_time: '20m', alertname: 'ReconcileNotRunning', exp_alerts: [] },
            {
              eval_time: '4h',
              alertname: 'ReconcileNotRunning',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', inventory: '/srv/infra/hosts.yaml' },
                  exp_annotations: { summary: 'reconcile has not run on /srv/infra/hosts.yaml for 3h 30m 0s' },
                },
              ],
            },
            {
              eval_time: '0m',
              alertname: 'ReconcileCertificateExpiringSoon',
              exp_alerts: ['metrics', 'alice'].map((name) => ({
                exp_labels: {
                  severity: 'warning',
                  inventory: '/srv/infra/hosts.yaml',
                  host: 'web1',
                  name,
                  fingerprint: (name === 'metrics' ? 'a' : 'b').repeat(64),
                  type: name === 'metrics' ? 'metrics' : 'client',
                },
                exp_annotations: {
                  summary: `Certificate ${name} trusted by web1 expires soon`,
                  description: `The ${name === 'metrics' ? 'metrics' : 'client'} certificate ${name} (${(name === 'metrics' ? 'a' : 'b').repeat(64)}) in the trust store of web1 expires in ${name === 'metrics' ? '10d 0h 0m 0s' : '5d 0h 0m 0s'}.`,
                },
              })),
            },
            {
              eval_time: '0m',
              alertname: 'ReconcileCertificateExpiringVerySoon',
              exp_alerts: [
                {
                  exp_labels: {
                    severity: 'critical',
                    inventory: '/srv/infra/hosts.yaml',
                    host: 'web1',
                    name: 'alice',
                    fingerprint: 'b'.repeat(64),
                    type: 'client',
                  },
                  exp_annotations: {
                    summary: 'Certificate alice trusted by web1 expires within 7 days',
                    description: `The client certificate alice (${'b'.repeat(64)}) in the trust store of web1 expires in 5d 0h 0m 0s.`,
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    await writeFile(join(dir, 'tests.yaml'), stringify(tests));
    const result = await run('promtool', ['test', 'rules', 'tests.yaml'], { cwd: dir }).catch((e: { stdout: string; stderr: string }) => e);
    expect(result.stdout + result.stderr).toBe('Unit Testing:  tests.yaml\n  SUCCESS\n\n');
  });

  describe('of reconcile watch', () => {
    it('pass `promtool check rules` and are the ones docs/operations.md shows', async () => {
      const { stdout } = await run('promtool', ['check', 'rules', 'watch-rules.yaml'], { cwd: dir });
      expect(stdout).toBe('Checking watch-rules.yaml\n  SUCCESS: 4 rules found\n\n');
      const doc = readFileSync(join(REPO, 'docs/operations.md'), 'utf8');
      expect(doc).toContain('```yaml\n' + readFileSync(WATCH_RULES, 'utf8').replace(/^#.*\n/gm, '') + '```');
    });

    it('fire on a silent watch, a closed stream, a refused inventory and a stale plan, not on a healthy one (`promtool test rules`)', async () => {
      const tests = {
        rule_files: ['watch-rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: 'up{job="reconcile-watch",instance="127.0.0.1:9814"}', values: '0x30' },
              { series: 'reconcile_watch_event_stream_up{host="web1"}', values: '0x30' },
              { series: 'reconcile_watch_event_stream_up{host="web2"}', values: '1x30' },
              { series: 'reconcile_watch_inventory_ok', values: '0x30' },
              // web1 planned at t=0 and never again; web2 planned every minute.
              { series: 'reconcile_watch_last_plan_timestamp_seconds{host="web1"}', values: '0x90' },
              { series: 'reconcile_watch_last_plan_timestamp_seconds{host="web2"}', values: '0+60x90' },
            ],
            alert_rule_test: [
              { eval_time: '3m', alertname: 'ReconcileWatchDown', exp_alerts: [] },
              {
                eval_time: '10m',
                alertname: 'ReconcileWatchDown',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', job: 'reconcile-watch', instance: '127.0.0.1:9814' },
                    exp_annotations: {
                      summary: 'reconcile watch on 127.0.0.1:9814 is not answering',
                      description: 'Prometheus cannot scrape 127.0.0.1:9814: drift is not being watched (systemctl status reconcile-watch).',
                    },
                  },
                ],
              },
              {
                eval_time: '15m',
                alertname: 'ReconcileWatchEventStreamDown',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', host: 'web1' },
                    exp_annotations: {
                      summary: 'reconcile watch has no event stream from web1',
                      description: 'Changes on web1 are seen at the next resync only; the watch log says why the stream ended.',
                    },
                  },
                ],
              },
              {
                eval_time: '20m',
                alertname: 'ReconcileWatchInventoryRefused',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning' },
                    exp_annotations: {
                      summary: 'reconcile watch refuses the inventory on disk',
                      description: 'An edit of the inventory does not load or validate; `reconcile validate -i INVENTORY` says why.',
                    },
                  },
                ],
              },
              { eval_time: '30m', alertname: 'ReconcileWatchStalePlan', exp_alerts: [] },
              {
                eval_time: '80m',
                alertname: 'ReconcileWatchStalePlan',
                exp_alerts: [
                  { exp_labels: { severity: 'warning', host: 'web1' }, exp_annotations: { summary: 'reconcile watch has not planned web1 for 1h 20m 0s' } },
                ],
              },
            ],
          },
        ],
      };
      await writeFile(join(dir, 'watch-tests.yaml'), stringify(tests));
      const result = await run('promtool', ['test', 'rules', 'watch-tests.yaml'], { cwd: dir }).catch((e: { stdout: string; stderr: string }) => e);
      expect(result.stdout + result.stderr).toBe('Unit Testing:  watch-tests.yaml\n  SUCCESS\n\n');
    });
  });
});
