/**
 * incus_trusted_clients → desired trust entries of type client, pure (files come through
 * ctx.readInventoryFile, the clock is ctx.now).
 *
 * Exports:
 *   desiredTrustClients(host: InventoryHost, ctx: DesiredContext):
 *       { certificates: DesiredCertificate[]; prune: boolean; protected: string[]; problems: Problem[] }
 *     Expects values that passed schema/inventory.schema.json (validateInventory checks that
 *     first); tolerates others by skipping what it cannot read. Rules: names unique per host
 *     (metrics certificates included: one trust store);
 *     certificate_file exists relative to the inventory folder and holds one X.509
 *     certificate, never a private key; valid at `now`; `projects` without `restricted: true`
 *     is warned about (Incus ignores it). An entry with `state: absent` may name a file
 *     that no longer exists: it is then matched by name.
 */
import type { Problem, SourceLocation } from '../../errors.js';
import { unreadableReason, type InventoryHost, type VarDefinition } from '../../inventory/model.js';
import { CertificateParseError, containsPrivateKey, parseCertificatePem, validityAt, type CertificateInfo } from '../../pki/certificate.js';
import type { DesiredContext } from '../types.js';
import type { DesiredCertificate, PreviousCertificate } from './model.js';

export interface DesiredTrustClients {
  certificates: DesiredCertificate[];
  prune: boolean;
  protected: string[];
  problems: Problem[];
}

interface RawEntry {
  name?: unknown;
  type?: unknown;
  description?: unknown;
  certificate_file?: unknown;
  fingerprint?: unknown;
  previous_certificate_file?: unknown;
  previous_until?: unknown;
  restricted?: unknown;
  projects?: unknown;
  state?: unknown;
}

/**
 * The entries depend on the host's variables only, and hosts usually inherit the same ones
 * (group_vars/all): worked out once per run for each set of variable definitions, not once per
 * host (at 100 hosts × 20 entries that was 2,000 entries read, checked and located). Shared by
 * those hosts: never mutate the result.
 */
export function desiredTrustClients(host: InventoryHost, ctx: DesiredContext): DesiredTrustClients {
  const inputs = [
    host.vars.incus_metrics_certificates,
    host.vars.incus_trust_prune,
    host.vars.incus_trust_protected,
    ctx.inventory,
    ctx.now,
    ctx.readInventoryFile,
  ];
  const def = host.vars.incus_trusted_clients;
  if (!def) return entriesOf(host, ctx);
  const known = computed.get(def);
  if (known && known.inputs.every((x, i) => x === inputs[i])) return known.result;
  const result = entriesOf(host, ctx);
  computed.set(def, { inputs, result });
  return result;
}

/** The last result for each incus_trusted_clients definition, with the other inputs it came from. */
const computed = new WeakMap<VarDefinition, { inputs: unknown[]; result: DesiredTrustClients }>();

function entriesOf(host: InventoryHost, ctx: DesiredContext): DesiredTrustClients {
  const problems: Problem[] = [];
  const certificates: DesiredCertificate[] = [];
  const def = host.vars.incus_trusted_clients;
  const entries = def && Array.isArray(def.value) ? (def.value as RawEntry[]) : [];
  const firstByName = new Map<string, string>();
  // Names are shared with incus_metrics_certificates: one trust store, one namespace.
  const metrics = host.vars.incus_metrics_certificates;
  if (metrics && Array.isArray(metrics.value)) {
    metrics.value.forEach((m: unknown, j: number) => {
      const name = (m as { name?: unknown } | null)?.name;
      const loc = metrics.nested.get(`[${j}].name`) ?? metrics.location;
      if (typeof name === 'string' && !firstByName.has(name)) firstByName.set(name, `${loc.file}:${loc.line}:${loc.column}`);
    });
  }
  entries.forEach((raw, i) => {
    if (raw === null || typeof raw !== 'object' || typeof raw.name !== 'string') return;
    const at = (sub: string): SourceLocation => def!.nested.get(`[${i}]${sub}`) ?? def!.nested.get(`[${i}]`) ?? def!.location;
    const valuePath = `${def!.valuePath}[${i}]`;
    const error = (sub: string, message: string) => problems.push({ severity: 'error', location: at(sub), valuePath: valuePath + sub, message });

    const earlier = firstByName.get(raw.name);
    if (earlier !== undefined) {
      error('.name', `duplicate certificate name "${raw.name}" (also at ${earlier}); names must be unique on a host`);
    } else {
      const loc = at('.name');
      firstByName.set(raw.name, `${loc.file}:${loc.line}:${loc.column}`);
    }
    const state = raw.state === 'absent' ? 'absent' : 'present';
    const file = typeof raw.certificate_file === 'string' ? raw.certificate_file : '';
    if (state === 'present' && raw.certificate_file === undefined) {
      error('', 'is missing the required key "certificate_file" (only an entry with state: absent may go without it)');
    }
    const certificate = file ? readCertificate(file, state, ctx, (m) => error('.certificate_file', m)) : undefined;
    const fingerprint = typeof raw.fingerprint === 'string' ? raw.fingerprint.toLowerCase() : undefined;
    if (fingerprint !== undefined && state === 'present') {
      error('.fingerprint', "fingerprint names a certificate to revoke and goes with state: absent; a present entry's certificate is its certificate_file");
    } else if (fingerprint !== undefined && certificate && !certificate.fingerprint.startsWith(fingerprint)) {
      error('.fingerprint', `fingerprint ${fingerprint} is not the one of "${file}" ('reconcile cert info ${file}' shows it); give one of the two`);
    }
    const previous = previousCertificate(raw, state, certificate, ctx, error);
    const restricted = raw.restricted === true;
    const projects = Array.isArray(raw.projects) ? raw.projects.map(String) : [];
    if (projects.length > 0 && !restricted && state === 'present') {
      problems.push({
        severity: 'warning',
        location: at('.projects'),
        valuePath: `${valuePath}.projects`,
        message: 'projects have no effect without restricted: true (the certificate can reach every project)',
      });
    }
    const entry: DesiredCertificate = {
      name: raw.name,
      type: raw.type === 'metrics' ? 'metrics' : 'client',
      description: typeof raw.description === 'string' ? raw.description : '',
      restricted,
      projects,
      state,
      certificate,
      certificateFile: file,
      location: at(''),
      valuePath,
    };
    if (fingerprint !== undefined && state === 'absent') entry.fingerprint = fingerprint;
    if (previous) entry.previous = previous;
    certificates.push(entry);
  });
  return {
    certificates,
    prune: host.vars.incus_trust_prune?.value === true,
    protected: stringList(host.vars.incus_trust_protected),
    problems,
  };
}

