/**
 * The pure planner of the Incus trust store: DesiredTrust × ObservedTrust × PlanContext →
 * ModulePlan. No I/O, no clock of its own. Apply (apply.ts) executes the actions in the
 * order given here and never re-diffs.
 *
 * Rules (DESIGN.md, "Semantics that must hold"):
 * - desired entries match live ones by fingerprint first, then by name;
 * - projects are compared as sets, certificates by fingerprint only;
 * - rotate = add the new certificate, then remove the old one (never the other way round);
 * - a type change is remove + add (Incus refuses it in place), the two adjacent so the
 *   name is untrusted for one API call only;
 * - unmanaged certificates are removed only when pruning (incus_trust_prune or --prune);
 * - `server` certificates (cluster members) and incus_trust_protected ones are never removed;
 * - a project missing on the host is a plan error: the host is not applied at all.
 */
import { createHash } from 'node:crypto';
import type { Action, FieldChange, ModulePlan, PlanContext, Precondition } from '../types.js';
import type { DesiredCertificate, DesiredTrust, LiveCertificate, ObservedTrust, TrustType } from './model.js';
import type { TrustReason } from './reasons.js';

/** Shown where the fingerprint of a key pair still to be generated will be, as Terraform does. */
export const KNOWN_AFTER_APPLY = '(known after apply)';

/** `kind` of every action of this module. */
export const TRUST_KIND = 'incus certificate';

/** The fields of a trust entry the report shows as before/after. */
export interface TrustEntryView {
  name: string;
  type: string;
  description: string;
  restricted: boolean;
  projects: string[];
  fingerprint: string;
}

/** What apply needs for each action; never holds key material (a certificate is public). */
export type TrustPayload =
  | { op: 'add'; entry: NewTrustEntry }
  | { op: 'update'; fingerprint: string; fields: Pick<TrustEntryView, 'name' | 'description' | 'restricted' | 'projects'> }
  | { op: 'rotate'; entry: NewTrustEntry; oldFingerprint: string }
  | { op: 'remove'; fingerprint: string };

export interface NewTrustEntry {
  name: string;
  type: TrustType;
  description: string;
  restricted: boolean;
  projects: string[];
  /** Base64 DER as POST /1.0/certificates takes it; undefined while the pair is to be generated. */
  certificateDerBase64?: string;
  /**
   * Where the certificate of a pair still to be generated will be (absolute path on the
   * controller): apply takes its DER from the controller action that makes it.
   */
  pendingCertificatePath?: string;
  fingerprint: string;
}

export type TrustAction = Action<TrustPayload, TrustReason>;
export type TrustPlan = ModulePlan<TrustPayload, TrustReason>;

