import { describe, expect, it } from 'vitest';
import type { Action, RunPlan } from '../plan/types.js';
import { renderPlanMarkdown } from './plan-markdown.js';

const words = (_module: string, reason: string, detail?: string) => (detail ? `${reason}: ${detail}` : reason);
const add = (name: string): Action => ({ action: 'add', kind: 'incus certificate', name, reason: 'missing', fingerprint: 'a'.repeat(64), applies: true });

const plan: RunPlan = {
  format: 'reconcile-plan',
  formatVersion: 1,
  tool: { name: 'reconcile', version: '0.2.0' },
  createdAt: '2026-11-01T10:00:00.000Z',
  inventory: { path: '/srv/infra/hosts.yaml', digest: '0123456789ab'.padEnd(64, '0'), files: [] },
  playbook: '/site.yaml',
  options: { prune: false, warnDays: 30 },
  controller: [
    {
      module: 'incus_trust',
      actions: [{ action: 'add', kind: 'metrics key pair', name: 'prom', reason: 'pair-missing', fingerprint: '(known after apply)', applies: true }],
      errors: [],
      warnings: [],
    },
  ],
  hosts: [
    {
      host: 'web1',
      plans: [
        {
          module: 'incus_trust',
          actions: [
            add('alice'),
            { action: 'remove', kind: 'incus certificate', name: 'old', reason: 'absent', fingerprint: 'b'.repeat(64), applies: true },
            { action: 'unmanaged', kind: 'incus certificate', name: 'x|y', reason: 'not-in-inventory', fingerprint: 'c'.repeat(64), applies: false },
          ],
          errors: [],
          warnings: [],
        },
      ],
      covered: [],
      warnings: [],
      certificates: [],
    },
    { host: 'web2', plans: [], covered: [{ module: 'incus_trust', by: 'web1' }], warnings: [], certificates: [] },
    {
      host: 'web3',
      plans: [{ module: 'incus_trust', actions: Array.from({ length: 16 }, (_, i) => add(`c${i}`)), errors: [], warnings: [] }],
      covered: [],
      warnings: [],
      certificates: [],
    },
    { host: 'db1', plans: [], covered: [], failure: { step: 'connect', message: 'connection refused', unreachable: true }, warnings: [], certificates: [] },
  ],
};

describe('renderPlanMarkdown', () => {
  it('a summary table, then each host as a diff block; long ones collapsed; pipes escaped', () => {
    const lines = renderPlanMarkdown(plan, { diff: false, words }).split('\n');
    expect(lines.slice(0, 12)).toEqual([
      '### reconcile plan',
      '',
      'Plan: 18 to add, 0 to change, 0 to rotate, 1 to remove; 1 unmanaged. Made 2026-11-01T10:00:00.000Z by reconcile 0.2.0 from `/srv/infra/hosts.yaml` (inventory digest `0123456789ab`).',
      '',
      '| host | status | + add | ~ update | -/+ rotate | - remove | ? unmanaged |',
      '|---|---|---:|---:|---:|---:|---:|',
      '| controller | changes | 1 |  |  |  |  |',
      '| web1 | changes | 1 |  |  | 1 | 1 |',
      '| web2 | covered by web1 |  |  |  |  |  |',
      '| web3 | changes | 16 |  |  |  |  |',
      '| db1 | unreachable |  |  |  |  |  |',
      '',
    ]);
    const text = lines.join('\n');
    expect(text).toContain(
      [
        '**web1**',
        '',
        '```diff',
        'web1:',
        `+  + incus certificate "alice" [aaaaaaaaaaaa]: add (missing)`,
        `-  - incus certificate "old" [bbbbbbbbbbbb]: remove (absent)`,
        `#  ? incus certificate "x|y" [cccccccccccc]: unmanaged, still trusted (not-in-inventory)`,
        '```',
      ].join('\n'),
    );
    expect(text).toContain('<details><summary>web3: 16 lines</summary>\n\n```diff\nweb3:\n+  + incus certificate "c0"');
    expect(text).toContain('**db1**\n\n```diff\ndb1: unreachable: connect: connection refused\n```');
    expect(text).not.toContain('**web2**');
  });
});
