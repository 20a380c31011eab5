import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { CertificateInfo } from '../../pki/certificate.js';
import type { ModulePlan, PlanContext } from '../types.js';
import type { DesiredCertificate, DesiredTrust, LiveCertificate, ObservedTrust } from './model.js';
import { KNOWN_AFTER_APPLY, planTrust, type TrustPayload } from './plan.js';
import { TRUST_REASONS, type TrustReason } from './reasons.js';
import { incusTrust } from './index.js';
import { TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const ctx: PlanContext = { now: NOW, prune: false, warnDays: 30 };

/** Distinct 64-hex fingerprints whose prefixes differ too (incus_trust_protected accepts prefixes). */
const fp = (n: number) => n.toString(16).padStart(2, '0').repeat(32);

function cert(n: number): CertificateInfo {
  return {
    subject: `CN=c${n}`,
    issuer: `CN=c${n}`,
    fingerprint: fp(n),
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
    serialNumber: String(n),
    publicKeyAlgorithm: 'ECDSA P-384',
    pem: `PEM${n}`,
    derBase64: `DER${n}`,
  };
}

function want(name: string, n: number | undefined, extra: Partial<DesiredCertificate> = {}): DesiredCertificate {
  return {
    name,
    type: 'client',
    description: '',
    restricted: false,
    projects: [],
    state: 'present',
    certificate: n === undefined ? undefined : cert(n),
    certificateFile: `certs/${name}.crt`,
    location: { file: 'inv.yaml', line: 1, column: 1 },
    valuePath: 'all.vars.incus_trusted_clients[0]',
    ...extra,
  };
}

function live(name: string, n: number, extra: Partial<LiveCertificate> = {}): LiveCertificate {
  return { name, type: 'client', restricted: false, projects: [], description: '', fingerprint: fp(n), certificate: `PEM${n}`, ...extra };
}

function desired(certificates: DesiredCertificate[], extra: Partial<DesiredTrust> = {}): DesiredTrust {
  return { certificates, prune: false, protected: [], ...extra };
}

function observed(certificates: LiveCertificate[], projects = ['default'], clusterId?: string): ObservedTrust {
  return {
    server: { clustered: clusterId !== undefined, clusterId, members: [], daemon: { serverName: 'web1', kind: 'incus', version: '6.0.4' } },
    projects,
    certificates,
  };
}

/** One line per action: what a reader of the plan sees, without the payload. */
const summary = (plan: ModulePlan) =>
  plan.actions.map((a) => `${a.action} ${a.name} ${a.fingerprint?.slice(-2) ?? ''} (${TRUST_REASONS[a.reason as TrustReason](a.detail)})`);

describe('planTrust', () => {
  it('plans nothing when the store matches, projects compared as sets', () => {
    const plan = planTrust(
      desired([want('a', 1, { restricted: true, projects: ['p1', 'default'] })]),
      observed([live('a', 1, { restricted: true, projects: ['default', 'p1'] })], ['default', 'p1']),
      ctx,
    );
    expect(plan).toEqual({ module: 'incus_trust', actions: [], errors: [], warnings: [] });
  });

  it('adds a missing certificate with its DER payload', () => {
    const plan = planTrust(desired([want('a', 1, { description: 'laptop' })]), observed([]), ctx);
    expect(summary(plan)).toEqual(['add a 01 (missing)']);
    expect(plan.actions[0]!.payload).toEqual({
      op: 'add',
      entry: { name: 'a', type: 'client', description: 'laptop', restricted: false, projects: [], certificateDerBase64: 'DER1', fingerprint: fp(1) },
    } satisfies TrustPayload);
  });

  it('updates fields in place when matched by fingerprint, with the ETag read at observe time', () => {
    const plan = planTrust(
      desired([want('renamed', 1, { description: 'new', restricted: true, projects: ['default'] })]),
      observed([live('old-name', 1, { description: 'old' })]),
      ctx,
    );
    expect(summary(plan)).toEqual(['update renamed 01 (fields differ: name, description, restricted, projects)']);
    expect(plan.actions[0]!.changes).toEqual([
      { field: 'name', before: 'old-name', after: 'renamed' },
      { field: 'description', before: 'old', after: 'new' },
      { field: 'restricted', before: false, after: true },
      { field: 'projects', before: [], after: ['default'] },
    ]);
    expect(plan.actions[0]!.payload).toMatchObject({ op: 'update', fingerprint: fp(1) });
  });

  it('rotates when the name matches but the certificate is new: add new, then remove old', () => {
    const plan = planTrust(desired([want('a', 2)]), observed([live('a', 1)]), ctx);
    expect(summary(plan)).toEqual(['rotate a 02 (new certificate)']);
    expect(plan.actions[0]!.payload).toMatchObject({ op: 'rotate', oldFingerprint: fp(1), entry: { fingerprint: fp(2) } });
    expect(plan.actions[0]!.changes).toEqual([{ field: 'fingerprint', before: fp(1), after: fp(2) }]);
  });

  it('matches by fingerprint before name: a swap of names is two updates, not rotations', () => {
    const plan = planTrust(desired([want('a', 2), want('b', 1)]), observed([live('a', 1), live('b', 2)]), ctx);
    expect(summary(plan)).toEqual(['update a 02 (fields differ: name)', 'update b 01 (fields differ: name)']);
  });

  it('changes a type as remove then add, adjacent', () => {
    const plan = planTrust(desired([want('m', 1, { type: 'metrics' }), want('z', 3)]), observed([live('m', 1)]), ctx);
    expect(summary(plan)).toEqual(['remove m 01 (type changed (client → metrics))', 'add m 01 (type changed (client → metrics))', 'add z 03 (missing)']);
  });

  it('reports unmanaged certificates and removes them only when pruning', () => {
    const store = observed([live('a', 1), live('stranger', 9)]);
    expect(summary(planTrust(desired([want('a', 1)]), store, ctx))).toEqual([
      'unmanaged stranger 09 (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ' + fp(9).slice(0, 12) + ')',
    ]);
    expect(planTrust(desired([want('a', 1)]), store, ctx).actions[0]!.applies).toBe(false);
    expect(summary(planTrust(desired([want('a', 1)], { prune: true }), store, ctx))).toEqual(['remove stranger 09 (not in the inventory; pruning is on)']);
    expect(summary(planTrust(desired([want('a', 1)]), store, { ...ctx, prune: true }))).toEqual(['remove stranger 09 (not in the inventory; pruning is on)']);
  });

  it('never removes server certificates nor protected ones, by name or fingerprint prefix', () => {
    const store = observed([live('member2', 5, { type: 'server' }), live('keep-me', 6), live('by-fp', 7), live('gone', 8)]);
    const plan = planTrust(desired([want('member2', undefined, { state: 'absent' })], { prune: true, protected: ['keep-me', fp(7).slice(0, 12)] }), store, ctx);
    expect(summary(plan)).toEqual(['remove gone 08 (not in the inventory; pruning is on)']);
    expect(plan.warnings).toEqual(['certificate "member2" has state: absent but is a server (cluster member) certificate; it is kept']);
  });

  it('removes state: absent entries, by fingerprint or by name', () => {
    const plan = planTrust(
      desired([want('x', 1, { state: 'absent' }), want('y', undefined, { state: 'absent' }), want('never-there', 4, { state: 'absent' })]),
      observed([live('x-renamed', 1), live('y', 2)]),
      ctx,
    );
    expect(summary(plan)).toEqual(['remove x-renamed 01 (state: absent in the inventory)', 'remove y 02 (state: absent in the inventory)']);
  });

  it('revokes without the file: by a fingerprint prefix, or by a name only one certificate has', () => {
    const store = observed([live('a', 1), live('twin', 2), live('twin', 3)]);
    const byFingerprint = planTrust(desired([want('whatever', undefined, { state: 'absent', fingerprint: fp(3).slice(0, 12) })]), store, ctx);
    expect(summary(byFingerprint).slice(0, 1)).toEqual(['remove twin 03 (state: absent in the inventory)']);
    expect(summary(planTrust(desired([want('a', undefined, { state: 'absent' })]), store, ctx))[0]).toBe('remove a 01 (state: absent in the inventory)');
    const ambiguous = planTrust(desired([want('twin', undefined, { state: 'absent' })]), store, ctx);
    expect(ambiguous.errors).toEqual([
      `certificate "twin" (state: absent) names 2 trusted certificates (${fp(2).slice(0, 12)}, ${fp(3).slice(0, 12)}); add fingerprint: to say which to revoke`,
    ]);
    expect(ambiguous.actions.filter((a) => a.applies)).toEqual([]);
  });

  it('keeps the previous certificate until previous_until, then removes it', () => {
    const until = '2026-02-01';
    const kept = { certificate: cert(1), until, kept: true };
    // The rotation itself: the new certificate is added, the old one stays.
    expect(summary(planTrust(desired([want('ci', 2, { previous: kept })]), observed([live('ci', 1)]), ctx))).toEqual([
      `add ci 02 (new certificate; the previous one stays trusted until ${until})`,
    ]);
    // Converged: both trusted, nothing to do; a host without the old one gets it back with the entry's access.
    expect(planTrust(desired([want('ci', 2, { previous: kept })]), observed([live('ci', 1), live('ci', 2)]), ctx).actions).toEqual([]);
    const restricted = planTrust(desired([want('ci', 2, { previous: kept, restricted: true })]), observed([live('ci', 2, { restricted: true })]), ctx);
    expect(summary(restricted)).toEqual([`add ci 01 (previous certificate, trusted until ${until})`]);
    expect(restricted.actions[0]!.after).toMatchObject({ name: 'ci', restricted: true, fingerprint: fp(1) });
    // The date passed: removed, and said why.
    const passed = { certificate: cert(1), until, kept: false };
    expect(summary(planTrust(desired([want('ci', 2, { previous: passed })]), observed([live('ci', 1), live('ci', 2)]), ctx))).toEqual([
      `remove ci 01 (previous certificate, trusted until ${until}, which has passed)`,
    ]);
  });

  it('finishes an interrupted rotation: the old certificate under the same name is removed', () => {
    const plan = planTrust(desired([want('a', 2)]), observed([live('a', 1), live('a', 2)]), ctx);
    expect(summary(plan)).toEqual(['remove a 01 (superseded: the inventory gives this name another certificate)']);
  });

  it('fails the host plan when a project is missing on the host', () => {
    const plan = planTrust(desired([want('a', 1, { restricted: true, projects: ['default', 'nope'] })]), observed([]), ctx);
    expect(plan.errors).toEqual(['certificate "a": project "nope" does not exist on the host']);
  });

  it('shows "(known after apply)" for a key pair still to be generated', () => {
    expect(summary(planTrust(desired([want('m', undefined, { type: 'metrics' })]), observed([]), ctx))).toEqual([
      `add m ${KNOWN_AFTER_APPLY.slice(-2)} (missing (key pair to be generated))`,
    ]);
    const rotation = planTrust(desired([want('m', undefined, { type: 'metrics' })]), observed([live('m', 1, { type: 'metrics' })]), ctx);
    expect(rotation.actions[0]).toMatchObject({ action: 'rotate', fingerprint: KNOWN_AFTER_APPLY, reason: 'new-pair' });
  });

  it('refuses one certificate under two names', () => {
    expect(planTrust(desired([want('a', 1), want('b', 1)]), observed([]), ctx).errors).toEqual([
      `certificates "a" and "b" have the same certificate (fingerprint ${fp(1)})`,
    ]);
  });

  it('names the shared store of a cluster as the plan scope', () => {
    expect(planTrust(desired([]), observed([], ['default'], 'abc'), ctx).scope).toBe('incus-cluster:abc');
    expect(planTrust(desired([]), observed([]), ctx).scope).toBeUndefined();
  });
});

/** What Incus would hold after the plan's actions ran, in order (the test's model of apply). */
function simulateApply(before: ObservedTrust, plan: ModulePlan): ObservedTrust {
  let certs = before.certificates.map((c) => ({ ...c, projects: [...c.projects] }));
  const add = (e: Extract<TrustPayload, { op: 'add' }>['entry']) => {
    if (certs.some((c) => c.fingerprint === e.fingerprint)) throw new Error(`duplicate fingerprint ${e.fingerprint}`);
    certs.push({
      name: e.name,
      type: e.type,
      description: e.description,
      restricted: e.restricted,
      projects: [...e.projects].reverse(),
      fingerprint: e.fingerprint,
      certificate: '',
    });
  };
  const remove = (f: string) => {
    if (!certs.some((c) => c.fingerprint === f)) throw new Error(`no certificate ${f}`);
    certs = certs.filter((c) => c.fingerprint !== f);
  };
  for (const a of plan.actions) {
    if (!a.applies) continue;
    const data = a.payload as TrustPayload;
    switch (data.op) {
      case 'add':
        add(data.entry);
        break;
      case 'rotate':
        add(data.entry);
        remove(data.oldFingerprint);
        break;
      case 'remove':
        remove(data.fingerprint);
        break;
      case 'update': {
        const c = certs.find((x) => x.fingerprint === data.fingerprint);
        if (!c) throw new Error(`no certificate ${data.fingerprint}`);
        Object.assign(c, data.fields);
        break;
      }
    }
  }
  return { ...before, certificates: certs };
}

describe('planTrust property', () => {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const projectsPool = ['default', 'p1', 'p2'];
  const liveArb = fc.record({
    name: fc.constantFrom(...names, 'x', 'y'),
    type: fc.constantFrom('client', 'metrics', 'server'),
    restricted: fc.boolean(),
    projects: fc.subarray(projectsPool),
    description: fc.constantFrom('', 'd1', 'd2'),
    n: fc.integer({ min: 1, max: 12 }),
  });
  const desiredArb = fc.record({
    type: fc.constantFrom<'client' | 'metrics'>('client', 'metrics'),
    restricted: fc.boolean(),
    projects: fc.subarray(projectsPool),
    description: fc.constantFrom('', 'd1', 'd2'),
    n: fc.integer({ min: 1, max: 12 }),
    state: fc.constantFrom<'present' | 'absent'>('present', 'present', 'present', 'absent'),
  });

  it('planning against the state the plan produces gives an empty plan', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(liveArb, { selector: (l) => l.n, maxLength: 6 }),
        fc.uniqueArray(desiredArb, { selector: (d) => d.n, maxLength: 5 }),
        fc.boolean(),
        fc.subarray(['x', 'c', fp(3).slice(0, 12)]),
        (lives, wants, prune, protectedList) => {
          const store = observed(
            lives.map((l) => live(l.name, l.n, { type: l.type, restricted: l.restricted, projects: l.projects, description: l.description })),
            projectsPool,
          );
          const want = desired(
            wants.map((w, i) => ({
              ...wantOf(names[i]!, w.n),
              type: w.type,
              restricted: w.restricted,
              projects: w.projects,
              description: w.description,
              state: w.state,
            })),
            { prune, protected: protectedList },
          );
          const plan = planTrust(want, store, ctx);
          fc.pre(plan.errors.length === 0);
          const after = simulateApply(store, plan);
          const again = planTrust(want, after, ctx);
          expect(again.errors).toEqual([]);
          expect(again.actions.filter((a) => a.applies)).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

function wantOf(name: string, n: number): DesiredCertificate {
  return want(name, n);
}

describe('planTrust never locks reconcile out over HTTPS', () => {
  const self = (certificates: LiveCertificate[]) => ({ ...observed(certificates), self: fp(9) });
  const refused = (plan: ModulePlan) =>
    plan.warnings.filter((w) => /is the one reconcile authenticates with over HTTPS/.test(w)).map((w) => w.replace(/.*HTTPS: /, ''));

  it('pruning, state: absent, a rotation, a name clash, a type change and restricting are refused; the rest goes on', () => {
    const mine = live('ci', 9);
    const prune = planTrust(desired([want('a', 1)]), self([mine]), { ...ctx, prune: true });
    expect(summary(prune)).toEqual(['add a 01 (missing)']);
    expect(refused(prune)).toEqual(['pruning it would lock reconcile out of the host; refused, it is kept as it is']);

    const absent = planTrust(desired([want('ci', undefined, { state: 'absent', fingerprint: fp(9).slice(0, 12) })]), self([mine, live('b', 2)]), ctx);
    expect(summary(absent)).toEqual([
      `unmanaged b 02 (not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${fp(2).slice(0, 12)})`,
    ]);
    expect(refused(absent)).toEqual(['revoking it (state: absent) would lock reconcile out of the host; refused, it is kept as it is']);

    const rotate = planTrust(desired([want('ci', 3)]), self([mine]), ctx);
    expect(summary(rotate)).toEqual([]);
    expect(refused(rotate)).toEqual(['rotating it to another certificate would lock reconcile out of the host; refused, it is kept as it is']);

    const retype = planTrust(desired([want('ci', 9, { type: 'metrics' })]), self([mine]), ctx);
    expect(summary(retype)).toEqual([]);
    expect(refused(retype)).toEqual(['changing its type to metrics would lock reconcile out of the host; refused, it is kept as it is']);

    const restrict = planTrust(desired([want('ci', 9, { restricted: true, projects: ['default'] })]), self([mine]), ctx);
    expect(summary(restrict)).toEqual([]);
    expect(refused(restrict)).toEqual(['restricting it to projects would lock reconcile out of the host; refused, it is kept as it is']);

    // A description change is harmless: planned as usual.
    expect(summary(planTrust(desired([want('ci', 9, { description: 'CI' })]), self([mine]), ctx))).toEqual(['update ci 09 (fields differ: description)']);
    // The same store read over SSH (no identity): pruning it is an ordinary removal.
    expect(summary(planTrust(desired([]), observed([mine]), { ...ctx, prune: true }))).toEqual(['remove ci 09 (not in the inventory; pruning is on)']);
  });
});

describe('planTrust and what the server can do (GET /1.0 api_extensions)', () => {
  const lxd50 = (certificates: LiveCertificate[], extensions: string[]) => ({
    ...observed(certificates),
    server: { clustered: false, members: [], daemon: { serverName: 'l1', kind: 'lxd', version: '5.0.2', extensions } },
  });

  it('a feature the server lacks is a plan error naming the extension; nothing is sent', () => {
    const plan = planTrust(
      desired([want('m', 1, { type: 'metrics' }), want('r', 2, { restricted: true, projects: ['default'] })]),
      lxd50([], ['certificate_update']),
      ctx,
    );
    expect(plan.errors).toEqual([
      'certificate "m": type metrics needs the API extension metrics, which this lxd 5.0.2 server lacks',
      'certificate "r": restricted / projects needs the API extension certificate_project, which this lxd 5.0.2 server lacks',
    ]);
  });

  it('a server that keeps no descriptions (LXD 5.0) is neither sent nor compared on them, and the plan says so', () => {
    const all = ['certificate_update', 'certificate_project', 'metrics'];
    const plan = planTrust(desired([want('a', 1, { description: 'laptop' })]), lxd50([live('a', 1)], all), ctx);
    expect(plan.actions).toEqual([]);
    expect(plan.warnings).toEqual([
      'this lxd 5.0.2 server keeps no descriptions (no API extension certificate_description): the description of "a" is not sent',
    ]);
    // Incus keeps them: the same entry is an update there.
    expect(summary(planTrust(desired([want('a', 1, { description: 'laptop' })]), lxd50([live('a', 1)], [...all, 'certificate_description']), ctx))).toEqual([
      'update a 01 (fields differ: description)',
    ]);
  });

  it('through the module: the description looks like a change until GET /1.0 is asked, and the plan is made with its answer', async () => {
    const paths: string[] = [];
    const answers: Record<string, unknown> = {
      '/1.0/certificates?recursion=1': [live('a', 1)],
      '/1.0': { environment: { server: 'lxd', server_name: 'l1', server_version: '5.0.2', server_clustered: false }, api_extensions: ['certificate_update'] },
    };
    const session = {
      spec: { host: 'l1' },
      incus: {
        request: async (_method: string, path: string, step: string) => {
          paths.push(path);
          if (!(path in answers)) throw new TransportError('l1', step, 'Incus refused (500): Server is not clustered');
          return { status: 200, metadata: answers[path] };
        },
      },
    } as unknown as HostSession;
    const wanted = desired([want('a', 1, { description: 'laptop' })]);
    const observedOnHost = await incusTrust.observe(session, wanted, ctx);
    expect(paths).toContain('/1.0');
    const plan = incusTrust.plan(wanted, observedOnHost, ctx);
    expect(plan.actions.filter((a) => a.applies)).toEqual([]);
    expect(plan.warnings).toEqual([expect.stringContaining('this lxd 5.0.2 server keeps no descriptions')]);
  });
});
