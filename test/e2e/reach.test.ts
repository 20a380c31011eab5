/**
 * Every way to reach a server (#13), on real daemons: Incus over SSH, Incus over its HTTPS API
 * only (no sshd at all on that address, as IncusOS), LXD (Debian's LXD 5.0) over SSH and over
 * HTTPS only. Stores are read back with each daemon's own client (`incus` / `lxc`).
 */
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { selfSignedPair, startLab } from '../lab/lab.js';
import type { Lab, LabHost } from '../lab/types.js';
import { client, makeCert, makeTempDir, reconcile, type GeneratedCert } from './trust-support.js';

let lab: Lab;
let root: string;
let certs: Record<string, GeneratedCert>;
const cli = (args: string[], env: NodeJS.ProcessEnv = lab.env) => reconcile(args, { env });
const HOSTS = ['incus-ssh', 'incus-https', 'lxd-ssh', 'lxd-https'];

/** name → fingerprint prefix of each trusted client certificate, as the daemon's own client lists it. */
async function store(h: LabHost): Promise<string[]> {
  const rows = JSON.parse(await h.incus(['config', 'trust', 'list', '--format', 'json'])) as { name: string; fingerprint: string; type: string }[];
  return rows
    .filter((r) => r.type !== 'server')
    .map((r) => `${r.name} ${r.fingerprint.slice(0, 12)}`)
    .sort();
}

const fingerprintOf = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256.replace(/:/g, '').toLowerCase();

async function inventory(name: string, hosts: Record<string, Record<string, unknown>>, vars: Record<string, unknown>): Promise<string> {
  const file = join(root, name);
  await writeFile(file, stringify({ all: { vars, children: { incus: { hosts } } } }));
  return file;
}

const varsOf = (names: string[]) => Object.fromEntries(names.map((n) => [n, lab.host(n).inventoryVars()]));

/** Runs a client command (incus / lxc) with the lab's client HOME, as a user at their desk. */
function clientCommand(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { env: { ...lab.env, INCUS_CONF: '', LXD_CONF: '' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')}: exit ${code}: ${out}`))));
  });
}

beforeAll(async () => {
  root = await makeTempDir('reach');
  lab = await startLab({
    name: 'reach',
    hosts: [
      { name: 'incus-ssh' },
      { name: 'incus-https', ssh: false },
      { name: 'lxd-ssh', server: 'lxd' },
      { name: 'lxd-https', server: 'lxd', ssh: false },
      { name: 'lxd-noforward', server: 'lxd', streamLocalForwarding: false },
    ],
  });
  certs = { alice: await makeCert(root, 'alice'), bob: await makeCert(root, 'bob') };
}, 180_000);

afterAll(async () => {
  await lab?.stop();
  if (root) await rm(root, { recursive: true, force: true });
}, 120_000);

