/**
 * Applies an incus_trust plan over the host's Incus API, action by action, in plan order.
 * It never re-reads the inventory nor re-diffs: the plan is the whole truth. The first failing
 * request throws (TransportError naming host and step) and leaves the later actions undone.
 */
import { InternalError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import type { Action, ApplyHooks, ModulePlan } from '../types.js';
import type { NewTrustEntry, TrustActionData } from './plan.js';

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
      await session.incus.request('DELETE', `/1.0/certificates/${data.oldFingerprint}`, `rotate certificate ${data.entry.name}: remove the old one`);
      return;
    case 'update': {
      const step = `update certificate ${action.name}`;
      const path = `/1.0/certificates/${data.fingerprint}`;
      // PATCH merges only the fields we manage; the ETag read at observe time guards against a
      // concurrent change (Incus answers 412), in which case this host fails and the next run re-plans.
      await session.incus.request('PATCH', path, step, data.fields, data.etag ? { ifMatch: data.etag } : undefined);
      return;
    }
    case 'remove':
      await session.incus.request('DELETE', `/1.0/certificates/${data.fingerprint}`, `remove certificate ${action.name}`);
      return;
  }
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
