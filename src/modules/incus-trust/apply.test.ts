import { describe, expect, it } from 'vitest';
import { TransportError } from '../../errors.js';
import type { HostSession, IncusRequestOptions } from '../../transport/types.js';
import type { Action } from '../types.js';
import type { DesiredTrust, LiveCertificate, ObservedTrust } from './model.js';
import { applyTrust } from './apply.js';
import { planTrust } from './plan.js';

type LiveEntry = LiveCertificate;

/**
 * Records every Incus API call in order; fails the call whose step matches `failOn`. GET of one
 * certificate answers from `store` (what the host has now, by fingerprint; a test edits it to play
 * someone else changing the host between plan and apply), 404 when it is not there.
 */
function recordingSession(failOn?: RegExp, store: Record<string, LiveEntry> = storeOf(observed.certificates)) {
  const calls: string[] = [];
  const session = {
    spec: { host: 'web1' },
    incus: {
      request: async (method: string, path: string, step: string, body?: unknown, options?: IncusRequestOptions) => {
        if (failOn?.test(step)) throw new TransportError('web1', step, 'Incus answered 500: boom');
        calls.push(`${method} ${path}${body ? ' ' + JSON.stringify(body) : ''}${options?.ifMatch ? ` If-Match: ${options.ifMatch}` : ''}`);
        if (method !== 'GET') return { status: 200, metadata: {} };
        const entry = store[path.split('/').pop()!];
        if (!entry) throw new TransportError('web1', step, 'Incus refused (404): Certificate not found');
        return { status: 200, etag: `"etag-${entry.name}"`, metadata: entry };
      },
    },
  } as unknown as HostSession;
  return { session, calls };
}

const storeOf = (list: LiveEntry[]): Record<string, LiveEntry> => Object.fromEntries(list.map((c) => [c.fingerprint, { ...c }]));

const cert = (n: string) => ({ fingerprint: n.repeat(64), derBase64: `DER-${n}` }) as never;
const live = (name: string, n: string, extra: Partial<LiveCertificate> = {}): LiveCertificate => ({
  name,
  type: 'client',
  restricted: false,
  projects: [],
  description: '',
  fingerprint: n.repeat(64),
  certificate: '',
  ...extra,
});
const want = (name: string, n: string, extra = {}) => ({
  name,
  type: 'client' as const,
  description: '',
  restricted: false,
  projects: [],
  state: 'present' as const,
  certificate: cert(n),
  certificateFile: '',
  location: { file: 'i', line: 1, column: 1 },
  valuePath: '',
  ...extra,
});

const observed: ObservedTrust = {
  server: { clustered: false, members: [] },
  projects: ['default'],
  certificates: [live('bob', 'b'), live('carol', 'c', { description: 'old' }), live('dave', 'd')],
};
const desired: DesiredTrust = {
  certificates: [want('bob', 'e'), want('carol', 'c', { description: 'new' }), want('dave', 'd', { state: 'absent' }), want('alice', 'a')],
  prune: false,
  protected: [],
};

const NOW = { now: new Date(), prune: false, warnDays: 30 };
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const D = 'd'.repeat(64);

/** Applies `plan`, returning the actions reported applied and the error thrown, if any. */
async function applyCollecting(session: HostSession, wanted: DesiredTrust, seen: ObservedTrust = observed) {
  const applied: string[] = [];
  let error: TransportError | undefined;
  try {
    await applyTrust(
      session,
      planTrust(wanted, seen, NOW),
      { actionStarted: () => undefined, actionApplied: (a: Action) => applied.push(`${a.action} ${a.name}`) },
      { now: () => NOW.now, certificate: () => undefined, resolveCertificate: () => undefined, keyPairGenerated: () => undefined },
    );
  } catch (e) {
    if (!(e instanceof TransportError)) throw e;
    error = e;
  }
  return { applied, error };
}