describe('one inventory, four ways in', () => {
  it('Incus and LXD, over SSH and over HTTPS only: --check 2, apply 0, --check 0; each store read back with its own client', async () => {
    // Nothing listens for SSH on the HTTPS-only hosts: whatever reconcile did there went through the API.
    for (const name of ['incus-https', 'lxd-https']) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(22, lab.host(name).address);
        s.once('connect', () => (s.destroy(), resolve(false)));
        s.once('error', () => resolve(true));
      });
      expect(refused, `${name} must have no sshd`).toBe(true);
      expect(lab.host(name).inventoryVars()).not.toHaveProperty('ansible_host');
    }
    const inv = await inventory('four.yaml', varsOf(HOSTS), {
      incus_trusted_clients: [client('alice', certs.alice!, { description: 'laptop' }), client('bob', certs.bob!, { restricted: true, projects: ['default'] })],
    });
    const check = await cli(['-i', inv, '--check']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    for (const h of HOSTS) expect(check.stdout).toMatch(new RegExp(`^${h}:\\n  \\+ incus certificate "alice"`, 'm'));
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    const again = await cli(['-i', inv, '--check']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    // LXD 5.0 keeps no descriptions: in sync all the same, and said on every run (GET /1.0 is
    // asked there because the description alone would be a change).
    const unkept =
      /^  warning: this lxd 5\.0\.\d+ server keeps no descriptions \(no API extension certificate_description\): the description of "alice" is not sent$/gm;
    expect(again.stdout.match(unkept), again.stdout).toHaveLength(2);

    const own = `client.crt ${(await fingerprintOf(lab.clientCertFile)).slice(0, 12)}`;
    const wanted = [`alice ${certs.alice!.fingerprint.slice(0, 12)}`, `bob ${certs.bob!.fingerprint.slice(0, 12)}`];
    expect(await store(lab.host('incus-ssh'))).toEqual(wanted);
    expect(await store(lab.host('lxd-ssh'))).toEqual(wanted);
    // The HTTPS hosts also trust the certificate reconcile itself authenticates with.
    expect(await store(lab.host('incus-https'))).toEqual([...wanted, own].sort());
    expect(await store(lab.host('lxd-https'))).toEqual([...wanted, own].sort());
    // bob's restriction reached LXD too (certificate_project).
    const bob = JSON.parse(
      await lab
        .host('lxd-https')
        .incus(['config', 'trust', 'show', certs.bob!.fingerprint.slice(0, 12)])
        .then((y) => JSON.stringify(y)),
    );
    expect(bob).toMatch(/restricted: true/);

    // audit names each daemon and its version, read the same way.
    const audit = await cli(['audit', '-i', inv]);
    expect(audit.exitCode, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/^incus-https \(\S+, incus 6\.\S+, standalone\)/m);
    expect(audit.stdout).toMatch(/^lxd-https \(\S+, lxd 5\.0\.\d+, standalone\)/m);
    expect(audit.stdout).toMatch(/^lxd-ssh \(\S+, lxd 5\.0\.\d+, standalone\)/m);
  });

  it('a prune, a state: absent and a rotation of the certificate reconcile authenticates with are refused, saying why; the rest is applied', async () => {
    const own = await fingerprintOf(lab.clientCertFile);
    const base = { incus_trusted_clients: [client('alice', certs.alice!)] };
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['prune.yaml', { ...base, incus_trust_prune: true }, /pruning it would lock reconcile out/],
      [
        'absent.yaml',
        { incus_trusted_clients: [...base.incus_trusted_clients, { name: 'client.crt', state: 'absent', fingerprint: own.slice(0, 12) }] },
        /revoking it \(state: absent\) would lock reconcile out/,
      ],
      [
        'rotate.yaml',
        { incus_trusted_clients: [...base.incus_trusted_clients, client('client.crt', certs.bob!)] },
        /rotating it to another certificate would lock reconcile out/,
      ],
    ];
    for (const [file, vars, why] of cases) {
      const inv = await inventory(file, varsOf(['incus-https', 'lxd-https']), vars);
      const run = await cli(['-i', inv]);
      expect(run.exitCode, run.stdout + run.stderr).toBe(0);
      for (const h of ['incus-https', 'lxd-https']) {
        expect(run.stdout).toMatch(
          new RegExp(
            `^${h}:[\\s\\S]*?certificate "client.crt" \\(${own.slice(0, 12)}\\) is the one reconcile authenticates with over HTTPS: ${why.source}`,
            'm',
          ),
        );
        expect(await store(lab.host(h)), `${file} on ${h}`).toContain(`client.crt ${own.slice(0, 12)}`);
      }
    }
    // The prune went on for everything else: bob is gone, alice and the tool's own certificate stay.
    expect(await store(lab.host('lxd-https'))).toEqual([`alice ${certs.alice!.fingerprint.slice(0, 12)}`, `client.crt ${own.slice(0, 12)}`].sort());
  });
});

