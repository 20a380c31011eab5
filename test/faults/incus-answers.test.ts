/**
 * Trust store answers that are not what Incus sends. Real Incus never answers truncated JSON or
 * wrong types, so this is the one place a stand-in is right: a tiny HTTP server on a unix
 * socket, pointed to by the host's `incus_socket`. Each bad answer must fail that host alone,
 * with a message naming the step — never a crash, a stack trace or an "internal error" — while a
 * real lab host in the same run is reconciled.
 */
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import {
  clearTrustStore,
  describeHost,
  note,
  incusJson,
  localVars,
  makeCert,
  runWithFaults,
  startSocketServer,
  tempDir,
  trustStore,
  writeInventory,
  type SocketServer,
} from './support.js';

const SERVER_INFO = { api_version: '1.0', auth: 'trusted', environment: { server_name: 'fake', server_version: '6.0.4', server_clustered: false }, config: {} };
const GOOD_CERT = {
  name: 'x',
  type: 'client',
  restricted: false,
  projects: [],
  description: '',
  fingerprint: 'ab'.repeat(32),
  certificate: 'not-a-certificate',
};

/** name → how its fake daemon answers; every other request gets a well-formed empty answer. */
type Answer = (path: string, res: ServerResponse) => boolean;
const raw =
  (status: number, body: string, type = 'application/json') =>
  (res: ServerResponse) =>
    res.writeHead(status, { 'content-type': type }).end(body);
const onList =
  (answer: (res: ServerResponse) => void): Answer =>
  (path, res) =>
    path.startsWith('/1.0/certificates') ? (answer(res), true) : false;

const BAD_ANSWERS: Record<string, { what: string; answer: Answer }> = {
  truncated: { what: 'certificate list truncated in the middle of the JSON', answer: onList(raw(200, '{"type":"sync","metadata":[{"name":"x","fingerp')) },
  notjson: { what: 'an HTML error page with status 200', answer: onList(raw(200, '<html><body>502 Bad Gateway</body></html>', 'text/html')) },
  status500: { what: 'status 500 with an HTML body', answer: onList(raw(500, '<html>oops</html>', 'text/html')) },
  listobject: { what: 'metadata an object instead of a list', answer: onList((res) => incusJson(res, { certificates: [] })) },
  listnull: { what: 'metadata null', answer: onList((res) => incusJson(res, null)) },
  entrynull: { what: 'a null entry in the list', answer: onList((res) => incusJson(res, [null])) },
  fpnumber: { what: 'fingerprint a number', answer: onList((res) => incusJson(res, [{ ...GOOD_CERT, fingerprint: 12345 }])) },
  projectsstring: { what: 'projects a string instead of a list', answer: onList((res) => incusJson(res, [{ ...GOOD_CERT, projects: 'default' }])) },
  namemissing: { what: 'an entry without name and type', answer: onList((res) => incusJson(res, [{ fingerprint: GOOD_CERT.fingerprint, certificate: '' }])) },
  serverstring: {
    what: '/1.0 metadata a string',
    answer: (path, res) => (path === '/1.0' ? (incusJson(res, 'hello'), true) : false),
  },
  projectsobject: {
    what: '/1.0/projects metadata an object',
    answer: (path, res) => (path.startsWith('/1.0/projects') ? (incusJson(res, { default: true }), true) : false),
  },
  hangs: { what: 'accepts the request and never answers (command timeout)', answer: onList(() => undefined) },
  hangsup: { what: 'closes the connection without answering', answer: onList((res) => res.socket?.destroy()) },
};

let lab: Lab;
let dir: string;
const servers: SocketServer[] = [];

beforeAll(async () => {
  lab = await startLab({ name: 'faults-answers', hosts: [{ name: 'real' }] });
  dir = await tempDir('answers');
  for (const [name, { answer }] of Object.entries(BAD_ANSWERS)) {
    servers.push(
      await startSocketServer(join(dir, `${name}.sock`), (req, _body, res) => {
        const path = req.url ?? '';
        if (answer(path, res)) return 'handled';
        if (path === '/1.0') incusJson(res, SERVER_INFO);
        else if (path.startsWith('/1.0/cluster/members'))
          res.writeHead(500).end(JSON.stringify({ type: 'error', error: 'Server is not clustered', error_code: 500 }));
        else if (path.startsWith('/1.0/projects')) incusJson(res, ['/1.0/projects/default']);
        else if (path.startsWith('/1.0/certificates')) incusJson(res, []);
        else incusJson(res, {}, 404);
        return 'handled';
      }),
    );
  }
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('trust store answers that are not what Incus sends', () => {
  it('fail that host alone, clearly, and the real host is reconciled in the same run', async () => {
    const real = lab.host('real');
    await clearTrustStore(real);
    const cert = await makeCert(dir, 'answers');
    const hosts = [
      { name: 'real', vars: localVars(real) },
      ...Object.keys(BAD_ANSWERS).map((name) => ({ name, vars: { ansible_connection: 'local', incus_socket: join(dir, `${name}.sock`) } })),
    ];
    // Restricted to a project, so that every host's project list is read too (it is only read when an entry names projects).
    const inv = await writeInventory(dir, hosts, {
      incus_trusted_clients: [{ name: 'answers', certificate_file: cert.file, restricted: true, projects: ['default'] }],
    });
    // The hanging host costs one command timeout, not the default minute.
    const { report, byHost } = await runWithFaults(['-i', inv, '--json'], {
      ...lab.env,
      RECONCILE_COMMAND_TIMEOUT_MS: '1500',
      RECONCILE_LOCK_DIR: join(dir, 'locks'),
    });
    expect(byHost.real!.status).toBe('changed');
    expect((await trustStore(real)).map((c) => c.fingerprint)).toEqual([cert.fingerprint]);

    const failures: Record<string, string> = {};
    for (const name of Object.keys(BAD_ANSWERS)) {
      const h = byHost[name]!;
      note(`Incus answer: ${BAD_ANSWERS[name]!.what}`, describeHost(report, name));
      failures[name] = `${h.status} | ${h.error?.step} | ${h.error?.message}`;
    }
    for (const name of Object.keys(BAD_ANSWERS)) {
      const h = byHost[name]!;
      expect(h.status, `${name}: ${failures[name]}`).toMatch(/^(failed|unreachable)$/);
      expect(
        h.actions.filter((x) => x.applied),
        name,
      ).toEqual([]);
      expect(h.error!.step, name).toMatch(/read|observe|connect/);
      expect(h.error!.message, `${name}: ${failures[name]}`).not.toMatch(/internal error|TypeError|Cannot read properties|undefined is not/);
    }
    expect(byHost.hangs!.error!.message).toMatch(/no answer within 1500 ms/);
  });
});
