import { describe, expect, it } from 'vitest';
import type { RunPlan } from '../plan/types.js';
import { reasonWords } from '../engine/inputs.js';
import type { RunReport } from '../engine/report.js';
import type { Action } from '../modules/types.js';
import { hostsWithErrorShown, renderPlan, renderRecap } from './plan-text.js';

const FP1 = 'a'.repeat(64);
const FP2 = 'b'.repeat(64);

const actions: Action[] = [
  {
    action: 'add',
    kind: 'incus certificate',
    name: 'alice',
    reason: 'missing',
    fingerprint: FP1,
    after: { name: 'alice', restricted: false, projects: [] },
    applies: true,
  },
  {
    action: 'update',
    kind: 'incus certificate',
    name: 'bob',
    reason: 'fields-differ',
    detail: 'description, projects',
    fingerprint: FP2,
    changes: [
      { field: 'description', before: 'old', after: 'new' },
      { field: 'projects', before: ['default'], after: ['default', 'p1'] },
    ],
    applies: true,
  },
  {
    action: 'rotate',
    kind: 'incus certificate',
    name: 'metrics',
    reason: 'new-pair',
    fingerprint: '(known after apply)',
    changes: [{ field: 'fingerprint', before: FP1, after: '(known after apply)' }],
    applies: true,
  },
  { action: 'remove', kind: 'incus certificate', name: 'old', reason: 'absent', fingerprint: FP2, before: { name: 'old', type: 'client' }, applies: true },
  {
    action: 'unmanaged',
    kind: 'incus certificate',
    name: 'stranger',
    reason: 'not-in-inventory',
    detail: 'aaaaaaaaaaaa',
    fingerprint: FP1,
    before: { name: 'stranger' },
    applies: false,
  },
];

const plan: Pick<RunPlan, 'controller' | 'hosts'> = {
  controller: [],
  hosts: [
    { host: 'web1', plans: [{ module: 'incus_trust', actions, errors: [], warnings: [] }], covered: [], warnings: [], certificates: [] },
    { host: 'web2', plans: [], covered: [{ module: 'incus_trust', by: 'web1' }], warnings: [], certificates: [] },
    { host: 'web3', plans: [{ module: 'incus_trust', actions: [], errors: [], warnings: [] }], covered: [], warnings: [], certificates: [] },
    {
      host: 'web4',
      plans: [{ module: 'incus_trust', actions: [actions[0]!], errors: ['certificate "alice": project "p9" does not exist on web4'], warnings: [] }],
      covered: [],
      warnings: [],
      certificates: [],
    },
    { host: 'web5', plans: [], covered: [], failure: { step: 'connect', message: 'connection refused', unreachable: true }, warnings: [], certificates: [] },
  ],
};

describe('renderPlan', () => {
  it('shows each host, symbol, reason and the summary line', () => {
    expect(renderPlan(plan, { diff: false, words: reasonWords() })).toBe(
      `web1:
  + incus certificate "alice" [aaaaaaaaaaaa]: add (missing)
  ~ incus certificate "bob" [bbbbbbbbbbbb]: update in place (fields differ: description, projects)
-/+ incus certificate "metrics" [(known after apply)]: rotate (add new, then remove old) (new certificate (key pair to be generated))
  - incus certificate "old" [bbbbbbbbbbbb]: remove (state: absent in the inventory)
  ? incus certificate "stranger" [aaaaaaaaaaaa]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: aaaaaaaaaaaa)

web2: no changes (incus_trust covered by web1)

web3: no changes

web4:
  + incus certificate "alice" [aaaaaaaaaaaa]: add (missing)
  error: incus_trust: certificate "alice": project "p9" does not exist on web4 (nothing will be applied on web4)

web5: unreachable: connect: connection refused

Plan: 2 to add, 1 to change, 1 to rotate, 1 to remove; 1 unmanaged
`,
    );
  });

  it('with --diff shows before/after of every changed field', () => {
    const one: Pick<RunPlan, 'controller' | 'hosts'> = { controller: [], hosts: [plan.hosts[0]!] };
    expect(renderPlan(one, { diff: true, words: reasonWords() })).toBe(
      `web1:
  + incus certificate "alice" [aaaaaaaaaaaa]: add (missing)
        + name: "alice"
        + restricted: false
        + projects: []
  ~ incus certificate "bob" [bbbbbbbbbbbb]: update in place (fields differ: description, projects)
        ~ description: "old" → "new"
        ~ projects: ["default"] → ["default", "p1"]
-/+ incus certificate "metrics" [(known after apply)]: rotate (add new, then remove old) (new certificate (key pair to be generated))
        ~ fingerprint: "${FP1}" → "(known after apply)"
  - incus certificate "old" [bbbbbbbbbbbb]: remove (state: absent in the inventory)
        - name: "old"
        - type: "client"
  ? incus certificate "stranger" [aaaaaaaaaaaa]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: aaaaaaaaaaaa)
        ? name: "stranger"

Plan: 1 to add, 1 to change, 1 to rotate, 1 to remove; 1 unmanaged
`,
    );
  });
});

