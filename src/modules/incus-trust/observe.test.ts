import { describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../pki/generate.js';
import type { HostSession } from '../../transport/types.js';
import { observeTrust, readCertificates, readMembers, readProjects, readServerInfo } from './observe.js';

describe('reading what Incus answers', () => {
  it('server info: standalone and clustered', () => {
    const standalone = {
      environment: { server_name: 'web1', server_version: '6.0.4', server_clustered: false, certificate_fingerprint: 'aa' },
      config: { 'core.https_address': '10.0.0.1:8443' },
    };
    expect(readServerInfo(standalone)).toEqual({
      serverName: 'web1',
      kind: 'incus',
      extensions: undefined,
      version: '6.0.4',
      clustered: false,
      clusterId: undefined,
      httpsAddress: '10.0.0.1:8443',
      metricsAddress: undefined,
    });
    const member = { environment: { server_name: 'm1', server_version: '6.0.4', server_clustered: true, certificate_fingerprint: 'cc' }, config: {} };
    expect(readServerInfo(member).clusterId).toBe('cc');
    // LXD says which it is and what it can do.
    const lxd = {
      ...standalone,
      environment: { ...standalone.environment, server: 'lxd', server_version: '5.0.2' },
      api_extensions: ['storage', 'metrics', 'certificate_update'],
    };
    // Of the names it lists, those a trust plan asks about are kept.
    expect(readServerInfo(lxd)).toMatchObject({ kind: 'lxd', version: '5.0.2', extensions: ['certificate_update', 'metrics'] });
    expect(() => readServerInfo({ ...lxd, api_extensions: [1] })).toThrow('metadata.api_extensions[0]: expected a string, got number 1');
  });

  it('names the exact value that has the wrong shape', () => {
    expect(() => readServerInfo({ environment: { server_name: 'x', server_version: 6, server_clustered: false } })).toThrow(
      'metadata.environment.server_version: expected a string, got number 6',
    );
    expect(() => readServerInfo(null)).toThrow('metadata: expected an object, got null');
    expect(() => readCertificates([{ name: 'a', type: 'client', restricted: 'no', projects: [], fingerprint: 'a'.repeat(64), certificate: '' }])).toThrow(
      'metadata[0].restricted: expected true or false, got the string "no"',
    );
    expect(() => readCertificates({})).toThrow('metadata: expected a list, got object {}');
    expect(() => readProjects(['/1.0/projects/default', 7])).toThrow('metadata[1]: expected a string, got number 7');
    expect(() => readMembers([{ server_name: 'a' }])).toThrow('metadata[0].url: expected a string, got nothing (the field is missing)');
  });

  it('projects from their URLs', () => {
    expect(readProjects(['/1.0/projects/default', '/1.0/projects/my%20proj'])).toEqual(['default', 'my proj']);
  });

  it('certificates with their validity; projects null → []; unparsable PEM leaves validity unknown', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const { certificatePem, info } = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 10, now, type: 'metrics' });
    const [c, broken] = readCertificates([
      { name: 'prom', type: 'metrics', restricted: false, projects: null, description: 'scraper', fingerprint: info.fingerprint, certificate: certificatePem },
      { name: 'odd', type: 'client', restricted: true, projects: ['p'], fingerprint: 'b'.repeat(64), certificate: 'garbage' },
    ]);
    expect(c).toMatchObject({ name: 'prom', type: 'metrics', restricted: false, projects: [], description: 'scraper', notAfter: info.notAfter });
    expect(broken).toMatchObject({ name: 'odd', projects: ['p'], description: '', notBefore: undefined, notAfter: undefined });
  });
});

describe('observeTrust', () => {
  it('reads the project list only when an entry names projects: two requests per host otherwise', async () => {
    const paths: string[] = [];
    const answers: Record<string, unknown> = {
      '/1.0': { environment: { server_name: 'h', server_version: '6.0.4', server_clustered: false }, config: {} },
      '/1.0/projects': ['/1.0/projects/default'],
      '/1.0/certificates?recursion=1': [],
    };
    const session = {
      spec: { host: 'h' },
      incus: {
        request: async (_method: string, path: string) => {
          paths.push(path);
          return { status: 200, metadata: answers[path] };
        },
      },
    } as unknown as HostSession;
    expect((await observeTrust(session, { projects: false })).projects).toEqual([]);
    expect(paths.sort()).toEqual(['/1.0', '/1.0/certificates?recursion=1']);
    paths.length = 0;
    expect((await observeTrust(session, { projects: true })).projects).toEqual(['default']);
    expect(paths).toContain('/1.0/projects');
  });
});
