/**
 * STAND-IN until the inventory engineer's desired.ts and the transport engineer's observe.ts
 * land: the smallest desired() and observe() the engine needs. Replaced, not extended.
 */
import type { Problem } from '../../errors.js';
import type { InventoryHost } from '../../inventory/model.js';
import { CertificateParseError, parseCertificateDer, parseCertificatePem } from '../../pki/certificate.js';
import type { HostSession } from '../../transport/types.js';
import type { DesiredContext, DesiredResult } from '../types.js';
import type { DesiredCertificate, DesiredTrust, LiveCertificate, ObservedTrust } from './model.js';

export function desiredTrustStandIn(host: InventoryHost, ctx: DesiredContext): DesiredResult<DesiredTrust> {
  const problems: Problem[] = [];
  const clients = host.vars.incus_trusted_clients;
  if (!clients && !host.vars.incus_metrics_certificates && !host.vars.incus_trust_prune) return { problems };
  const certificates: DesiredCertificate[] = [];
  for (const [variable, type] of [['incus_trusted_clients', 'client']] as const) {
    const def = host.vars[variable];
    if (!def || !Array.isArray(def.value)) continue;
    def.value.forEach((raw: Record<string, unknown>, i: number) => {
      const valuePath = `${def.valuePath}[${i}]`;
      const location = def.nested.get(`[${i}]`) ?? def.location;
      const file = String(raw.certificate_file ?? '');
      const bytes = file ? ctx.readInventoryFile(file) : undefined;
      let certificate;
      if (bytes) {
        try {
          certificate = parseCertificatePem(bytes.toString('utf8'));
        } catch (e) {
          if (!(e instanceof CertificateParseError)) throw e;
          problems.push({ severity: 'error', location, valuePath: `${valuePath}.certificate_file`, message: `${file}: ${e.message}` });
        }
      } else if (raw.state !== 'absent') {
        problems.push({ severity: 'error', location, valuePath: `${valuePath}.certificate_file`, message: `${file}: no such file` });
      }
      certificates.push({
        name: String(raw.name),
        type,
        description: String(raw.description ?? ''),
        restricted: raw.restricted === true,
        projects: Array.isArray(raw.projects) ? raw.projects.map(String) : [],
        state: raw.state === 'absent' ? 'absent' : 'present',
        certificate,
        certificateFile: file,
        location,
        valuePath,
      });
    });
  }
  const protectedList = host.vars.incus_trust_protected?.value;
  return {
    desired: {
      certificates,
      prune: host.vars.incus_trust_prune?.value === true,
      protected: Array.isArray(protectedList) ? protectedList.map(String) : [],
    },
    problems,
  };
}

interface ServerMetadata {
  environment?: { server_name?: string; server_version?: string; server_clustered?: boolean; certificate_fingerprint?: string };
  config?: Record<string, string>;
}

interface CertificateMetadata {
  name: string;
  type: string;
  restricted: boolean;
  projects: string[] | null;
  description?: string;
  fingerprint: string;
  certificate: string;
}

export async function observeTrustStandIn(session: HostSession): Promise<ObservedTrust> {
  const server = (await session.incus.request<ServerMetadata>('GET', '/1.0', 'read server info')).metadata;
  const projects = (await session.incus.request<string[]>('GET', '/1.0/projects', 'read projects')).metadata;
  const list = (await session.incus.request<CertificateMetadata[]>('GET', '/1.0/certificates?recursion=1', 'read trust store')).metadata;
  const etags: Record<string, string> = {};
  const certificates: LiveCertificate[] = [];
  for (const c of list) {
    const one = await session.incus.request<CertificateMetadata>('GET', `/1.0/certificates/${c.fingerprint}`, 'read trust store');
    if (one.etag) etags[c.fingerprint] = one.etag;
    let notBefore: Date | undefined;
    let notAfter: Date | undefined;
    try {
      const info = c.certificate.includes('BEGIN') ? parseCertificatePem(c.certificate) : parseCertificateDer(Buffer.from(c.certificate, 'base64'));
      notBefore = info.notBefore;
      notAfter = info.notAfter;
    } catch {
      // Unparsable as returned: validity stays unknown.
    }
    certificates.push({
      name: c.name,
      type: c.type,
      restricted: c.restricted,
      projects: c.projects ?? [],
      description: c.description ?? '',
      fingerprint: c.fingerprint,
      certificate: c.certificate,
      notBefore,
      notAfter,
    });
  }
  const env = server.environment ?? {};
  const clustered = env.server_clustered === true;
  return {
    server: {
      serverName: env.server_name ?? session.spec.host,
      version: env.server_version ?? '',
      clustered,
      clusterId: clustered ? env.certificate_fingerprint : undefined,
      httpsAddress: server.config?.['core.https_address'],
      metricsAddress: server.config?.['core.metrics_address'],
      members: [],
    },
    projects: projects.map((p) => decodeURIComponent(p.replace(/^\/1\.0\/projects\//, '').replace(/\?.*$/, ''))),
    certificates,
    etags,
  };
}
