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
import type { CertificateInfo } from '../../pki/certificate.js';
import type { DesiredCertificate, DesiredTrust, LiveCertificate, ObservedTrust, PreviousCertificate, TrustApiExtension, TrustType } from './model.js';
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

export function planTrust(given: DesiredTrust, observed: ObservedTrust, ctx: PlanContext): TrustPlan {
  const { desired, warning: descriptionWarning } = withoutDescriptionsWhereUnkept(given, observed.server);
  const protectedSet = desired.protected;
  const prune = desired.prune || ctx.prune;
  const consumed = new Set<LiveCertificate>();
  const changes: TrustAction[] = [];
  const removals: TrustAction[] = [];
  const unmanaged: TrustAction[] = [];
  const errors: string[] = [];
  const warnings: string[] = descriptionWarning ? [descriptionWarning] : [];
  const existingProjects = new Set(observed.projects);
  const where = observed.server.clustered ? 'the cluster' : 'the host';

  // Over HTTPS the run authenticates with a certificate of this very store: taking it away (or
  // restricting it) would lock reconcile out, so every such action is refused, saying why.
  const isSelf = (live: LiveCertificate) => observed.self !== undefined && live.fingerprint.toLowerCase() === observed.self.toLowerCase();
  const refuseSelf = (live: LiveCertificate, what: string) =>
    warnings.push(
      `certificate "${live.name}" (${shortFingerprint(live.fingerprint)}) is the one reconcile authenticates with over HTTPS: ${what} would lock reconcile out of ${where}; refused, it is kept as it is`,
    );
  const isRemovable = (live: LiveCertificate) => live.type !== 'server' && !isProtected(live, protectedSet) && !isSelf(live);
  // Incus keys its store by fingerprint: one live certificate at most per fingerprint.
  const liveByFingerprint = new Map(observed.certificates.map((c) => [c.fingerprint.toLowerCase(), c]));
  const byFingerprint = (fp: string) => {
    const live = liveByFingerprint.get(fp.toLowerCase());
    return live && !consumed.has(live) ? live : undefined;
  };
  const byName = (name: string, onlyRemovable: boolean) =>
    observed.certificates.find((c) => !consumed.has(c) && c.name === name && (!onlyRemovable || isRemovable(c)));

  const present = desired.certificates.filter((d) => d.state === 'present');
  const absent = desired.certificates.filter((d) => d.state === 'absent');

  // First pass: every present entry that matches by fingerprint claims its live certificate, so
  // that a name match in the second pass can never steal a certificate another entry names.
  // Then the previous certificates still kept (previous_until ahead): never a rotation's old half.
  const fingerprintMatch = new Map<DesiredCertificate, LiveCertificate>();
  const previousMatch = new Map<DesiredCertificate, LiveCertificate>();
  const claimedBy = new Map<string, string>();
  const claim = (d: DesiredCertificate, certificate: CertificateInfo, what: string, into: Map<DesiredCertificate, LiveCertificate>) => {
    const other = claimedBy.get(certificate.fingerprint);
    if (other !== undefined) {
      // Incus keys the store by fingerprint: two names for one certificate cannot both exist.
      errors.push(`certificates "${other}" and "${d.name}"${what} have the same certificate (fingerprint ${certificate.fingerprint})`);
      return;
    }
    claimedBy.set(certificate.fingerprint, d.name);
    const live = byFingerprint(certificate.fingerprint);
    if (live) {
      consumed.add(live);
      into.set(d, live);
    }
  };
  for (const d of present) if (d.certificate) claim(d, d.certificate, '', fingerprintMatch);
  for (const d of present) {
    const previous = keptPrevious(d)?.certificate;
    if (previous) claim(d, previous, ' (its previous_certificate_file)', previousMatch);
  }

  for (const d of present) {
    const live = fingerprintMatch.get(d);
    const wanted = viewOfDesired(d);
    let acts = false;
    if (live) {
      if (live.type !== d.type) {
        if (isSelf(live)) {
          refuseSelf(live, `changing its type to ${d.type}`);
          continue;
        }
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
      } else if (isSelf(live) && wanted.restricted && !live.restricted) {
        refuseSelf(live, 'restricting it to projects');
        continue;
      } else {
        const update = updateAction(live, wanted);
        if (update) {
          changes.push(update);
          acts = true;
        }
      }
    } else {
      const old = byName(d.name, true);
      const self = old ? undefined : observed.certificates.find((c) => !consumed.has(c) && c.name === d.name && isSelf(c));
      if (self) {
        consumed.add(self);
        refuseSelf(self, 'rotating it to another certificate');
        continue;
      }
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
      } else if (keptPrevious(d)) {
        changes.push(addAction(d, wanted, 'new-with-overlap', keptPrevious(d)!.until));
      } else {
        changes.push(addAction(d, wanted, d.certificate ? 'missing' : 'missing-pair', d.planNote));
      }
      acts = true;
    }
    const previous = keptPrevious(d);
    if (previous?.certificate) {
      // The old key keeps working until the date: its certificate stays (or is put back) with the entry's access.
      const asPrevious: DesiredCertificate = { ...d, certificate: previous.certificate, previous: undefined };
      const live = previousMatch.get(d);
      const change = live ? updateAction(live, viewOfDesired(asPrevious)) : addAction(asPrevious, viewOfDesired(asPrevious), 'previous-kept', previous.until);
      if (change) {
        changes.push(change);
        acts = true;
      }
    }
    if (acts) {
      for (const p of d.projects) {
        if (!existingProjects.has(p)) {
          errors.push(`certificate "${d.name}": project "${p}" does not exist on ${where}`);
        }
      }
    }
  }

  // A previous certificate whose date has passed leaves, named as such.
  for (const d of present) {
    const previous = d.previous;
    if (!previous || previous.kept || !previous.certificate) continue;
    const live = byFingerprint(previous.certificate.fingerprint);
    if (!live) continue;
    consumed.add(live);
    if (isSelf(live)) {
      refuseSelf(live, `removing it (the previous certificate of "${d.name}", trusted until ${previous.until})`);
      continue;
    }
    if (!isRemovable(live)) {
      warnings.push(`the previous certificate of "${d.name}" was trusted until ${previous.until} but is ${describeKeep(live, protectedSet)}; it is kept`);
      continue;
    }
    removals.push(removeAction(live, 'previous-expired', previous.until));
  }

  // Any other certificate still carrying the name of a present entry is superseded — typically
  // the old half of a rotation interrupted after its add: finish it.
  const liveByName = new Map<string, LiveCertificate[]>();
  for (const live of observed.certificates) {
    const named = liveByName.get(live.name);
    if (named) named.push(live);
    else liveByName.set(live.name, [live]);
  }
  for (const d of present) {
    for (const live of liveByName.get(d.name) ?? []) {
      if (consumed.has(live)) continue;
      if (isSelf(live)) {
        consumed.add(live);
        refuseSelf(live, 'removing it (the inventory gives its name another certificate)');
        continue;
      }
      if (!isRemovable(live)) continue;
      consumed.add(live);
      removals.push(removeAction(live, 'superseded'));
    }
  }

  // Revoking an entry with its certificate_file revokes that certificate and anything still
  // trusted under its name, so that a second run finds nothing left to revoke. Without the file
  // the entry names one certificate: by fingerprint, or by a name only one certificate has.
  for (const d of absent) {
    const matches = observed.certificates.filter((live) => !consumed.has(live) && revokes(d, live));
    matches.forEach((live) => consumed.add(live));
    if (!d.certificate && matches.length > 1) {
      const which = matches.map((m) => shortFingerprint(m.fingerprint)).join(', ');
      errors.push(
        d.fingerprint !== undefined
          ? `certificate "${d.name}": fingerprint ${d.fingerprint} matches ${matches.length} trusted certificates (${which}); give more of its digits`
          : `certificate "${d.name}" (state: absent) names ${matches.length} trusted certificates (${which}); add fingerprint: to say which to revoke`,
      );
      continue;
    }
    for (const live of matches) {
      if (isSelf(live)) {
        refuseSelf(live, 'revoking it (state: absent)');
        continue;
      }
      if (!isRemovable(live)) {
        warnings.push(`certificate "${d.name}" has state: absent but is ${describeKeep(live, protectedSet)}; it is kept`);
        continue;
      }
      removals.push(removeAction(live, 'absent'));
    }
  }

  for (const live of observed.certificates) {
    if (consumed.has(live) || live.type === 'server' || isProtected(live, protectedSet)) continue;
    if (prune && isSelf(live)) {
      refuseSelf(live, 'pruning it');
    } else if (prune) {
      removals.push(removeAction(live, 'pruned'));
    } else {
      unmanaged.push({
        action: 'unmanaged',
        kind: TRUST_KIND,
        name: live.name,
        reason: 'not-in-inventory',
        detail: shortFingerprint(live.fingerprint),
        fingerprint: live.fingerprint,
        before: viewOfLive(live),
        applies: false,
      });
    }
  }

  errors.push(...missingExtensions(changes, observed.server));

  const plan: TrustPlan = {
    module: 'incus_trust',
    actions: [...changes, ...removals, ...unmanaged],
    errors,
    warnings,
  };
  if (observed.server.clusterId) plan.scope = `incus-cluster:${observed.server.clusterId}`;
  return plan;
}

