// A `reconcile --check` and an apply run inside the build, so that the code cache
// scripts/bundle.mjs writes holds what they run: V8 puts a function's bytecode in the cache only once it was compiled,
// and a cache of only those (~1 MB) starts a run faster than one of every function (~2 MB, most
// never run by a check), which is faster than compiling. What the training never ran, a real run
// compiles when it first calls it, as without a cache.
//
// The check runs against two stand-ins for "an SSH host with incusd behind it", on 127.0.0.1:
// ssh2's own server, answering over the forwarded Incus socket what a check and an apply ask. They
// exist only to drive the client's code (handshake, channel, HTTP, plan, report); the behaviour
// itself is tested against real sshd and incusd (test/e2e). Nothing of this is in the bundle.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { Server, utils } = require('ssh2');

/** The API extensions a trust plan asks about (src/modules/incus-trust/model.ts), among others. */
const EXTENSIONS = ['certificate_update', 'metrics', 'certificate_project', 'certificate_description', 'network', 'storage', 'instances'];

/**
 * Runs `dispatch(['--check', …])` of the bundle just loaded, then an apply, against two stand-in
 * hosts: one whose trust store holds both certificates of the inventory, one missing one (so the
 * plan's change, its rendering and its apply run too). Throws when either does not end as it must
 * (the check: exit 2, changes found; the apply: exit 0).
 */
