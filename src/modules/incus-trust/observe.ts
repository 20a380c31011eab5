/**
 * Reads one host's Incus trust store: every trusted certificate with its validity, its projects,
 * and — when a plan can depend on them — the server (name, version, API extensions, clustered,
 * cluster identity, addresses) and its cluster members. What Incus answers is checked for shape
 * before it is used: a wrong type or a missing field fails that host with the path of the bad
 * value, instead of a plan built on half-parsed data.
 */
import { TransportError } from '../../errors.js';
import { parseCertificateDer, parseCertificatePem } from '../../pki/certificate.js';
import type { HostSession } from '../../transport/types.js';
import { TRUST_API_EXTENSIONS, type IncusDaemonInfo, type LiveCertificate, type ObservedTrust } from './model.js';

/** A value in an Incus answer that does not have the shape we rely on. */
export class ShapeError extends Error {
  constructor(
    readonly valuePath: string,
    message: string,
  ) {
    super(`${valuePath}: ${message}`);
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}` : `${typeof v} ${JSON.stringify(v)}`;
}

function object(v: unknown, at: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ShapeError(at, `expected an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}
function list(v: unknown, at: string): unknown[] {
  if (!Array.isArray(v)) throw new ShapeError(at, `expected a list, got ${describe(v)}`);
  return v;
}
function string(v: unknown, at: string): string {
  if (typeof v !== 'string') throw new ShapeError(at, `expected a string, got ${describe(v)}`);
  return v;
}
function optionalString(v: unknown, at: string): string | undefined {
  return v === undefined || v === null ? undefined : string(v, at);
}
function boolean(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') throw new ShapeError(at, `expected true or false, got ${describe(v)}`);
  return v;
}

/** GET /1.0 metadata → what the daemon says of itself, and whether it is clustered (and which cluster). */
export function readServerInfo(metadata: unknown): { daemon: IncusDaemonInfo; clustered: boolean; clusterId?: string } {
  const m = object(metadata, 'metadata');
  const env = object(m.environment, 'metadata.environment');
  const config = m.config === undefined || m.config === null ? {} : object(m.config, 'metadata.config');
  const clustered = boolean(env.server_clustered, 'metadata.environment.server_clustered');
  const extensions =
    m.api_extensions === undefined || m.api_extensions === null ? undefined : usedExtensions(list(m.api_extensions, 'metadata.api_extensions'));
  const daemon: IncusDaemonInfo = {
    serverName: string(env.server_name, 'metadata.environment.server_name'),
    // Incus and LXD both say which they are; a daemon that does not is read as Incus.
    kind: optionalString(env.server, 'metadata.environment.server') ?? 'incus',
    version: string(env.server_version, 'metadata.environment.server_version'),
    extensions,
    httpsAddress: optionalString(config['core.https_address'], 'metadata.config["core.https_address"]'),
    metricsAddress: optionalString(config['core.metrics_address'], 'metadata.config["core.metrics_address"]'),
  };
  return {
    daemon,
    clustered,
    // Every member of a cluster presents the cluster certificate: its fingerprint names the shared store.
    clusterId: clustered ? string(env.certificate_fingerprint, 'metadata.environment.certificate_fingerprint') : undefined,
  };
}

/**
 * Of the ~400 extension names a server lists, those a trust plan asks about (kept for every host
 * until the plan is made, so only these). Each name is checked, but the path of a bad one is
 * spelled out only when there is one.
 */
function usedExtensions(names: unknown[]): string[] {
  const bad = names.findIndex((n) => typeof n !== 'string');
  if (bad >= 0) string(names[bad], `metadata.api_extensions[${bad}]`);
  return TRUST_API_EXTENSIONS.filter((e) => names.includes(e));
}

/** GET /1.0/cluster/members?recursion=1 metadata. */
export function readMembers(metadata: unknown): { name: string; url: string }[] {
  return list(metadata, 'metadata').map((raw, i) => {
    const m = object(raw, `metadata[${i}]`);
    return { name: string(m.server_name, `metadata[${i}].server_name`), url: string(m.url, `metadata[${i}].url`) };
  });
}

/** GET /1.0/projects metadata: URLs such as /1.0/projects/default → names. */
export function readProjects(metadata: unknown): string[] {
  return list(metadata, 'metadata').map((raw, i) => {
    const url = string(raw, `metadata[${i}]`);
    const m = /^\/1\.0\/projects\/([^?]+)/.exec(url);
    if (!m) throw new ShapeError(`metadata[${i}]`, `expected /1.0/projects/NAME, got ${describe(url)}`);
    return decodeURIComponent(m[1]!);
  });
}

/** GET /1.0/certificates?recursion=1 metadata → certificates with their validity parsed. */
export function readCertificates(metadata: unknown): LiveCertificate[] {
  return list(metadata, 'metadata').map((raw, i) => {
    const at = `metadata[${i}]`;
    const c = object(raw, at);
    const projects = c.projects === null || c.projects === undefined ? [] : list(c.projects, `${at}.projects`).map((p, j) => string(p, `${at}.projects[${j}]`));
    const { certificate, notBefore, notAfter } = returnedCertificate(string(c.certificate, `${at}.certificate`));
    const fingerprint = intern(string(c.fingerprint, `${at}.fingerprint`));
    if (!/^[0-9a-f]{64}$/.test(fingerprint)) throw new ShapeError(`${at}.fingerprint`, `expected 64 hex digits, got ${describe(fingerprint)}`);
    return {
      name: string(c.name, `${at}.name`),
      type: string(c.type, `${at}.type`),
      restricted: boolean(c.restricted, `${at}.restricted`),
      projects,
      description: optionalString(c.description, `${at}.description`) ?? '',
      fingerprint,
      certificate,
      notBefore,
      notAfter,
    };
  });
}