describe('a saved plan over HTTPS', () => {
  it('--check --out, then apply PLAN reaches the HTTPS-only hosts again from what the plan holds', async () => {
    const inv = await inventory('saved.yaml', varsOf(['incus-https', 'lxd-https']), {
      incus_trusted_clients: [client('alice', certs.alice!), client('erin', certs.bob!)],
    });
    const planFile = join(root, 'https-plan.json');
    const check = await cli(['-i', inv, '--check', '--out', planFile]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    const saved = JSON.parse(await readFile(planFile, 'utf8')) as { hosts: { connection: { connection: string; api?: { url: string } } }[] };
    expect(saved.hosts.map((h) => h.connection.connection)).toEqual(['https', 'https']);
    expect(JSON.stringify(saved)).not.toMatch(/PRIVATE KEY/);
    const apply = await cli(['apply', planFile]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    for (const h of ['incus-https', 'lxd-https']) expect(await store(lab.host(h))).toContain(`erin ${certs.bob!.fingerprint.slice(0, 12)}`);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
  });
});

describe('metrics over HTTPS', () => {
  it('a metrics certificate is registered over the API on Incus and LXD, and scrape-config reads the targets over it', async () => {
    const https = ['incus-https', 'lxd-https'];
    const inv = await inventory('metrics.yaml', varsOf(https), {
      incus_metrics_certificates: [{ name: 'prom', certificate_file: 'pki/metrics.crt', key_file: 'pki/metrics.key' }],
    });
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    const fingerprint = (await fingerprintOf(join(root, 'pki/metrics.crt'))).slice(0, 12);
    for (const h of https) {
      const rows = JSON.parse(await lab.host(h).incus(['config', 'trust', 'list', '--format', 'json'])) as {
        name: string;
        type: string;
        fingerprint: string;
      }[];
      expect(rows.filter((r) => r.type === 'metrics').map((r) => `${r.name} ${r.fingerprint.slice(0, 12)}`)).toEqual([`prom ${fingerprint}`]);
    }
    const sc = await cli(['scrape-config', '-i', inv]);
    expect(sc.exitCode, sc.stderr).toBe(0);
    const targets = /^# targets: (.*)$/m.exec(sc.stdout)?.[1]?.split(', ').sort();
    expect(targets).toEqual(https.map((h) => `${lab.host(h).address}:8443`).sort());
  });
});

describe('what needs a shell', () => {
  it('a play that needs files or commands on an HTTPS-only host fails that host, in validate and in the run; the others go on', async () => {
    const qubes = { proxy: 'monitoring', targets: [{ vm: 'personal', ports: [9100] }], autostart: true, policy_file: '20-metrics.policy' };
    const inv = await inventory(
      'shell.yaml',
      { ...varsOf(['incus-ssh']), 'lxd-https': { ...lab.host('lxd-https').inventoryVars(), qubes_prometheus_proxy: qubes } },
      {
        incus_trusted_clients: [client('alice', certs.alice!)],
      },
    );
    const why =
      /qubes_prometheus_proxy needs a shell on lxd-https \(files, commands\), but lxd-https is reached over HTTPS only \(incus_api_url at \S+shell\.yaml:\d+\)/;
    const validate = await cli(['validate', '-i', inv, 'playbooks/site.yaml']);
    expect(validate.exitCode).toBe(1);
    expect(validate.stderr).toMatch(why);
    const run = await cli(['-i', inv, '--check', '--json']);
    expect(run.exitCode).toBe(1);
    const report = JSON.parse(run.stdout) as { hosts: { host: string; status: string; error?: { step: string; message: string } }[] };
    // incus-ssh is planned as usual (in sync or drift, whichever tests ran before).
    expect(report.hosts.map((h) => `${h.host} ${h.status}`)).toEqual([expect.stringMatching(/^incus-ssh (ok|drift)$/), 'lxd-https failed']);
    expect(report.hosts[1]!.error!.step).toBe('validate');
    expect(report.hosts[1]!.error!.message).toMatch(why);
  });
});

describe('LXD over SSH', () => {
  it('where sshd forbids socket forwarding, `lxc query` carries the API (said under the host); sockets that do not open are each named', async () => {
    const h = lab.host('lxd-noforward');
    const inv = await inventory('noforward.yaml', varsOf(['lxd-noforward']), { incus_trusted_clients: [client('alice', certs.alice!)] });
    const apply = await cli(['-i', inv]);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(
      /the LXD socket is reached through `lxc query` \(cannot open \S+unix\.socket on the host: .*; cannot open \/var\/lib\/lxd\/unix\.socket on the host: .*\)/,
    );
    expect(await store(h)).toEqual([`alice ${certs.alice!.fingerprint.slice(0, 12)}`]);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
  });
});

describe('the server is who it says it is', () => {
  it('incus_remote: NAME takes the address, the client pair and the pinned server certificate from `incus remote add` / `lxc remote add`', async () => {
    await clientCommand('incus', ['remote', 'add', 'lab-incus', lab.host('incus-https').apiUrl!, '--accept-certificate']);
    await clientCommand('lxc', ['remote', 'add', 'lab-lxd', lab.host('lxd-https').apiUrl!, '--accept-certificate']);
    const listed = await clientCommand('incus', ['remote', 'list', '--format', 'csv']);
    expect(listed).toMatch(/^lab-incus,/m);
    const inv = await inventory(
      'remotes.yaml',
      { 'incus-https': { incus_remote: 'lab-incus' }, 'lxd-https': { incus_remote: 'lab-lxd', incus_server: 'lxd' } },
      { incus_trusted_clients: [client('alice', certs.alice!), client('carol', certs.bob!)] },
    );
    const check = await cli(['-i', inv, '--check', '-vvv']);
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stderr).toMatch(
      /incus-https: https https:\/\/[\d.]+:8443, client certificate \S+\/\.config\/incus\/client\.crt, server pinned by \S+\/\.config\/incus\/servercerts\/lab-incus\.crt/,
    );
    expect(check.stderr).toMatch(
      /lxd-https: https https:\/\/[\d.]+:8443, client certificate \S+\/\.config\/lxc\/client\.crt, server pinned by \S+\/\.config\/lxc\/servercerts\/lab-lxd\.crt/,
    );
    expect((await cli(['-i', inv])).exitCode).toBe(0);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);
    expect(await store(lab.host('incus-https'))).toContain(`carol ${certs.bob!.fingerprint.slice(0, 12)}`);

    const unknown = await inventory(
      'unknown-remote.yaml',
      { 'incus-https': { incus_remote: 'nope' } },
      { incus_trusted_clients: [client('alice', certs.alice!)] },
    );
    const missing = await cli(['-i', unknown, '--check']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stdout + missing.stderr).toMatch(
      /incus_remote: nope is not a remote the incus client knows \(the remotes of \S+incus\/config\.yml, \S+lxc\/config\.yml\); add it with `incus remote add nope https:\/\/HOST:8443`/,
    );
  });

  it('an unknown server certificate fails the host naming its fingerprint; --accept-new-host-keys records it; a replaced one is never accepted', async () => {
    const h = lab.host('incus-https');
    const serverFingerprint = await fingerprintOf(h.serverCertFile!);
    const colons = serverFingerprint.match(/../g)!.join(':');
    const vars = { incus_trusted_clients: [client('alice', certs.alice!)] };
    // Not pinned: refused, naming the fingerprint the user can compare with `incus info`.
    const inv = await inventory('unpinned.yaml', { 'incus-https': { incus_api_url: h.apiUrl } }, vars);
    const first = await cli(['-i', inv, '--check']);
    expect(first.exitCode, first.stdout + first.stderr).toBe(1);
    expect(first.stdout).toContain(`unknown server certificate, SHA-256 fingerprint ${colons}`);
    const accepted = await cli(['-i', inv, '--check', '--accept-new-host-keys']);
    expect(accepted.exitCode, accepted.stdout + accepted.stderr).toBe(0);
    const recorded = join(lab.env.HOME!, '.config', 'reconcile', 'servercerts', `${h.address}_8443.crt`);
    expect(accepted.stdout).toContain(`recorded in ${recorded}`);
    expect(await fingerprintOf(recorded)).toBe(serverFingerprint);
    expect((await cli(['-i', inv, '--check'])).exitCode).toBe(0);

    // A client certificate the server does not trust: said at once, with the fix.
    const stranger = await inventory(
      'stranger.yaml',
      {
        'lxd-https': {
          ...lab.host('lxd-https').inventoryVars(),
          incus_client_cert_file: join(root, 'stranger.crt'),
          incus_client_key_file: join(root, 'stranger.key'),
        },
      },
      vars,
    );
    await selfSignedPair('stranger', join(root, 'stranger.key'), join(root, 'stranger.crt'));
    const untrusted = await cli(['-i', stranger, '--check']);
    expect(untrusted.exitCode).toBe(1);
    expect(untrusted.stdout).toMatch(
      /lxd-https: failed: authenticate: the server does not trust the client certificate \S+stranger\.crt .*auth: untrusted\); add it on the server once \(lxc config trust add stranger\.crt\)/,
    );

    // A man in the middle: the server now presents another certificate. That host fails naming
    // what it was offered; the other hosts converge; exit 1.
    await h.stopIncus();
    await copyFile(h.serverCertFile!, join(root, 'old-server.crt'));
    await rm(h.serverCertFile!);
    await rm(join(h.incusDir!, 'server.key'));
    await h.startIncus();
    const offered = (await fingerprintOf(h.serverCertFile!)).match(/../g)!.join(':');
    expect(offered).not.toBe(colons);
    const all = await inventory('mitm.yaml', varsOf(HOSTS), { incus_trusted_clients: [client('alice', certs.alice!), client('dave', certs.bob!)] });
    const run = await cli(['-i', all, '--json']);
    expect(run.exitCode, run.stderr).toBe(1);
    const report = JSON.parse(run.stdout) as { hosts: { host: string; status: string; error?: { step: string; message: string } }[] };
    const byHost = Object.fromEntries(report.hosts.map((x) => [x.host, x]));
    expect(byHost['incus-https']!.status).toBe('failed');
    expect(byHost['incus-https']!.error!.step).toBe('verify server certificate');
    expect(byHost['incus-https']!.error!.message).toContain(
      `the server offered a certificate with SHA-256 fingerprint ${offered}, not the one pinned in ${h.pinnedServerCertFile}`,
    );
    for (const other of ['incus-ssh', 'lxd-ssh', 'lxd-https']) expect(byHost[other]!.status, other).toBe('changed');
    // Even with --accept-new-host-keys: a changed certificate is never accepted.
    const again = await cli(['-i', all, '--accept-new-host-keys', '--check']);
    expect(again.exitCode).toBe(1);
    expect(again.stdout).toContain(`fingerprint ${offered}`);
  });
});
