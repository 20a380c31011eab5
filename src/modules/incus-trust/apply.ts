/**
 * Applies an incus_trust plan over the host's Incus API, action by action, in plan order.
 * It never re-reads the inventory nor re-diffs: the plan is the whole truth. Before changing an
 * entry it reads it again and checks the action's precondition (the entry as planned); the first
 * failing request throws (TransportError naming host and step) and leaves later actions undone.
 */
import { InternalError, TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import type { ApplyContext, ApplyHooks, Precondition } from '../types.js';
import { trustEntryDigest, type NewTrustEntry, type TrustAction, type TrustEntryView, type TrustPlan } from './plan.js';

export async function applyTrust(session: HostSession, plan: TrustPlan, hooks: ApplyHooks, ctx: ApplyContext): Promise<void> {
  for (const action of plan.actions) {
    if (!action.applies) continue;
    hooks.actionStarted(action);
    await applyTrustAction(session, action, ctx);
    hooks.actionApplied(action);
  }
}

async function applyTrustAction(session: HostSession, action: TrustAction, ctx: ApplyContext): Promise<void> {
  const data = action.payload;
  if (!data) throw new InternalError(`incus_trust action ${action.action} ${action.name} carries no payload`);
  const seen = action.before as TrustEntryView | undefined;
  switch (data.op) {
    case 'add':
      return addCertificate(session, resolveEntry(data.entry, ctx, session), `add certificate ${data.entry.name}`);
    case 'rotate':
      // The new certificate first: a failure here leaves the old one trusted, never neither.
      await addCertificate(session, resolveEntry(data.entry, ctx, session), `rotate certificate ${data.entry.name}: add the new one`);
      await removeCertificate(session, data.oldFingerprint, `rotate certificate ${data.entry.name}: remove the old one`, action.precondition, seen);
      return;
    case 'update': {
      const step = `update certificate ${action.name}`;
      const path = `/1.0/certificates/${data.fingerprint}`;
      // PATCH merges only the fields we manage. The entry is read here and checked against the
      // plan's precondition, and its ETag makes the PATCH conditional (Incus answers 412 to a
      // change in between), in which case this host fails and the next run re-plans.
      const wanted = action.after as TrustEntryView | undefined;
      const check = await checkEntry(session, path, step, action.precondition, seen, wanted);
      if (check.done) return;
      try {
        await session.incus.request('PATCH', path, step, data.fields, check.etag ? { ifMatch: check.etag } : undefined);
      } catch (e) {
        // 412: it changed in the round trip since the read. Done if into what was wanted (another
        // controller with the same inventory got there first); refused otherwise, as above.
        if (!(e instanceof TransportError) || !/\(412\)/.test(e.message) || !wanted) throw e;
        const live = await readEntry(session, path, step);
        if (live && trustEntryDigest(live.view) === trustEntryDigest(wanted)) return;
        throw new TransportError(
          session.spec.host,
          step,
          'the entry was changed by someone else while it was being updated; left as it is — the next run plans again',
        );
      }
      return;
    }
    case 'remove':
      await removeCertificate(session, data.fingerprint, `remove certificate ${action.name}`, action.precondition, seen);
      return;
  }
}

/** A new entry whose certificate was still to be generated takes it from the controller action that made it. */
function resolveEntry(entry: NewTrustEntry, ctx: ApplyContext, session: HostSession): NewTrustEntry {
  if (entry.certificateDerBase64 || !entry.pendingCertificatePath) return entry;
  const made = ctx.certificate(entry.pendingCertificatePath);
  if (!made) {
    throw new TransportError(
      session.spec.host,
      `add certificate ${entry.name}`,
      `its key pair (${entry.pendingCertificatePath}) was not generated: see the controller's error`,
    );
  }
  return { ...entry, certificateDerBase64: made.derBase64, fingerprint: made.fingerprint };
}

/**
 * A DELETE is guarded like an update: the entry is read right before and compared with what the
 * plan saw, so that an entry someone renamed, re-described, re-typed or re-scoped since the plan
 * is not revoked on the strength of a stale plan. The DELETE itself is not conditional (no
 * If-Match): the window left is the one round trip between this read and the DELETE. An entry
 * already gone is what the action wanted: done.
 */
async function removeCertificate(
  session: HostSession,
  fingerprint: string,
  step: string,
  precondition: Precondition | undefined,
  seen: TrustEntryView | undefined,
): Promise<void> {
  const path = `/1.0/certificates/${fingerprint}`;
  const check = await checkEntry(session, path, step, precondition, seen, 'gone');
  if (check.done) return;
  await session.incus.request('DELETE', path, step);
}

/**
 * The entry is read again right before the PATCH or DELETE and its digest compared with the
 * action's precondition (the entry as the plan read it): a change made by someone else since is
 * refused, not overwritten nor revoked (found by test/faults: the sudo path forced it). Unless the
 * change is the very one the action wanted (another controller with the same inventory got there
 * first): then the action is done, not failed. Returns the ETag of what was read (socket path),
 * which closes the window between this read and a PATCH; the `incus query` path (sudo) has none.
 */
async function checkEntry(
  session: HostSession,
  path: string,
  step: string,
  precondition: Precondition | undefined,
  seen: TrustEntryView | undefined,
  wanted: TrustEntryView | 'gone' | undefined,
): Promise<{ etag?: string; done?: boolean }> {
  if (!precondition || !seen) return {};
  const live = await readEntry(session, path, step);
  if (!live) {
    if (wanted === 'gone') return { done: true };
    throw new TransportError(session.spec.host, step, `the entry was removed by someone else since it was read; nothing done — the next run plans again`);
  }
  const digest = trustEntryDigest(live.view);
  if (digest === precondition.digest) return { etag: live.etag };
  if (wanted !== undefined && wanted !== 'gone' && digest === trustEntryDigest(wanted)) return { done: true };
  const changed = (['name', 'type', 'description', 'restricted'] as const).filter((f) => live.view[f] !== seen[f]);
  if (JSON.stringify(live.view.projects) !== JSON.stringify([...seen.projects].sort())) changed.push('projects' as never);
  throw new TransportError(
    session.spec.host,
    step,
    `the entry was changed by someone else since it was read (${changed.join(', ') || 'its content'}); left as it is — the next run plans again`,
  );
}

/** The entry as Incus has it now, with its ETag; undefined when Incus no longer trusts the fingerprint (404). */
async function readEntry(session: HostSession, path: string, step: string): Promise<{ view: TrustEntryView; etag?: string } | undefined> {
  let read;
  try {
    read = await session.incus.request<Record<string, unknown>>('GET', path, step);
  } catch (e) {
    if (e instanceof TransportError && /\(404\)/.test(e.message)) return undefined;
    throw e;
  }
  const now = read.metadata ?? {};
  const view: TrustEntryView = {
    fingerprint: String(now.fingerprint ?? path.slice(path.lastIndexOf('/') + 1)),
    name: String(now.name ?? ''),
    type: String(now.type ?? ''),
    description: String(now.description ?? ''),
    restricted: now.restricted === true,
    projects: Array.isArray(now.projects) ? [...new Set(now.projects.map(String))].sort() : [],
  };
  return { view, etag: read.etag };
}

async function addCertificate(session: HostSession, entry: NewTrustEntry, step: string): Promise<void> {
  if (!entry.certificateDerBase64) {
    throw new InternalError(`${step}: the key pair of ${entry.name} was not generated before apply`);
  }
  try {
    await session.incus.request('POST', '/1.0/certificates', step, {
      name: entry.name,
      type: entry.type,
      certificate: entry.certificateDerBase64,
      description: entry.description,
      restricted: entry.restricted,
      projects: entry.projects,
    });
  } catch (e) {
    // Refused: if the entry is now exactly the one wanted (another controller added it), done.
    if (!(e instanceof TransportError)) throw e;
    const live = await readEntry(session, `/1.0/certificates/${entry.fingerprint}`, step).catch(() => undefined);
    const wanted: TrustEntryView = { ...entry, projects: [...new Set(entry.projects)].sort() };
    if (live && trustEntryDigest(live.view) === trustEntryDigest(wanted)) return;
    throw e;
  }
}