/**
 * One copy of each fingerprint every host returns alike: a run holds every host's answer until
 * the plan is made (the certificates themselves are kept once by returnedCertificate below).
 * Bounded, for a watch that runs for weeks.
 */
const strings = new Map<string, string>();

function intern(text: string): string {
  const known = strings.get(text);
  if (known !== undefined) return known;
  if (strings.size >= 10_000) strings.clear();
  strings.set(text, text);
  return text;
}

/**
 * A certificate as hosts return it, kept once with its validity: the same certificates are
 * trusted on every host (20 certificates on 100 hosts are 20 parses and 20 copies, not 2,000).
 * Bounded like the strings above.
 */
const certificates = new Map<string, { certificate: string; notBefore?: Date; notAfter?: Date }>();

function returnedCertificate(certificate: string): { certificate: string; notBefore?: Date; notAfter?: Date } {
  let known = certificates.get(certificate);
  if (known) return known;
  known = { certificate };
  try {
    // Incus returns PEM; older servers returned base64 DER.
    const info = certificate.includes('BEGIN') ? parseCertificatePem(certificate) : parseCertificateDer(Buffer.from(certificate, 'base64'));
    known = { certificate, notBefore: info.notBefore, notAfter: info.notAfter };
  } catch {
    // Unparsable as returned: validity stays unknown (the model allows it).
  }
  if (certificates.size >= 10_000) certificates.clear();
  certificates.set(certificate, known);
  return known;
}

/** Reads one answer and checks its shape; a bad shape fails the host at this step. */
async function read<T>(session: HostSession, path: string, step: string, parse: (metadata: unknown) => T): Promise<{ value: T }> {
  const res = await session.incus.request('GET', path, step);
  try {
    return { value: parse(res.metadata) };
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    throw new TransportError(session.spec.host, step, `unexpected answer from Incus to GET ${path}: ${e.message}`);
  }
}

export interface ObserveOptions {
  /** Read the project list: only when an entry names projects (the plan checks they exist). */
  projects: boolean;
  /**
   * Whether a standalone server must be asked what it is (GET /1.0), given the rest of what was
   * read: the module plans once without it and asks only when that plan changes something.
   * Absent: always asked (audit shows it).
   */
  needsDaemon?: (observed: ObservedTrust) => boolean;
}

/**
 * The whole trust-related state of one host. Level-based: read fresh on every run. A standalone
 * server in sync costs one request, its trust store (IncusServerInfo.daemon says when GET /1.0 is
 * asked); the project list is read only when an entry names projects.
 */
export async function observeTrust(session: HostSession, options: ObserveOptions = { projects: true }): Promise<ObservedTrust> {
  // Asked together: over HTTP they are pipelined on one stream (one round trip, one SSH channel
  // and one incusd connection per host). Awaited in order, so that a host that fails several
  // reads fails at the first step.
  const reads = [
    read(session, '/1.0/certificates?recursion=1', 'read trust store', readCertificates),
    options.projects ? read(session, '/1.0/projects', 'read projects', readProjects) : Promise.resolve({ value: [] as string[] }),
  ] as const;
  for (const r of reads) r.catch(() => undefined); // each is awaited below; none is left unhandled
  const certificates = (await reads[0]).value;
  const projects = (await reads[1]).value;
  // No per-certificate GET for its ETag: that was one more request per certificate and host
  // (2.5× the hosts' CPU for a check of 20 certificates, BENCHMARKS.md) for the rare update. Apply
  // reads the one entry it updates right before the PATCH, and uses that ETag (apply.ts).
  const observed: ObservedTrust = { server: { clustered: false, members: [] }, projects, certificates };
  if (session.identity) observed.self = session.identity.fingerprint;
  // Every cluster member's store holds the members' own certificates (type server: Incus and LXD
  // add a member's when it bootstraps or joins): a store without one is a standalone server's.
  const mayBeCluster = certificates.some((c) => c.type === 'server');
  if (!mayBeCluster && options.needsDaemon?.(observed) === false) return observed;
  const daemonRead = read(session, '/1.0', 'read server info', readServerInfo);
  const askMembers = () => read(session, '/1.0/cluster/members?recursion=1', 'read cluster members', readMembers);
  // Asked beside /1.0 where the store suggests a cluster; a standalone server refuses it, unheard.
  const membersRead = mayBeCluster ? askMembers() : undefined;
  membersRead?.catch(() => undefined);
  const server = (await daemonRead).value;
  // /1.0 says whether it is clustered, whatever the store holds (a member whose store lost the members' certificates).
  const members = server.clustered ? (await (membersRead ?? askMembers())).value : [];
  return { ...observed, server: { clustered: server.clustered, clusterId: server.clusterId, members, daemon: server.daemon } };
}