/** Whether a state: absent entry names this live certificate. */
function revokes(d: DesiredCertificate, live: LiveCertificate): boolean {
  const fp = live.fingerprint.toLowerCase();
  if (d.certificate) return live.name === d.name || fp === d.certificate.fingerprint.toLowerCase();
  if (d.fingerprint !== undefined) return fp.startsWith(d.fingerprint);
  return live.name === d.name;
}

/** The previous certificate of an entry while previous_until is still ahead. */
function keptPrevious(d: DesiredCertificate): PreviousCertificate | undefined {
  return d.previous?.kept ? d.previous : undefined;
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

/** An update in place of the fields that differ, or undefined when none does. */
function updateAction(live: LiveCertificate, wanted: TrustEntryView): TrustAction | undefined {
  const before = viewOfLive(live);
  const fieldChanges = diffFields(before, wanted);
  if (fieldChanges.length === 0) return undefined;
  return {
    action: 'update',
    kind: TRUST_KIND,
    name: wanted.name,
    reason: 'fields-differ',
    detail: fieldChanges.map((c) => c.field).join(', '),
    fingerprint: live.fingerprint,
    before,
    after: { ...wanted, fingerprint: live.fingerprint },
    changes: fieldChanges,
    applies: true,
    precondition: entryPrecondition(live),
    payload: {
      op: 'update',
      fingerprint: live.fingerprint,
      fields: { name: wanted.name, description: wanted.description, restricted: wanted.restricted, projects: wanted.projects },
    },
  };
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
  if (a.length === b.length && a.every((x, i) => x === b[i])) return true;
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

/**
 * What each change needs of the server's API (GET /1.0 api_extensions): LXD 5.0 lacks some of
 * what Incus has. A feature the server lacks is a plan error naming it, never a request the
 * server refuses halfway through an apply.
 */
function missingExtensions(changes: TrustAction[], server: ObservedTrust['server']): string[] {
  const daemon = server.daemon;
  if (daemon?.extensions === undefined) return [];
  const have = daemon.extensions;
  const errors = new Set<string>();
  for (const a of changes) {
    const p = a.payload;
    if (!p || p.op === 'remove') continue;
    const fields = p.op === 'update' ? p.fields : p.entry;
    const needs: [TrustApiExtension, string][] = [];
    if (p.op === 'update') needs.push(['certificate_update', 'updating an entry in place']);
    if (p.op !== 'update' && p.entry.type === 'metrics') needs.push(['metrics', 'type metrics']);
    if (fields.restricted || fields.projects.length > 0) needs.push(['certificate_project', 'restricted / projects']);
    for (const [extension, why] of needs) {
      if (!have.includes(extension)) {
        errors.add(`certificate "${a.name}": ${why} needs the API extension ${extension}, which this ${daemon.kind} ${daemon.version} server lacks`);
      }
    }
  }
  return [...errors];
}

/**
 * A server without the certificate_description extension (LXD 5.0) drops descriptions: they are
 * neither compared nor sent there (else every run would plan the same update), and the plan says
 * which entries' descriptions that server does not keep.
 */
function withoutDescriptionsWhereUnkept(desired: DesiredTrust, server: ObservedTrust['server']): { desired: DesiredTrust; warning?: string } {
  const daemon = server.daemon;
  if (daemon?.extensions === undefined || daemon.extensions.includes('certificate_description' satisfies TrustApiExtension)) return { desired };
  const described = desired.certificates.filter((d) => d.state === 'present' && d.description !== '').map((d) => `"${d.name}"`);
  return {
    desired: { ...desired, certificates: desired.certificates.map((d) => ({ ...d, description: '' })) },
    warning:
      described.length > 0
        ? `this ${daemon.kind} ${daemon.version} server keeps no descriptions (no API extension certificate_description): the description of ${described.join(', ')} is not sent`
        : undefined,
  };
}
