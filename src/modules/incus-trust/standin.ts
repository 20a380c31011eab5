/**
 * STAND-IN until the transport engineer's observe.ts lands: the smallest observe() the engine
 * needs (server info, projects, the trust store with each entry's ETag). Replaced, not extended.
 */
import { parseCertificateDer, parseCertificatePem } from '../../pki/certificate.js';
import type { HostSession } from '../../transport/types.js';
import type { LiveCertificate, ObservedTrust } from './model.js';

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