/**
 * previous_certificate_file + previous_until: the certificate an entry replaced stays trusted
 * through that date (a day is UTC and ends at its midnight; a full ISO 8601 time is that
 * instant), so that a client still holding the old key keeps working while it moves over.
 */
function previousCertificate(
  raw: RawEntry,
  state: 'present' | 'absent',
  current: CertificateInfo | undefined,
  ctx: DesiredContext,
  error: (sub: string, message: string) => void,
): PreviousCertificate | undefined {
  const file = raw.previous_certificate_file;
  const until = raw.previous_until;
  if (file === undefined && until === undefined) return undefined;
  if (typeof file !== 'string' || typeof until !== 'string') {
    error(
      file === undefined ? '.previous_until' : '.previous_certificate_file',
      'previous_certificate_file and previous_until go together: the date says until when the previous certificate stays trusted',
    );
    return undefined;
  }
  if (state === 'absent') {
    error('.previous_certificate_file', 'an entry with state: absent revokes its certificate; it keeps no previous one');
    return undefined;
  }
  const end = endOf(until);
  if (end === undefined) {
    error('.previous_until', `previous_until "${until}" is not a date (YYYY-MM-DD, or an ISO 8601 time such as 2027-01-31T12:00:00Z)`);
    return undefined;
  }
  const kept = ctx.now.getTime() < end.getTime();
  // Once the date has passed the file may be gone: the old certificate is then found by its name.
  const exists = ctx.readInventoryFile(file) !== undefined;
  const certificate = exists || kept ? readCertificate(file, kept ? 'present' : 'absent', ctx, (m) => error('.previous_certificate_file', m)) : undefined;
  if (certificate && current && certificate.fingerprint === current.fingerprint) {
    error('.previous_certificate_file', `"${file}" holds the same certificate as certificate_file; the previous certificate is the one this entry replaced`);
    return undefined;
  }
  if (kept && !certificate) return undefined;
  return certificate ? { certificate, until, kept } : { until, kept };
}

/** The first instant after `until`: the next UTC midnight for a day, the instant itself for a time. */
function endOf(until: string): Date | undefined {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(until);
  if (day) {
    const [y, m, d] = [Number(day[1]), Number(day[2]), Number(day[3])];
    const start = new Date(Date.UTC(y, m - 1, d));
    // 2027-02-30 is not a day: Date would roll it over to March.
    if (start.getUTCFullYear() !== y || start.getUTCMonth() !== m - 1 || start.getUTCDate() !== d) return undefined;
    return new Date(start.getTime() + 86_400_000);
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(until)) return undefined;
  const at = new Date(until);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/** Reads and checks one certificate_file; reports through `fail` and returns undefined on a problem. */
function readCertificate(file: string, state: 'present' | 'absent', ctx: DesiredContext, fail: (message: string) => void): CertificateInfo | undefined {
  const bytes = ctx.readInventoryFile(file);
  const unreadable = unreadableReason(bytes);
  if (unreadable) {
    fail(`certificate file "${file}" ${unreadable}`);
    return undefined;
  }
  if (!bytes) {
    if (state === 'present') fail(`certificate file "${file}" does not exist (paths are relative to the inventory folder ${ctx.inventory.baseDir})`);
    return undefined;
  }
  let parsed = parsedFiles.get(bytes);
  if (!parsed) {
    parsed = parseFile(bytes);
    parsedFiles.set(bytes, parsed);
  }
  if (typeof parsed === 'string') {
    fail(parsed.replace('FILE', file));
    return undefined;
  }
  const info = parsed;
  if (state === 'present') {
    const validity = validityAt(info, ctx.now);
    if (validity === 'expired') {
      fail(`certificate in "${file}" expired on ${info.notAfter.toISOString()}; Incus refuses expired certificates: issue a new one`);
      return undefined;
    }
    if (validity === 'not-yet-valid') {
      fail(`certificate in "${file}" is not valid before ${info.notBefore.toISOString()}; Incus refuses it until then`);
      return undefined;
    }
  }
  return info;
}

/** Parsed certificate files by their bytes: an inventory names the same file for many hosts. */
const parsedFiles = new WeakMap<Buffer, CertificateInfo | string>();

/** The certificate, or the reason it is refused (with FILE for the file name). */
function parseFile(bytes: Buffer): CertificateInfo | string {
  const text = bytes.toString('utf8');
  if (containsPrivateKey(text)) {
    return 'certificate file "FILE" holds a private key; only the public certificate belongs in the inventory (keep the key out of it and out of Git)';
  }
  try {
    return parseCertificatePem(text);
  } catch (e) {
    if (!(e instanceof CertificateParseError)) throw e;
    return `certificate file "FILE": ${e.message}`;
  }
}

function stringList(def: VarDefinition | undefined): string[] {
  return def && Array.isArray(def.value) ? def.value.map(String) : [];
}
