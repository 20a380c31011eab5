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
import type { InventoryHost, VarDefinition } from '../../inventory/model.js';
import { CertificateParseError, containsPrivateKey, parseCertificatePem, validityAt, type CertificateInfo } from '../../pki/certificate.js';
import type { DesiredContext } from '../types.js';
import type { DesiredCertificate } from './model.js';

export interface DesiredTrustClients {
  certificates: DesiredCertificate[];
  prune: boolean;
  protected: string[];
  problems: Problem[];
}

interface RawEntry {
  name?: unknown;
  description?: unknown;
  certificate_file?: unknown;
  restricted?: unknown;
  projects?: unknown;
  state?: unknown;
}

export function desiredTrustClients(host: InventoryHost, ctx: DesiredContext): DesiredTrustClients {
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
    const certificate = file ? readCertificate(file, state, ctx, (m) => error('.certificate_file', m)) : undefined;
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
    certificates.push({
      name: raw.name,
      type: 'client',
      description: typeof raw.description === 'string' ? raw.description : '',
      restricted,
      projects,
      state,
      certificate,
      certificateFile: file,
      location: at(''),
      valuePath,
    });
  });
  return {
    certificates,
    prune: host.vars.incus_trust_prune?.value === true,
    protected: stringList(host.vars.incus_trust_protected),
    problems,
  };
}

/** Reads and checks one certificate_file; reports through `fail` and returns undefined on a problem. */
function readCertificate(file: string, state: 'present' | 'absent', ctx: DesiredContext, fail: (message: string) => void): CertificateInfo | undefined {
  const bytes = ctx.readInventoryFile(file);
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