export async function trainCheck(dispatch) {
  const dir = mkdtempSync(join(tmpdir(), 'reconcile-cache-training-'));
  const home = process.env.HOME;
  const servers = [];
  try {
    const out = [];
    const io = { stdout: (t) => out.push(t), stderr: (t) => out.push(t), isTTY: false, noColor: true, env: {}, cwd: dir };
    mkdirSync(join(dir, '.ssh'), { recursive: true });
    mkdirSync(join(dir, 'inv'), { recursive: true });
    process.env.HOME = dir; // the SSH client reads ~/.ssh from the process's home
    io.env = { ...process.env, RECONCILE_LOCK_DIR: join(dir, 'locks') };

    for (const name of ['train-a', 'train-b']) {
      const code = await dispatch(['cert', 'generate', name, '--out-dir', join(dir, 'inv', 'certs')], io);
      if (code !== 0) throw new Error(`cert generate ${name} exited ${code}:\n${out.join('')}`);
    }
    const pems = ['train-a', 'train-b'].map((n) => readFileSync(join(dir, 'inv', 'certs', `${n}.crt`), 'utf8'));

    const clientKey = utils.generateKeyPairSync('ed25519');
    writeFileSync(join(dir, '.ssh', 'id_train'), clientKey.private);
    chmodSync(join(dir, '.ssh', 'id_train'), 0o600);
    const hostKey = utils.generateKeyPairSync('ed25519');
    const hostPublic = hostKey.public.split(' ').slice(0, 2).join(' ');
    const ports = [];
    for (const trusted of [pems, pems.slice(0, 1)]) {
      const server = await listen(
        hostKey.private,
        trusted.map((certificate, i) => entry({ name: `train-${'ab'[i]}`, certificate })),
      );
      servers.push(server);
      ports.push(server.address().port);
    }
    // As a user's: one host hashed (HashKnownHosts), one not, and a config with a block.
    const hashed = (name) => {
      const salt = randomBytes(20);
      return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    };
    writeFileSync(join(dir, '.ssh', 'known_hosts'), `${hashed(`[127.0.0.1]:${ports[0]}`)} ${hostPublic}\n[127.0.0.1]:${ports[1]} ${hostPublic}\n`);
    writeFileSync(join(dir, '.ssh', 'config'), 'Host train*\n  ServerAliveInterval 30\n\nHost *\n  IdentitiesOnly yes\n');

    const hosts = ports
      .map(
        (p, i) =>
          `        train${i + 1}:\n          ansible_host: 127.0.0.1\n          ansible_port: ${p}\n          ansible_user: root\n` +
          `          ansible_ssh_private_key_file: ${join(dir, '.ssh', 'id_train')}\n          incus_socket: /var/lib/incus/unix.socket\n`,
      )
      .join('');
    const inventory = join(dir, 'inv', 'inventory.yaml');
    writeFileSync(
      inventory,
      `all:\n  vars:\n    incus_trusted_clients:\n` +
        `      - name: train-a\n        certificate_file: certs/train-a.crt\n` +
        `      - name: train-b\n        certificate_file: certs/train-b.crt\n` +
        `  children:\n    incus:\n      hosts:\n${hosts}`,
    );
    const runs = [
      [['--check', '-i', inventory], 2],
      [['-i', inventory, '--yes'], 0],
    ];
    for (const [args, expected] of runs) {
      const code = await dispatch(args, io);
      if (code !== expected) throw new Error(`reconcile ${args.join(' ')} (training the code cache) exited ${code}, not ${expected}:\n${out.join('')}`);
    }
  } finally {
    if (home === undefined) delete process.env.HOME;
    else process.env.HOME = home;
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An ssh2 server that lets any key in and answers Incus's GETs on any forwarded socket. */
function listen(hostKey, store) {
  const server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    client.on('ready', () => client.on('openssh.streamlocal', (accept) => answerHttp(accept(), store)));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * HTTP/1.1, kept alive, answered as incusd answers (chunked, with an ETag): GET /1.0, the trust
 * store (a list of entries that POST adds to, DELETE removes from, PUT and PATCH change).
 */
function answerHttp(stream, store) {
  let pending = Buffer.alloc(0);
  stream.on('error', () => {});
  stream.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = pending.subarray(0, end).toString('latin1');
      const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
      if (pending.length < end + 4 + length) return;
      const [method, path] = head.split(' ');
      const body = length > 0 ? JSON.parse(pending.subarray(end + 4, end + 4 + length).toString('utf8')) : undefined;
      pending = pending.subarray(end + 4 + length);
      const [status, metadata] = answer(method, path, body, store);
      const json = Buffer.from(JSON.stringify({ type: 'sync', status: status === 200 ? 'Success' : 'Not Found', status_code: status, metadata }));
      const etag = createHash('sha256').update(json).digest('hex');
      const chunks = [json.subarray(0, 4096), json.subarray(4096)].filter((c) => c.length > 0);
      stream.write(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 ${status} OK\r\nContent-Type: application/json\r\nEtag: "${etag}"\r\nDate: ${new Date().toUTCString()}\r\nTransfer-Encoding: chunked\r\n\r\n`,
          ),
          ...chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]),
          Buffer.from('0\r\n\r\n'),
        ]),
      );
    }
  });
}

function answer(method, path, body, store) {
  if (method === 'GET' && path === '/1.0') {
    return [
      200,
      {
        api_extensions: EXTENSIONS,
        api_status: 'stable',
        api_version: '1.0',
        auth: 'trusted',
        config: { 'core.https_address': ':8443' },
        environment: { server: 'incus', server_name: 'train', server_version: '6.0.0', server_clustered: false, certificate_fingerprint: '0'.repeat(64) },
      },
    ];
  }
  if (method === 'GET' && path === '/1.0/certificates?recursion=1') return [200, store];
  if (method === 'POST' && path === '/1.0/certificates') {
    store.push(entry(body));
    return [200, {}];
  }
  const at = store.findIndex((e) => path === `/1.0/certificates/${e.fingerprint}`);
  if (at < 0) return [404, null];
  if (method === 'DELETE') store.splice(at, 1);
  else if (method === 'PUT' || method === 'PATCH') Object.assign(store[at], body);
  else if (method !== 'GET') return [404, null];
  return [200, store[at] ?? {}];
}

/** A trust store entry as incusd lists it, from what POST sends (a certificate as PEM or base64 DER). */
function entry({ name, type = 'client', restricted = false, projects = [], description = '', certificate }) {
  const der = Buffer.from(certificate.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
  return { name, type, restricted, projects, description, certificate: pem, fingerprint: createHash('sha256').update(der).digest('hex') };
}
