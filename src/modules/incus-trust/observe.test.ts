import { describe, expect, it } from 'vitest';
import { TransportError } from '../../errors.js';
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
      daemon: { serverName: 'web1', kind: 'incus', extensions: undefined, version: '6.0.4', httpsAddress: '10.0.0.1:8443', metricsAddress: undefined },
      clustered: false,
      clusterId: undefined,
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
    expect(readServerInfo(lxd).daemon).toMatchObject({ kind: 'lxd', version: '5.0.2', extensions: ['certificate_update', 'metrics'] });
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
  const STANDALONE = { environment: { server_name: 'h', server_version: '6.0.4', server_clustered: false }, config: {} };
  const MEMBER = { environment: { server_name: 'm1', server_version: '6.0.4', server_clustered: true, certificate_fingerprint: 'cc' }, config: {} };
  const refused = (reason: string) => new TransportError('h', 'read cluster members', `Incus refused (500): ${reason}`);

  /** A session whose daemon answers `answers` (an Error is thrown, as the transport throws its TransportError), recording each path asked. */
  function sessionAnswering(answers: Record<string, unknown>): { session: HostSession; paths: string[] } {
    const paths: string[] = [];
    const session = {
      spec: { host: 'h' },
      incus: {
        request: async (_method: string, path: string) => {
          paths.push(path);
          const answer = answers[path];
          if (answer instanceof Error) throw answer;
          return { status: 200, metadata: answer };
        },
      },
    } as unknown as HostSession;
    return { session, paths };
  }
  const standalone = {
    '/1.0': STANDALONE,
    '/1.0/cluster/members?recursion=1': refused('Server is not clustered'),
    '/1.0/projects': ['/1.0/projects/default'],
    '/1.0/certificates?recursion=1': [],
  };

  it('reads the project list only when an entry names projects', async () => {
    const { session, paths } = sessionAnswering(standalone);
    expect((await observeTrust(session, { projects: false })).projects).toEqual([]);
    expect(paths).not.toContain('/1.0/projects');
    paths.length = 0;
    expect((await observeTrust(session, { projects: true })).projects).toEqual(['default']);
    expect(paths).toContain('/1.0/projects');
  });

  it('a store without a server certificate is a standalone server: one request when in sync, GET /1.0 when the plan needs it', async () => {
    const { session, paths } = sessionAnswering(standalone);
    const inSync = await observeTrust(session, { projects: false, needsDaemon: () => false });
    expect(paths).toEqual(['/1.0/certificates?recursion=1']);
    expect(inSync.server).toEqual({ clustered: false, members: [] });
    paths.length = 0;
    const toChange = await observeTrust(session, { projects: false, needsDaemon: () => true });
    expect(paths.sort()).toEqual(['/1.0', '/1.0/certificates?recursion=1']);
    expect(toChange.server).toMatchObject({ clustered: false, members: [], daemon: { serverName: 'h', kind: 'incus', version: '6.0.4' } });
    // Without the question (audit), always.
    paths.length = 0;
    expect((await observeTrust(session)).server.daemon?.serverName).toBe('h');
  });

  // A cluster member's store holds the members' own certificates, type server.
  const MEMBER_CERT = { name: 'm1', type: 'server', restricted: false, projects: [], fingerprint: 'd'.repeat(64), certificate: '' };

  it('a store with a server certificate: its members and its identity from GET /1.0, even when nothing changes', async () => {
    const { session, paths } = sessionAnswering({
      ...standalone,
      '/1.0': MEMBER,
      '/1.0/cluster/members?recursion=1': [{ server_name: 'm1', url: 'https://10.0.0.1:8443' }],
      '/1.0/certificates?recursion=1': [MEMBER_CERT],
    });
    const observed = await observeTrust(session, { projects: false, needsDaemon: () => false });
    expect(paths.sort()).toEqual(['/1.0', '/1.0/certificates?recursion=1', '/1.0/cluster/members?recursion=1']);
    expect(observed.server).toMatchObject({ clustered: true, clusterId: 'cc', members: [{ name: 'm1', url: 'https://10.0.0.1:8443' }] });
    // A standalone server that holds a server certificate all the same refuses the members.
    const alone = sessionAnswering({ ...standalone, '/1.0/certificates?recursion=1': [MEMBER_CERT] });
    expect((await observeTrust(alone.session, { projects: false, needsDaemon: () => false })).server).toMatchObject({ clustered: false, members: [] });
  });

  it('a member whose store lost the server certificates: GET /1.0 says it is clustered, and the members are read', async () => {
    const { session } = sessionAnswering({
      ...standalone,
      '/1.0': MEMBER,
      '/1.0/cluster/members?recursion=1': [{ server_name: 'm1', url: 'https://m1:8443' }],
    });
    expect((await observeTrust(session, { projects: false, needsDaemon: () => true })).server).toMatchObject({
      clustered: true,
      clusterId: 'cc',
      members: [{ name: 'm1' }],
    });
  });

  it('a members refusal: GET /1.0 decides (a standalone server goes on, a cluster fails with the refusal)', async () => {
    const other = refused('not found');
    const store = { '/1.0/certificates?recursion=1': [MEMBER_CERT], '/1.0/cluster/members?recursion=1': other };
    const alone = sessionAnswering({ ...standalone, ...store });
    expect((await observeTrust(alone.session, { projects: false, needsDaemon: () => false })).server).toMatchObject({ clustered: false, members: [] });
    const member = sessionAnswering({ ...standalone, ...store, '/1.0': MEMBER });
    await expect(observeTrust(member.session, { projects: false })).rejects.toBe(other);
  });
});