describe('applyTrust', () => {
  it('sends each action in plan order: rotation adds before it removes; updates and removes read the entry first, updates PATCH with its ETag', async () => {
    const { session, calls } = recordingSession();
    const { applied, error } = await applyCollecting(session, desired);
    expect(error).toBeUndefined();
    expect(calls).toEqual([
      `POST /1.0/certificates {"name":"bob","type":"client","certificate":"DER-e","description":"","restricted":false,"projects":[]}`,
      `GET /1.0/certificates/${B}`,
      `DELETE /1.0/certificates/${B}`,
      `GET /1.0/certificates/${C}`,
      `PATCH /1.0/certificates/${C} {"name":"carol","description":"new","restricted":false,"projects":[]} If-Match: "etag-carol"`,
      `POST /1.0/certificates {"name":"alice","type":"client","certificate":"DER-a","description":"","restricted":false,"projects":[]}`,
      `GET /1.0/certificates/${D}`,
      `DELETE /1.0/certificates/${D}`,
    ]);
    expect(applied).toEqual(['rotate bob', 'update carol', 'add alice', 'remove dave']);
  });

  it('refuses an update of an entry changed since the plan, and sends no PATCH', async () => {
    const store = storeOf(observed.certificates);
    store[C]!.projects = ['default'];
    const { session, calls } = recordingSession(undefined, store);
    const { applied, error } = await applyCollecting(session, { ...desired, certificates: [want('carol', 'c', { description: 'new' })] });
    expect(error?.host).toBe('web1');
    expect(error?.step).toBe('update certificate carol');
    expect(error?.message).toMatch(/changed by someone else since it was read \(projects\)/);
    expect(calls.filter((c) => !c.startsWith('GET'))).toEqual([]);
    expect(applied).toEqual([]);
  });

  it('refuses a remove when the entry changed since the plan: no DELETE, the host fails naming the step', async () => {
    const store = storeOf(observed.certificates);
    store[D]!.description = 'edited by someone else';
    store[D]!.restricted = true;
    const { session, calls } = recordingSession(undefined, store);
    const { applied, error } = await applyCollecting(session, { ...desired, certificates: [want('dave', 'd', { state: 'absent' })] });
    expect(error?.message).toBe(
      'web1: remove certificate dave: the entry was changed by someone else since it was read (description, restricted); left as it is — the next run plans again',
    );
    expect([error?.host, error?.step]).toEqual(['web1', 'remove certificate dave']);
    expect(calls).toEqual([`GET /1.0/certificates/${D}`]);
    expect(applied).toEqual([]);
  });

  it('a remove whose entry is already gone (404: another controller revoked it) is done, not failed', async () => {
    const store = storeOf(observed.certificates);
    delete store[D];
    const { session, calls } = recordingSession(undefined, store);
    const { error, applied } = await applyCollecting(session, { ...desired, certificates: [want('dave', 'd', { state: 'absent' })] });
    expect(error).toBeUndefined();
    expect(applied).toEqual(['remove dave']);
    expect(calls.filter((c) => c.startsWith('DELETE'))).toEqual([]);
  });

  it('an update another controller already made is done, not failed; a different change is still refused', async () => {
    const store = storeOf(observed.certificates);
    store[C]!.description = 'new';
    const { session, calls } = recordingSession(undefined, store);
    const wanted = { ...desired, certificates: [want('carol', 'c', { description: 'new' })] };
    const { error, applied } = await applyCollecting(session, wanted, observed);
    expect(error).toBeUndefined();
    expect(applied).toEqual(['update carol']);
    expect(calls.filter((c) => c.startsWith('PATCH'))).toEqual([]);
    store[C]!.description = 'someone else';
    const second = await applyCollecting(recordingSession(undefined, store).session, wanted, observed);
    expect(second.error?.message).toMatch(/changed by someone else since it was read \(description\)/);
  });

  it('a pruning remove is guarded too: a renamed entry is not removed', async () => {
    const store = storeOf(observed.certificates);
    store[D]!.name = 'dave-renamed';
    const { session, calls } = recordingSession(undefined, store);
    const { error } = await applyCollecting(session, {
      certificates: [want('bob', 'b'), want('carol', 'c', { description: 'old' })],
      prune: true,
      protected: [],
    });
    expect(error?.step).toBe('remove certificate dave');
    expect(error?.message).toMatch(/\(name\)/);
    expect(calls.filter((c) => c.startsWith('DELETE'))).toEqual([]);
  });

  it('the remove half of a rotation is guarded: the new certificate is added, the changed old one is kept', async () => {
    const store = storeOf(observed.certificates);
    store[B]!.projects = ['prod'];
    const { session, calls } = recordingSession(undefined, store);
    const { applied, error } = await applyCollecting(session, { ...desired, certificates: [want('bob', 'e')] });
    expect(error?.step).toBe('rotate certificate bob: remove the old one');
    expect(error?.message).toMatch(/changed by someone else since it was read \(projects\)/);
    expect(calls.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(['POST /1.0/certificates', `GET /1.0/certificates/${B}`]);
    expect(applied).toEqual([]);
  });

  it('the remove half of a type change is guarded: nothing is removed nor added', async () => {
    const seen: ObservedTrust = { ...observed, certificates: [live('mon', 'f')] };
    const store = storeOf(seen.certificates);
    store['f'.repeat(64)]!.type = 'metrics';
    const { session, calls } = recordingSession(undefined, store);
    const { applied, error } = await applyCollecting(session, { ...desired, certificates: [want('mon', 'f', { type: 'metrics' })] }, seen);
    expect(error?.step).toBe('remove certificate mon');
    expect(error?.message).toMatch(/\(type\)/);
    expect(calls).toEqual([`GET /1.0/certificates/${'f'.repeat(64)}`]);
    expect(applied).toEqual([]);
  });

  it('stops at the first failure: a rotation whose add failed never removes the old certificate', async () => {
    const { session, calls } = recordingSession(/^rotate certificate bob: add/);
    const { applied, error } = await applyCollecting(session, desired);
    expect(error?.message).toBe('web1: rotate certificate bob: add the new one: Incus answered 500: boom');
    expect(calls).toEqual([]);
    expect(applied).toEqual([]);
  });
});
