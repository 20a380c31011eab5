import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkPlanAge, changedInventoryFiles, parseDuration, parsePlan, serializePlan } from './saved-plan.js';
import type { RunPlan } from './types.js';

const plan: RunPlan = {
  format: 'reconcile-plan',
  formatVersion: 1,
  tool: { name: 'reconcile', version: '0.1.0' },
  createdAt: '2026-11-01T10:00:00.000Z',
  inventory: { path: '/inv/hosts.yaml', digest: 'a'.repeat(64), files: [{ path: 'hosts.yaml', sha256: 'b'.repeat(64) }] },
  playbook: '/site.yaml',
  options: { prune: false, warnDays: 30 },
  controller: [],
  hosts: [
    {
      host: 'web1',
      plans: [
        {
          module: 'incus_trust',
          actions: [
            {
              action: 'add',
              kind: 'incus certificate',
              name: 'alice',
              reason: 'missing',
              applies: true,
              precondition: { subject: 'certificate aaaa', digest: null },
              payload: { op: 'add' },
            },
          ],
          errors: [],
          warnings: [],
        },
      ],
      covered: [],
      warnings: [],
      certificates: [],
    },
  ],
};

describe('saved plans', () => {
  it('a plan survives serializing and parsing unchanged', () => {
    expect(parsePlan(serializePlan(plan), 'p.json')).toEqual(plan);
  });

  it('refuses what is not a plan of this version with one line naming the file', () => {
    const parse = (text: string) => () => parsePlan(text, 'p.json');
    expect(parse('{')).toThrow(/^p\.json: is not a saved plan \(not JSON: .*\); nothing was applied$/);
    expect(parse('[]')).toThrow('p.json: is not a saved plan of reconcile (no "format": "reconcile-plan"); nothing was applied');
    expect(parse(JSON.stringify({ ...plan, formatVersion: 2 }))).toThrow(
      'p.json: is a plan of format version 2 (made by reconcile "0.1.0"); this reconcile reads version 1: plan again; nothing was applied',
    );
    const edited = structuredClone(plan) as unknown as { hosts: { plans: { actions: { action: string }[] }[] }[] };
    edited.hosts[0]!.plans[0]!.actions[0]!.action = 'destroy';
    expect(parse(JSON.stringify(edited))).toThrow(
      'p.json: is not a valid plan: hosts.0.plans.0.actions.0.action must be equal to one of the allowed values (add, update, rotate, remove, unmanaged); nothing was applied',
    );
    expect(parse(JSON.stringify({ ...plan, createdAt: 'yesterday' }))).toThrow(
      'p.json: is not a valid plan: createdAt "yesterday" is not a date; nothing was applied',
    );
  });

  it('property: any JSON value is either a plan or one clear error, never another exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.constant(plan).map((p) => ({ ...p, hosts: 'x' })),
        ),
        (value) => {
          try {
            parsePlan(JSON.stringify(value), 'p.json');
          } catch (e) {
            expect((e as Error).name).toBe('UsageError');
            expect((e as Error).message).toMatch(/^p\.json: .*; nothing was applied$/);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('--max-age: durations, and plans older than them refused', () => {
    expect(parseDuration('24h', '--max-age')).toBe(86_400_000);
    expect(parseDuration('90m', '--max-age')).toBe(5_400_000);
    expect(parseDuration('7d', '--max-age')).toBe(604_800_000);
    expect(() => parseDuration('soon', '--max-age')).toThrow("--max-age takes a duration such as 24h, 90m, 7d or 3600s, not 'soon'");
    expect(() => checkPlanAge(plan, 'p.json', new Date('2026-11-01T20:00:00Z'), 86_400_000)).not.toThrow();
    expect(() => checkPlanAge(plan, 'p.json', new Date('2026-11-03T10:00:00Z'), 86_400_000)).toThrow(
      'p.json: was made 2 d ago (2026-11-01T10:00:00.000Z), more than --max-age 24 h: plan again, or pass a larger --max-age; nothing was applied',
    );
  });

  it('names the inventory files that changed, appeared or went', () => {
    const sha = (c: string) => c.repeat(64);
    expect(
      changedInventoryFiles(
        [
          { path: 'hosts.yaml', sha256: sha('a') },
          { path: 'certs/a.crt', sha256: sha('b') },
          { path: 'pki/m.crt', sha256: 'absent' },
        ],
        [
          { path: 'hosts.yaml', sha256: sha('c') },
          { path: 'pki/m.crt', sha256: sha('d') },
          { path: 'group_vars/all.yaml', sha256: sha('e') },
        ],
      ),
    ).toEqual(['certs/a.crt (no longer read)', 'group_vars/all.yaml (new)', 'hosts.yaml (changed)', 'pki/m.crt (created)']);
  });
});