export function planTrust(desired: DesiredTrust, observed: ObservedTrust, ctx: PlanContext): TrustPlan {
  const protectedSet = desired.protected;
  const prune = desired.prune || ctx.prune;
  const consumed = new Set<LiveCertificate>();
  const changes: TrustAction[] = [];
  const removals: TrustAction[] = [];
  const unmanaged: TrustAction[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const existingProjects = new Set(observed.projects);
  const where = observed.server.clustered ? 'the cluster' : 'the host';

  const isRemovable = (live: LiveCertificate) => live.type !== 'server' && !isProtected(live, protectedSet);
  const byFingerprint = (fp: string) => observed.certificates.find((c) => !consumed.has(c) && c.fingerprint.toLowerCase() === fp.toLowerCase());
  const byName = (name: string, onlyRemovable: boolean) =>
    observed.certificates.find((c) => !consumed.has(c) && c.name === name && (!onlyRemovable || isRemovable(c)));

  const present = desired.certificates.filter((d) => d.state === 'present');
  const absent = desired.certificates.filter((d) => d.state === 'absent');

  // First pass: every present entry that matches by fingerprint claims its live certificate, so
  // that a name match in the second pass can never steal a certificate another entry names.
  const fingerprintMatch = new Map<DesiredCertificate, LiveCertificate>();
  const claimedBy = new Map<string, string>();
  for (const d of present) {
    if (!d.certificate) continue;
    const other = claimedBy.get(d.certificate.fingerprint);
    if (other !== undefined) {
      // Incus keys the store by fingerprint: two names for one certificate cannot both exist.
      errors.push(`certificates "${other}" and "${d.name}" have the same certificate (fingerprint ${d.certificate.fingerprint})`);
      continue;
    }
    claimedBy.set(d.certificate.fingerprint, d.name);
    const live = byFingerprint(d.certificate.fingerprint);
    if (live) {
      consumed.add(live);
      fingerprintMatch.set(d, live);
    }
  }

  for (const d of present) {
    const live = fingerprintMatch.get(d);
    const wanted = viewOfDesired(d);
    let acts = false;
    if (live) {
      const before = viewOfLive(live);
      if (live.type !== d.type) {
        if (!isRemovable(live)) {
          warnings.push(
            `certificate "${d.name}" is trusted as type ${live.type} but wanted as ${d.type}; it is ${describeKeep(live, protectedSet)}, so its type is left as is`,
          );
          continue;
        }
        // Incus refuses a type change in place: remove, then add right after.
        const detail = `${live.type} → ${d.type}`;
        changes.push(removeAction(live, 'type-changed', detail));
        changes.push(addAction(d, wanted, 'type-changed', detail));
        acts = true;
      } else {
        const fieldChanges = diffFields(before, wanted);
        if (fieldChanges.length > 0) {
          changes.push({
            action: 'update',
            kind: TRUST_KIND,
            name: d.name,
            reason: 'fields-differ',
            detail: fieldChanges.map((c) => c.field).join(', '),
            fingerprint: live.fingerprint,
            before,
            after: wanted,
            changes: fieldChanges,
            applies: true,
            precondition: entryPrecondition(live),
            payload: {
              op: 'update',
              fingerprint: live.fingerprint,
              fields: { name: wanted.name, description: wanted.description, restricted: wanted.restricted, projects: wanted.projects },
            },
          });
          acts = true;
        }
      }
    } else {
      const old = byName(d.name, true);
      if (old) {
        consumed.add(old);
        const before = viewOfLive(old);
        changes.push({
          action: 'rotate',
          kind: TRUST_KIND,
          name: d.name,
          reason: d.certificate ? 'new-certificate' : 'new-pair',
          fingerprint: wanted.fingerprint,
          before,
          after: wanted,
          changes: diffFields(before, wanted, true),
          applies: true,
          precondition: entryPrecondition(old),
          payload: { op: 'rotate', entry: newEntry(d), oldFingerprint: old.fingerprint },
        });
      } else {
        changes.push(addAction(d, wanted, d.certificate ? 'missing' : 'missing-pair', d.planNote));
      }
      acts = true;
    }
    if (acts) {
      for (const p of d.projects) {
        if (!existingProjects.has(p)) {
          errors.push(`certificate "${d.name}": project "${p}" does not exist on ${where}`);
        }
      }
    }
  }

  // Any other certificate still carrying the name of a present entry is superseded — typically
  // the old half of a rotation interrupted after its add: finish it.
  for (const d of present) {
    for (const live of observed.certificates) {
      if (consumed.has(live) || live.name !== d.name || !isRemovable(live)) continue;
      consumed.add(live);
      removals.push(removeAction(live, 'superseded'));
    }
  }

  // Revoking an entry revokes its certificate and anything still trusted under its name, so
  // that a second run finds nothing left to revoke.
  for (const d of absent) {
    const fingerprint = d.certificate?.fingerprint.toLowerCase();
    for (const live of observed.certificates) {
      if (consumed.has(live)) continue;
      if (live.name !== d.name && live.fingerprint.toLowerCase() !== fingerprint) continue;
      consumed.add(live);
      if (!isRemovable(live)) {
        warnings.push(`certificate "${d.name}" has state: absent but is ${describeKeep(live, protectedSet)}; it is kept`);
        continue;
      }
      removals.push(removeAction(live, 'absent'));
    }
  }

  for (const live of observed.certificates) {
    if (consumed.has(live) || live.type === 'server' || isProtected(live, protectedSet)) continue;
    if (prune) {
      removals.push(removeAction(live, 'pruned'));
    } else {
      unmanaged.push({
        action: 'unmanaged',
        kind: TRUST_KIND,
        name: live.name,
        reason: 'not-in-inventory',
        fingerprint: live.fingerprint,
        before: viewOfLive(live),
        applies: false,
      });
    }
  }

  const plan: TrustPlan = {
    module: 'incus_trust',
    actions: [...changes, ...removals, ...unmanaged],
    errors,
    warnings,
  };
  if (observed.server.clusterId) plan.scope = `incus-cluster:${observed.server.clusterId}`;
  return plan;
}

/** incus_trust_protected holds names or fingerprints (a fingerprint prefix of 12+ hex digits, as `incus config trust list` shows). */
export function isProtected(live: Pick<LiveCertificate, 'name' | 'fingerprint'>, protectedList: string[]): boolean {
  const fp = live.fingerprint.toLowerCase();
  return protectedList.some((p) => p === live.name || (/^[0-9a-fA-F]{12,64}$/.test(p) && fp.startsWith(p.toLowerCase())));
}

function describeKeep(live: LiveCertificate, protectedList: string[]): string {
  return live.type === 'server' ? 'a server (cluster member) certificate' : isProtected(live, protectedList) ? 'protected (incus_trust_protected)' : 'kept';
}

export function viewOfLive(live: LiveCertificate): TrustEntryView {
  return {
    name: live.name,
    type: live.type,
    description: live.description,
    restricted: live.restricted,
    projects: sortedUnique(live.projects),
    fingerprint: live.fingerprint,
  };
}

export function viewOfDesired(d: DesiredCertificate): TrustEntryView {
  return {
    name: d.name,
    type: d.type,
    description: d.description,
    restricted: d.restricted,
    projects: sortedUnique(d.projects),
    fingerprint: d.certificate?.fingerprint ?? KNOWN_AFTER_APPLY,
  };
}

/** What POST /1.0/certificates needs: the entry as shown, plus the certificate's DER (or where it will be). */
function newEntry(d: DesiredCertificate): NewTrustEntry {
  const entry: NewTrustEntry = { ...viewOfDesired(d), type: d.type, certificateDerBase64: d.certificate?.derBase64 };
  if (!d.certificate && d.pendingCertificatePath) entry.pendingCertificatePath = d.pendingCertificatePath;
  return entry;
}

function addAction(d: DesiredCertificate, wanted: TrustEntryView, reason: TrustReason, detail?: string): TrustAction {
  const action: TrustAction = {
    action: 'add',
    kind: TRUST_KIND,
    name: d.name,
    reason,
    fingerprint: wanted.fingerprint,
    after: wanted,
    applies: true,
    // Incus itself refuses a certificate it already trusts: the add needs no read first.
    precondition: { subject: `certificate ${shortFingerprint(wanted.fingerprint)}`, digest: null },
    payload: { op: 'add', entry: newEntry(d) },
  };
  if (detail !== undefined) action.detail = detail;
  return action;
}

function removeAction(live: LiveCertificate, reason: TrustReason, detail?: string): TrustAction {
  const action: TrustAction = {
    action: 'remove',
    kind: TRUST_KIND,
    name: live.name,
    reason,
    fingerprint: live.fingerprint,
    before: viewOfLive(live),
    applies: true,
    precondition: entryPrecondition(live),
    payload: { op: 'remove', fingerprint: live.fingerprint },
  };
  if (detail !== undefined) action.detail = detail;
  return action;
}

/** The entry as read: apply reads it again before changing it and refuses when it moved. */
function entryPrecondition(live: LiveCertificate): Precondition {
  return { subject: `certificate ${shortFingerprint(live.fingerprint)}`, digest: trustEntryDigest(viewOfLive(live)) };
}

/** SHA-256 of the fields reconcile manages, in a fixed order (projects as a sorted set). */
export function trustEntryDigest(view: TrustEntryView): string {
  const canonical = JSON.stringify([view.fingerprint.toLowerCase(), view.name, view.type, view.description, view.restricted, sortedUnique(view.projects)]);
  return createHash('sha256').update(canonical).digest('hex');
}

function shortFingerprint(fp: string): string {
  return /^[0-9a-f]{13,}$/.test(fp) ? fp.slice(0, 12) : fp;
}

/** Field-level differences; projects as sets. `withFingerprint` for rotation (the certificate changes). */
function diffFields(before: TrustEntryView, after: TrustEntryView, withFingerprint = false): FieldChange[] {
  const out: FieldChange[] = [];
  if (withFingerprint && before.fingerprint !== after.fingerprint) {
    out.push({ field: 'fingerprint', before: before.fingerprint, after: after.fingerprint });
  }
  if (withFingerprint && before.type !== after.type) out.push({ field: 'type', before: before.type, after: after.type });
  if (before.name !== after.name) out.push({ field: 'name', before: before.name, after: after.name });
  if (before.description !== after.description) out.push({ field: 'description', before: before.description, after: after.description });
  if (before.restricted !== after.restricted) out.push({ field: 'restricted', before: before.restricted, after: after.restricted });
  if (!sameSet(before.projects, after.projects)) out.push({ field: 'projects', before: before.projects, after: after.projects });
  return out;
}

function sortedUnique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

function sameSet(a: string[], b: string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}