describe('renderRecap', () => {
  it('says per host what was applied and what was not', () => {
    const report = {
      mode: 'apply',
      hosts: [
        {
          host: 'web1',
          status: 'changed',
          actions: [
            { action: 'add', applied: true },
            { action: 'unmanaged', applied: false },
          ],
        },
        { host: 'web2', status: 'covered', coveredBy: 'web1', actions: [] },
        { host: 'web2b', status: 'covered', coveredBy: 'web4', actions: [] },
        { host: 'web3', status: 'ok', actions: [] },
        {
          host: 'web4',
          status: 'failed',
          error: { step: 'add certificate b', message: 'Incus answered 500: boom' },
          actions: [
            { action: 'add', applied: true },
            { action: 'add', applied: false },
          ],
        },
        { host: 'web5', status: 'unreachable', error: { step: 'connect', message: 'connection refused' }, actions: [] },
      ],
    } as unknown as RunReport;
    expect(renderRecap(report)).toBe(
      `Recap:
  web1   changed      1 applied, 1 unmanaged
  web2   covered      by web1
  web2b  covered      by web4, which failed
  web3   ok
  web4   failed       add certificate b: Incus answered 500: boom, 1 of 2 applied
  web5   unreachable  connect: connection refused
`,
    );
    // An error the plan text already printed is not repeated: the recap names the step.
    expect(
      renderRecap(report, hostsWithErrorShown(plan))
        .split('\n')
        .filter((l) => l.includes('web5')),
    ).toEqual(['  web5   unreachable  connect (error above)']);
  });

  it('a name from the host with control characters is shown escaped, never sent to the terminal as is', () => {
    const hostile: Action = {
      action: 'unmanaged',
      kind: 'incus certificate',
      name: '\u001b[2K\rh9: no changes\u001b]0;owned\u0007',
      reason: 'not-in-inventory',
      fingerprint: FP1,
      before: { name: 'x' },
      applies: false,
    };
    const text = renderPlan(
      {
        controller: [],
        hosts: [
          { host: 'web1', plans: [{ module: 'incus_trust', actions: [hostile], errors: [], warnings: [] }], covered: [], warnings: [], certificates: [] },
        ],
      },
      { diff: false, words: reasonWords() },
    );
    expect(text).toBe(
      'web1:\n  ? incus certificate "\\x1b[2K\\rh9: no changes\\x1b]0;owned\\x07" [aaaaaaaaaaaa]: unmanaged, still trusted (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: …)\n\nPlan: 0 to add, 0 to change, 0 to rotate, 0 to remove; 1 unmanaged\n',
    );
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });

  it('lists the managed certificates expiring within --warn-days under their host, not a covered member', () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const cert = (name: string, notAfter: string, managed: boolean) => ({ name, fingerprint: FP1, type: 'client', notAfter, module: 'incus_trust', managed });
    const hosts: RunPlan['hosts'] = [
      {
        host: 'web1',
        plans: [{ module: 'incus_trust', actions: [], errors: [], warnings: [] }],
        covered: [],
        warnings: [],
        certificates: [
          cert('ci', '2026-12-10T00:00:00.000Z', true),
          cert('later', '2027-06-01T00:00:00.000Z', true),
          cert('stranger', '2026-12-02T00:00:00.000Z', false),
        ],
      },
      { host: 'web2', plans: [], covered: [{ module: 'incus_trust', by: 'web1' }], warnings: [], certificates: [cert('ci', '2026-12-10T00:00:00.000Z', true)] },
    ];
    expect(renderPlan({ controller: [], hosts }, { diff: false, words: reasonWords(), expiring: { now, days: 30 } })).toBe(
      `web1: no changes
  expiring: certificate "ci" [aaaaaaaaaaaa] on 2026-12-10 (in 9 days); renew its certificate_file

web2: no changes (incus_trust covered by web1)

Plan: 0 to add, 0 to change, 0 to rotate, 0 to remove; 0 unmanaged
`,
    );
  });
});
