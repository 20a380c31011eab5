/**
 * Applies an incus_trust plan over the host's Incus API, action by action, in plan order.
 * It never re-reads the inventory nor re-diffs: the plan is the whole truth. The first failing
 * request throws (TransportError naming host and step) and leaves the later actions undone.
 */
import { InternalError, TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import type { Action, ApplyHooks, ModulePlan } from '../types.js';
import type { NewTrustEntry, TrustActionData, TrustEntryView } from './plan.js';

export async function applyTrust(session: HostSession, plan: ModulePlan, hooks: ApplyHooks): Promise<void> {
  for (const action of plan.actions) {
    if (!action.applies) continue;
    hooks.actionStarted(action);
    await applyTrustAction(session, action);
    hooks.actionApplied(action);
  }
}

async function applyTrustAction(session: HostSession, action: Action): Promise<void> {
  const data = action.data as TrustActionData | undefined;
  if (!data) throw new InternalError(`incus_trust action ${action.action} ${action.name} carries no data`);
  switch (data.op) {
    case 'add':
      return addCertificate(session, data.entry, `add certificate ${data.entry.name}`);
    case 'rotate':
      // The new certificate first: a failure here leaves the old one trusted, never neither.
      await addCertificate(session, data.entry, `rotate certificate ${data.entry.name}: add the new one`);
      await removeCertificate(session, data.oldFingerprint, `rotate certificate ${data.entry.name}: remove the old one`, action.before as TrustEntryView | undefined);
      return;
    case 'update': {
      const step = `update certificate ${action.name}`;
      const path = `/1.0/certificates/${data.fingerprint}`;
      // PATCH merges only the fields we manage. Observe reads no per-entry ETags (one request per
      // certificate, for the rare update): the entry is read here, compared with what the plan saw,
      // and its ETag makes the PATCH conditional (Incus answers 412 to a change in between), in
      // which case this host fails and the next run re-plans.
      const etag = await refuseIfChanged(session, path, step, action.before as TrustEntryView | undefined);
      await session.incus.request('PATCH', path, step, data.fields, etag ? { ifMatch: etag } : undefined);
      return;
    }
    case 'remove':
      await removeCertificate(session, data.fingerprint, `remove certificate ${action.name}`, action.before as TrustEntryView | undefined);
      return;
  }
}

/**
 * A DELETE is guarded like an update: the entry is read right before and compared with what the
 * plan saw, so that an entry someone renamed, re-described, re-typed or re-scoped since the plan
 * is not revoked on the strength of a stale plan. The DELETE itself is not conditional (no
 * If-Match): the window left is the one round trip between this read and the DELETE.
 */
async function removeCertificate(session: HostSession, fingerprint: string, step: string, seen: TrustEntryView | undefined): Promise<void> {
  const path = `/1.0/certificates/${fingerprint}`;
  await refuseIfChanged(session, path, step, seen);
  await session.incus.request('DELETE', path, step);
}

/**
 * The entry is read again right before the PATCH or DELETE and compared with what the plan saw:
 * a change made by someone else since is refused, not overwritten nor revoked (found by
 * test/faults: the sudo path forced it). Returns the ETag of what was read (socket path), which
 * closes the window between this read and a PATCH; the `incus query` path (sudo) has none.
 */
async function refuseIfChanged(session: HostSession, path: string, step: string, seen: TrustEntryView | undefined): Promise<string | undefined> {
  if (!seen) return undefined;
  let read;
  try {
    read = await session.incus.request<Record<string, unknown>>('GET', path, step);
  } catch (e) {
    // Incus answers 404 for a fingerprint it no longer trusts.
    if (e instanceof TransportError && /\(404\)/.test(e.message)) {
      throw new TransportError(session.spec.host, step, `the entry was removed by someone else since it was read; nothing done — the next run plans again`);
    }
    throw e;
  }
  const now = read.metadata ?? {};
  const projects = Array.isArray(now.projects) ? [...new Set(now.projects.map(String))].sort() : [];
  const changed: string[] = [];
  if (now.name !== seen.name) changed.push('name');
  if (now.type !== seen.type) changed.push('type');
  if ((now.description ?? '') !== seen.description) changed.push('description');
  if (now.restricted !== seen.restricted) changed.push('restricted');
  if (JSON.stringify(projects) !== JSON.stringify([...seen.projects].sort())) changed.push('projects');
  if (changed.length > 0) {
    throw new TransportError(
      session.spec.host,
      step,
      `the entry was changed by someone else since it was read (${changed.join(', ')}); left as it is — the next run plans again`,
    );
  }
  return read.etag;
}

async function addCertificate(session: HostSession, entry: NewTrustEntry, step: string): Promise<void> {
  if (!entry.certificateDerBase64) {
    throw new InternalError(`${step}: the key pair of ${entry.name} was not generated before apply`);
  }
  await session.incus.request('POST', '/1.0/certificates', step, {
    name: entry.name,
    type: entry.type,
    certificate: entry.certificateDerBase64,
    description: entry.description,
    restricted: entry.restricted,
    projects: entry.projects,
  });
}
