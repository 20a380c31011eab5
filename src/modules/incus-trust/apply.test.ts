import { describe, expect, it } from 'vitest';
import { TransportError } from '../../errors.js';
import type { HostSession, IncusRequestOptions } from '../../transport/types.js';
import type { Action } from '../types.js';
import type { DesiredTrust, ObservedTrust } from './model.js';
import { applyTrust } from './apply.js';
import { planTrust } from './plan.js';

/** Records every Incus API call in order; fails the call whose step matches `failOn`. */
function recordingSession(failOn?: RegExp) {
  const calls: string[] = [];
  const session = {
    spec: { host: 'web1' },
    incus: {
      request: async (method: string, path: string, step: string, body?: unknown, options?: IncusRequestOptions) => {
        if (failOn?.test(step)) throw new TransportError('web1', step, 'Incus answered 500: boom');
        calls.push(`${method} ${path}${body ? ' ' + JSON.stringify(body) : ''}${options?.ifMatch ? ` If-Match: ${options.ifMatch}` : ''}`);
        return { status: 200, metadata: {} };
      },
    },
  } as unknown as HostSession;
  return { session, calls };
}

const cert = (n: string) => ({ fingerprint: n.repeat(64), derBase64: `DER-${n}` }) as never;
const live = (name: string, n: string, extra = {}) => ({ name, type: 'client', restricted: false, projects: [], description: '', fingerprint: n.repeat(64), certificate: '', ...extra });
const want = (name: string, n: string, extra = {}) => ({
  name, type: 'client' as const, description: '', restricted: false, projects: [], state: 'present' as const,
  certificate: cert(n), certificateFile: '', location: { file: 'i', line: 1, column: 1 }, valuePath: '', ...extra,
});

const observed: ObservedTrust = {
  server: { serverName: 'web1', version: '6.0', clustered: false, members: [] },
  projects: ['default'],
  certificates: [live('bob', 'b'), live('carol', 'c', { description: 'old' }), live('dave', 'd')],
  etags: { ['c'.repeat(64)]: '"etag-carol"' },
};
const desired: DesiredTrust = {
  certificates: [want('bob', 'e'), want('carol', 'c', { description: 'new' }), want('dave', 'd', { state: 'absent' }), want('alice', 'a')],
  prune: false,
  protected: [],
};

describe('applyTrust', () => {
  it('sends each action in plan order: rotation adds before it removes, updates carry the ETag', async () => {
    const { session, calls } = recordingSession();
    const applied: string[] = [];
    await applyTrust(session, planTrust(desired, observed, { now: new Date(), prune: false, warnDays: 30 }), {
      actionStarted: () => undefined,
      actionApplied: (a: Action) => applied.push(`${a.action} ${a.name}`),
    });
    expect(calls).toEqual([
      `POST /1.0/certificates {"name":"bob","type":"client","certificate":"DER-e","description":"","restricted":false,"projects":[]}`,
      `DELETE /1.0/certificates/${'b'.repeat(64)}`,
      `PATCH /1.0/certificates/${'c'.repeat(64)} {"name":"carol","description":"new","restricted":false,"projects":[]} If-Match: "etag-carol"`,
      `POST /1.0/certificates {"name":"alice","type":"client","certificate":"DER-a","description":"","restricted":false,"projects":[]}`,
      `DELETE /1.0/certificates/${'d'.repeat(64)}`,
    ]);
    expect(applied).toEqual(['rotate bob', 'update carol', 'add alice', 'remove dave']);
  });

  it('without an ETag from observe, an update reads the entry, checks it is as planned, and PATCHes with its ETag', async () => {
    const calls: string[] = [];
    const carol = { name: 'carol', type: 'client', restricted: false, projects: [], description: 'old' };
    const session = {
      spec: { host: 'web1' },
      incus: {
        request: async (method: string, path: string, _step: string, body?: unknown, options?: IncusRequestOptions) => {
          calls.push(`${method} ${path}${body ? ' ' + JSON.stringify(body) : ''}${options?.ifMatch ? ` If-Match: ${options.ifMatch}` : ''}`);
          return method === 'GET' ? { status: 200, etag: '"etag-now"', metadata: carol } : { status: 200, metadata: {} };
        },
      },
    } as unknown as HostSession;
    const onlyCarol: DesiredTrust = { ...desired, certificates: [want('carol', 'c', { description: 'new' })] };
    await applyTrust(session, planTrust(onlyCarol, { ...observed, etags: {} }, { now: new Date(), prune: false, warnDays: 30 }), {
      actionStarted: () => undefined,
      actionApplied: () => undefined,
    });
    expect(calls.filter((c) => !c.includes('b'.repeat(64)) && !c.includes('d'.repeat(64)))).toEqual([
      `GET /1.0/certificates/${'c'.repeat(64)}`,
      `PATCH /1.0/certificates/${'c'.repeat(64)} {"name":"carol","description":"new","restricted":false,"projects":[]} If-Match: "etag-now"`,
    ]);
  });

  it('stops at the first failure: a rotation whose add failed never removes the old certificate', async () => {
    const { session, calls } = recordingSession(/^rotate certificate bob: add/);
    const applied: string[] = [];
    await expect(
      applyTrust(session, planTrust(desired, observed, { now: new Date(), prune: false, warnDays: 30 }), {
        actionStarted: () => undefined,
        actionApplied: (a: Action) => applied.push(a.name),
      }),
    ).rejects.toThrow('web1: rotate certificate bob: add the new one: Incus answered 500: boom');
    expect(calls).toEqual([]);
    expect(applied).toEqual([]);
  });
});
