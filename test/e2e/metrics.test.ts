/**
 * Metrics certificates end to end, against real daemons: a lab of three SSH hosts (real sshd),
 * two of them with a real incusd whose HTTPS API listens on the host's loopback address, the
 * third the Prometheus host, where a real Prometheus (Debian package) runs. reconcile
 * generates the pair, registers it as type metrics, deploys pair and prometheus.yml, reloads
 * Prometheus; Prometheus then scrapes /1.0/metrics of both daemons. Then a rotation of a
 * certificate that expires within rotate_before_days, with Prometheus watched all along.
 *
 * The runs use the shipped playbook (playbooks/site.yaml), as a user without a playbook does.
 *
 * Every check reads the real state independently of reconcile: Prometheus's /api/v1/targets,
 * `incus config trust list`, the files and their modes, /1.0/metrics fetched with a pair.
 */
import { readFileSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { manifestErrors } from '../k8s/k8s-schemas.js';
import { scrapeConfigAsJob } from '../k8s/to-prometheus.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { REPO } from './trust-support.js';
import { parseCertificatePem } from '../../src/pki/certificate.js';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { eventually, metricsStatus, startPrometheus, type PromTarget, type TestPrometheus } from './metrics-support.js';
import { reconcile, type TrustRow } from './trust-support.js';
import { startLab } from '../lab/lab.js';
import { dom0StandInState, setUpDom0StandIn } from '../lab/dom0.js';
import type { Lab, LabHost } from '../lab/types.js';

const NAME = 'prometheus-metrics';
const validateReport = new Ajv2020({ allErrors: true, validateFormats: false }).compile(
  JSON.parse(readFileSync(join(REPO, 'schema/report.schema.json'), 'utf8')),
);
let lab: Lab | undefined;
let root: string;
let hosts: LabHost[] = [];
let ADDRESSES: string[] = [];
let prom: TestPrometheus | undefined;
let inventory: string;

async function writeInventoryFile(
  entry: Record<string, unknown>,
  promVars: Record<string, unknown> = {},
  incusVars: Record<string, Record<string, unknown>> = {},
  otherGroups: Record<string, unknown> = {},
  allVars: Record<string, unknown> = {},
): Promise<void> {
  const inv = {
    all: {
      vars: { incus_metrics_certificates: [{ name: NAME, certificate_file: 'pki/metrics.crt', key_file: 'pki/metrics.key', ...entry }], ...allVars },
      children: {
        incus: { hosts: Object.fromEntries(hosts.map((h) => [h.name, { ...h.inventoryVars(), ...(incusVars[h.name] ?? {}) }])) },
        prometheus: {
          hosts: {
            prom1: {
              ...lab!.host('prom1').inventoryVars(),
              prometheus_config_file: prom!.configFile,
              prometheus_metrics_cert_dir: join(prom!.dir, 'certs'),
              prometheus_reload_url: `${prom!.url}/-/reload`,
              prometheus_global: { scrape_interval: '2s', scrape_timeout: '2s' },
              prometheus_trust_wait_seconds: 30,
              ...promVars,
            },
          },
        },
        ...otherGroups,
      },
    },
  };
  await writeFile(inventory, stringify(inv));
}

const trustOf = async (h: LabHost) => JSON.parse(await h.incus(['config', 'trust', 'list', '--format', 'json'])) as TrustRow[];
const metricsTrust = async (h: LabHost) => (await trustOf(h)).filter((r) => r.type === 'metrics').map((r) => `${r.name} ${r.fingerprint}`);
const pem = (f: string) => readFile(join(root, f), 'utf8');
const fingerprintOf = async (f: string) => parseCertificatePem(await pem(f)).fingerprint;
const health = (ts: PromTarget[]) => ts.map((t) => `${t.scrapeUrl} ${t.health}`).sort();

beforeAll(async () => {
  lab = await startLab({
    name: 'metrics',
    hosts: [
      { name: 'incus1', https: true },
      { name: 'incus2', https: true },
      { name: 'prom1', incus: false },
    ],
  });
  root = lab.dir;
  hosts = [lab.host('incus1'), lab.host('incus2')];
  ADDRESSES = hosts.map((h) => `${h.address}:8443`);
  prom = await startPrometheus(root);
  inventory = join(root, 'hosts.yaml');
  await mkdir(join(root, 'pki'));
  // 40 days, rotated 5 days before expiry: not due yet.
  await writeInventoryFile({ validity_days: 40, rotate_before_days: 5 });
}, 120_000);

afterAll(async () => {
  await prom?.stop();
  await lab?.stop();
});

describe('metrics certificates end to end', () => {
  it('check mode says the pair would be generated and changes nothing: every folder byte-identical, the Prometheus host too', async () => {
    const before = await tree(lab!.dir);
    const r = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
    expect(await tree(lab!.dir)).toEqual(before);
    expect(r.stderr).not.toContain('PRIVATE KEY');
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain(`controller:\n  + metrics key pair "${NAME}" [(known after apply)]: add (no key pair yet:`);
    expect(r.stdout).toContain('(known after apply)');
    await expect(stat(join(root, 'pki/metrics.crt'))).rejects.toThrow(/ENOENT/);
    expect(await metricsTrust(hosts[0]!)).toEqual([]);
  });

  it('apply generates the pair, registers it on every Incus host, and Prometheus scrapes both targets up', async () => {
    // A prometheus.yml kept 0640 root:prometheus stays so when reconcile replaces it.
    const [, prometheusGid] = await idsOf('prometheus');
    await chmod(prom!.configFile, 0o640);
    await chown(prom!.configFile, 0, prometheusGid);
    const r = await reconcile(['-i', inventory], { env: lab!.env });
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const fp = await fingerprintOf('pki/metrics.crt');
    expect((await stat(join(root, 'pki/metrics.key'))).mode & 0o777).toBe(0o600);
    for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${fp}`]);
    // The user is told, once, which pair was made and where (a text line and a timestamped log line).
    const told = `generated metrics key pair ${NAME}: certificate ${join(root, 'pki/metrics.crt')}, key ${join(root, 'pki/metrics.key')} (0600), fingerprint ${fp}`;
    // The plan showed it as the controller's action; apply says what it made.
    expect(r.stdout.split('\n').filter((l) => l.includes('metrics key pair'))).toEqual([
      `  + metrics key pair "${NAME}" [(known after apply)]: add (no key pair yet: an ECDSA P-384 pair is generated, its key written 0600)`,
      told,
    ]);
    expect(r.stderr).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ${told.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));

    // On the Prometheus host: the pair under its versioned name, the key 0600, a whole prometheus.yml.
    const certDir = join(prom!.dir, 'certs');
    const stem = `${NAME}-${fp.slice(0, 12)}`;
    expect((await readdir(certDir)).sort()).toEqual([`${stem}.crt`, `${stem}.key`]);
    const keyStat = await stat(join(certDir, `${stem}.key`));
    expect(keyStat.mode & 0o777).toBe(0o600);
    // Owned by the default prometheus_key_owner / _group: Debian's prometheus user.
    expect([keyStat.uid, keyStat.gid]).toEqual(await idsOf('prometheus'));
    const config = await readFile(prom!.configFile, 'utf8');
    const configStat = await stat(prom!.configFile);
    expect([configStat.mode & 0o777, configStat.uid, configStat.gid]).toEqual([0o640, 0, prometheusGid]);
    expect(config).toContain(`cert_file: ${join(certDir, `${stem}.crt`)}`);
    expect(config).toContain('insecure_skip_verify: true');
    // The file it replaced is kept as a backup.
    expect(await readFile(`${prom!.configFile}.bak`, 'utf8')).toBe('scrape_configs: []\n');

    const targets = await eventually(
      'both Incus targets up',
      () => prom!.targets(),
      (ts) => ts.length === 2 && ts.every((t) => t.health === 'up'),
    );
    expect(health(targets)).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`).sort());

    // The same run again finds nothing to do.
    const again = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
  });

  it('scrape-config --format prometheus-operator: manifests valid against the CRDs (Secret 0600, key never printed); a real Prometheus configured as the ScrapeConfig says scrapes both targets up', async () => {
    const out = join(root, 'k8s');
    const r = await reconcile(['scrape-config', '-i', inventory, '--format', 'prometheus-operator', '--out', out, '--namespace', 'observability'], {
      env: lab!.env,
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toBe(
      `wrote ${join(out, 'secret.yaml')} (mode 0600: holds the private key; never commit it unencrypted)\n` +
        `wrote ${join(out, 'scrapeconfig.yaml')}\napply them with: kubectl apply -f ${out}\n`,
    );
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
    expect(r.stderr).toContain('insecureSkipVerify: true');
    expect((await stat(join(out, 'secret.yaml'))).mode & 0o777).toBe(0o600);
    const [secret] = parseAllDocuments(await readFile(join(out, 'secret.yaml'), 'utf8')).map((d) => d.toJSON());
    const [scrape] = parseAllDocuments(await readFile(join(out, 'scrapeconfig.yaml'), 'utf8')).map((d) => d.toJSON());
    for (const d of [secret, scrape]) expect(manifestErrors(d)).toEqual([]);
    expect(secret.metadata.namespace).toBe('observability');
    expect(Buffer.from(secret.data['tls.crt'], 'base64').toString()).toBe(await pem('pki/metrics.crt'));
    expect(scrape.spec.staticConfigs.map((c: { targets: string[] }) => c.targets[0]).sort()).toEqual([...ADDRESSES].sort());

    // What the operator would give Prometheus: the job, with the Secret's keys as files.
    const k8sRoot = join(root, 'k8s-prometheus');
    await mkdir(k8sRoot, { recursive: true });
    const k8sProm = await startPrometheus(k8sRoot);
    try {
      const job = await scrapeConfigAsJob(scrape, secret, k8sRoot);
      await writeFile(k8sProm.configFile, stringify({ global: { scrape_interval: '2s', scrape_timeout: '2s' }, scrape_configs: [job] }));
      expect((await fetch(`${k8sProm.url}/-/reload`, { method: 'POST' })).ok).toBe(true);
      const up = await eventually(
        'both targets up through the ScrapeConfig',
        () => k8sProm.targets(),
        (ts) => ts.length === 2 && ts.every((t) => t.health === 'up'),
      );
      expect(up.map((t) => `${t.labels.job} ${t.labels.incus_host} ${t.scrapeUrl}`).sort()).toEqual(
        hosts.map((h) => `incus ${h.name} https://${h.address}:8443/1.0/metrics`).sort(),
      );
    } finally {
      await k8sProm.stop();
    }

    const sm = await reconcile(['scrape-config', '-i', inventory, '--format', 'servicemonitor', '--out', join(root, 'k8s-sm')], { env: lab!.env });
    expect(sm.exitCode, sm.stderr).toBe(0);
    for (const f of ['secret.yaml', 'service.yaml', 'endpoints.yaml', 'servicemonitor.yaml']) {
      for (const d of parseAllDocuments(await readFile(join(root, 'k8s-sm', f), 'utf8'))) expect(manifestErrors(d.toJSON())).toEqual([]);
    }
    // The Secret never goes to standard output, whatever the flags.
    expect(await reconcile(['scrape-config', '-i', inventory, '--format', 'prometheus-operator'], { env: lab!.env })).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'reconcile: scrape-config: --format prometheus-operator writes files (the Secret holds the private key): --out DIR is required\n',
    });
  });

  it("prometheus_kubernetes in the inventory: a normal run writes the manifests as the controller's planned actions (--check writes nothing, --diff shows them, the Secret never), then plans nothing", async () => {
    const dir = join(root, 'k8s-declared');
    const entry = { validity_days: 40, rotate_before_days: 5 };
    // The manifests record the pair they hold beside the certificate; the later tests start without it.
    const record = join(root, 'pki/metrics.crt.deployed');
    const recordBefore = await readFile(record, 'utf8');
    await writeInventoryFile(
      entry,
      {},
      {},
      {},
      { prometheus_kubernetes: { out_dir: 'k8s-declared', namespace: 'observability', labels: { release: 'prom' } } },
    );
    try {
      const check = await reconcile(['-i', inventory, '--check', '--diff'], { env: lab!.env });
      expect(check.exitCode, check.stdout + check.stderr).toBe(2);
      expect(check.stdout).toContain(`controller:\n  + kubernetes manifest "${join(dir, 'secret.yaml')}" [`);
      expect(check.stdout).toContain(`  + kubernetes manifest "${join(dir, 'scrapeconfig.yaml')}": add (missing)`);
      expect(check.stdout).toContain('+  jobName: incus');
      // The Secret's content is in no plan: neither the key nor its base64 form.
      const keyPem = await pem('pki/metrics.key');
      expect(check.stdout + check.stderr).not.toContain('PRIVATE KEY');
      expect(check.stdout).not.toContain(Buffer.from(keyPem).toString('base64').slice(0, 40));
      await expect(stat(dir)).rejects.toThrow(/ENOENT/);
      const saved = join(root, 'k8s-plan.json');
      expect((await reconcile(['-i', inventory, '--check', '--out', saved], { env: lab!.env })).exitCode).toBe(2);
      const planText = await readFile(saved, 'utf8');
      expect(planText).not.toContain('PRIVATE KEY');
      expect(planText).not.toContain(Buffer.from(keyPem).toString('base64').slice(0, 40));

      const apply = await reconcile(['-i', inventory], { env: lab!.env });
      expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
      expect(apply.stdout + apply.stderr).not.toContain('PRIVATE KEY');
      expect((await stat(join(dir, 'secret.yaml'))).mode & 0o777).toBe(0o600);
      const [secret] = parseAllDocuments(await readFile(join(dir, 'secret.yaml'), 'utf8')).map((d) => d.toJSON());
      const [scrape] = parseAllDocuments(await readFile(join(dir, 'scrapeconfig.yaml'), 'utf8')).map((d) => d.toJSON());
      for (const d of [secret, scrape]) expect(manifestErrors(d)).toEqual([]);
      expect(Buffer.from(secret.data['tls.key'], 'base64').toString()).toBe(await pem('pki/metrics.key'));
      expect(scrape.metadata.labels.release).toBe('prom');

      const again = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
      expect(again.exitCode, again.stdout).toBe(0);
      expect(again.stdout).toContain('Plan: 0 to add, 0 to change');

      // A hand edit is drift, shown as a diff and planned back.
      await writeFile(join(dir, 'scrapeconfig.yaml'), (await readFile(join(dir, 'scrapeconfig.yaml'), 'utf8')).replace('jobName: incus', 'jobName: mine'));
      const edited = await reconcile(['-i', inventory, '--check', '--diff'], { env: lab!.env });
      expect(edited.exitCode).toBe(2);
      expect(edited.stdout).toContain(`  ~ kubernetes manifest "${join(dir, 'scrapeconfig.yaml')}": update in place (content differs)`);
      expect(edited.stdout).toContain('-  jobName: mine');
      expect((await reconcile(['-i', inventory], { env: lab!.env })).exitCode).toBe(0);
      expect(await readFile(join(dir, 'scrapeconfig.yaml'), 'utf8')).toContain('jobName: incus');
      const lines = (text: string) => text.split('\n').filter((l) => l !== '');
      expect(lines(await readFile(record, 'utf8'))).toEqual([`kubernetes ${await fingerprintOf('pki/metrics.crt')}`, ...lines(recordBefore)].sort());
    } finally {
      await writeInventoryFile(entry);
      await writeFile(record, recordBefore);
    }
  });
  it('a certificate that is not registered is refused by Incus (403); the registered one is served', async () => {
    const stranger = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 30, now: new Date(), type: 'metrics' });
    for (const a of ADDRESSES) {
      expect(await metricsStatus(a, stranger.certificatePem, stranger.privateKeyPem, root)).toBe(403);
      expect(await metricsStatus(a, await pem('pki/metrics.crt'), await pem('pki/metrics.key'), root)).toBe(200);
    }
  });

  it('scrape-config prints the jobs with fingerprint and paths, and warns about the MITM risk', async () => {
    const fp = await fingerprintOf('pki/metrics.crt');
    const r = await reconcile(['scrape-config', '-i', inventory], { env: lab!.env });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`# certificate "${NAME}": fingerprint ${fp}`);
    expect(r.stdout).toContain('metrics_path: /1.0/metrics');
    for (const a of ADDRESSES) expect(r.stdout).toContain(`- ${a}`);
    expect(r.stderr).toMatch(/insecure_skip_verify: true.*MITM risk/);
    const json = JSON.parse((await reconcile(['scrape-config', '-i', inventory, '--json'], { env: lab!.env })).stdout) as {
      certificate: { fingerprint: string };
      targets: { address: string }[];
    };
    expect(json.certificate.fingerprint).toBe(fp);
    expect(json.targets.map((t) => t.address)).toEqual(ADDRESSES);
    expect(JSON.stringify(json)).not.toContain('PRIVATE KEY');
    const limited = await reconcile(['scrape-config', '-i', inventory, '--limit', 'incus2'], { env: lab!.env });
    expect(limited.exitCode, limited.stderr).toBe(0);
    expect(limited.stdout).toContain(`# targets: ${ADDRESSES[1]}\n`);
  });

  it('a configuration Prometheus refused at its last reload is written and reloaded again, though its text is unchanged', async () => {
    const good = await readFile(prom!.configFile, 'utf8');
    await writeFile(prom!.configFile, 'global: {scrape_interval: not-a-duration}\n');
    expect((await fetch(`${prom!.url}/-/reload`, { method: 'POST' })).ok).toBe(false);
    await writeFile(prom!.configFile, good); // back to the managed text, but not loaded
    const check = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
    expect(check.exitCode, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(`~ prometheus config "${prom!.configFile}": update in place (Prometheus refused it at its last reload)`);
    const apply = await reconcile(['-i', inventory], { env: lab!.env });
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    const info = (await (await fetch(`${prom!.url}/api/v1/status/runtimeinfo`)).json()) as { data: { reloadConfigSuccess: boolean } };
    expect(info.data.reloadConfigSuccess).toBe(true);
    expect((await reconcile(['-i', inventory, '--check'], { env: lab!.env })).exitCode).toBe(0);
  });

  it('--diff of the configuration never shows a password or a token, from the host nor from the inventory; --json carries no text of it', async () => {
    const good = await readFile(prom!.configFile, 'utf8');
    await writeFile(
      prom!.configFile,
      "scrape_configs:\n  - job_name: by-hand\n    basic_auth: {username: u, password: 'host-secret-1'}\n    static_configs: [{targets: ['127.0.0.1:9']}]\n",
    );
    await writeInventoryFile(
      { validity_days: 40, rotate_before_days: 5 },
      {
        prometheus_extra_scrape_configs: [
          { job_name: 'node', basic_auth: { username: 'prom', password: 'inventory-secret-2' }, static_configs: [{ targets: ['127.0.0.1:9100'] }] },
        ],
      },
    );
    try {
      const diff = await reconcile(['-i', inventory, '--check', '--diff'], { env: lab!.env });
      expect(diff.exitCode, diff.stdout + diff.stderr).toBe(2);
      expect(diff.stdout).toContain('-    basic_auth: {username: u, password: (redacted)}');
      expect(diff.stdout).toMatch(/\+ +password: \(redacted\)/);
      const json = await reconcile(['-i', inventory, '--check', '--json'], { env: lab!.env });
      for (const secret of ['host-secret-1', 'inventory-secret-2']) expect(diff.stdout + diff.stderr + json.stdout + json.stderr).not.toContain(secret);
    } finally {
      await writeFile(prom!.configFile, good);
      await writeInventoryFile({ validity_days: 40, rotate_before_days: 5 });
    }
    expect((await reconcile(['-i', inventory, '--check'], { env: lab!.env })).exitCode).toBe(0);
  });

  it('a configuration promtool refuses is not installed: the host fails, the old file and Prometheus stay as they were', async () => {
    const before = await readFile(prom!.configFile, 'utf8');
    await writeInventoryFile(
      { validity_days: 40, rotate_before_days: 5 },
      { prometheus_extra_scrape_configs: [{ job_name: 'node', scrape_interval: 'often' }] },
    );
    const r = await reconcile(['-i', inventory], { env: lab!.env });
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/prom1 +failed +write .*prometheus\.yml: [\s\S]*promtool check config[\s\S]*not a valid duration string: .often./);
    expect(await readFile(prom!.configFile, 'utf8')).toBe(before);
    expect((await readdir(prom!.dir)).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(health(await prom!.targets())).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`).sort());
    await writeInventoryFile({ validity_days: 40, rotate_before_days: 5 });
    expect((await reconcile(['-i', inventory, '--check'], { env: lab!.env })).exitCode).toBe(0);
  });

  it('rotation of a certificate expiring within rotate_before_days: Prometheus stays up, then only the new certificate is trusted', async () => {
    const oldFp = await fingerprintOf('pki/metrics.crt');
    const oldPair = { cert: await pem('pki/metrics.crt'), key: await pem('pki/metrics.key') };
    // The 40-day certificate is now within rotate_before_days (50) of its expiry.
    await writeInventoryFile({ validity_days: 100, rotate_before_days: 50 });
    const preview = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
    expect(preview.exitCode, preview.stdout + preview.stderr).toBe(2);
    expect(preview.stdout).toContain(
      '+ incus certificate "prometheus-metrics" [(known after apply)]: add (missing (key pair to be generated); rotation: pki/metrics.crt expires',
    );
    expect(preview.stdout).toMatch(/-\/\+ prometheus metrics pair ".*\(known after apply\)\.crt" \[\(known after apply\)\]: rotate/);
    expect(await fingerprintOf('pki/metrics.crt')).toBe(oldFp);

    const watch = watchTargets();
    try {
      const first = await reconcile(['-i', inventory, '--json'], { env: lab!.env });
      expect(first.exitCode, first.stdout + first.stderr).toBe(0);
      const newFp = await fingerprintOf('pki/metrics.crt');
      expect(newFp).not.toBe(oldFp);
      // --json: the new pair is in the report's `generated` list (schema-valid), key bytes nowhere.
      const report = JSON.parse(first.stdout) as { generated: unknown[] };
      expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
      expect(report.generated).toEqual([
        {
          module: 'incus_trust',
          name: NAME,
          event: 'rotation started',
          certificateFile: join(root, 'pki/metrics.crt'),
          keyFile: join(root, 'pki/metrics.key'),
          keyMode: '0600',
          fingerprint: newFp,
        },
      ]);
      expect(first.stderr).toContain(`generated (rotation) metrics key pair ${NAME}: certificate ${join(root, 'pki/metrics.crt')}`);
      expect(first.stdout + first.stderr).not.toContain('PRIVATE KEY');
      expect(await fingerprintOf('pki/metrics.crt.previous')).toBe(oldFp);
      // Both trusted while Prometheus moves to the new pair.
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${newFp.slice(0, 12)}.crt`);
      expect((await readdir(join(prom!.dir, 'certs'))).sort()).toEqual([`${NAME}-${newFp.slice(0, 12)}.crt`, `${NAME}-${newFp.slice(0, 12)}.key`]);
      expect(await readFile(join(root, 'pki/metrics.crt.deployed'), 'utf8')).toBe(`prom1 ${newFp}\n`);

      // Next run: every Prometheus host has the new pair, so the old certificate goes.
      const second = await reconcile(['-i', inventory], { env: lab!.env });
      expect(second.exitCode, second.stdout + second.stderr).toBe(0);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${newFp}`]);
      // A few more scrapes with the new pair only.
      await new Promise((r) => setTimeout(r, 4500));
      expect(health(await prom!.targets())).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`).sort());

      for (const a of ADDRESSES) {
        expect(await metricsStatus(a, oldPair.cert, oldPair.key, root)).toBe(403);
        expect(await metricsStatus(a, await pem('pki/metrics.crt'), await pem('pki/metrics.key'), root)).toBe(200);
      }
      const third = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
      expect(third.exitCode, third.stdout + third.stderr).toBe(0);
    } finally {
      expect(await watch.stop()).toEqual([]);
    }
  });

  it('an interrupted rotation: the Prometheus host alone cannot switch before Incus trusts the new certificate; the next full runs finish it', async () => {
    const oldFp = await fingerprintOf('pki/metrics.crt');
    // The 100-day certificate is now within 150 days of expiry; the Prometheus host waits 2 s at most.
    await writeInventoryFile({ validity_days: 300, rotate_before_days: 150 }, { prometheus_trust_wait_seconds: 2 });
    const watch = watchTargets();
    try {
      const alone = await reconcile(['-i', inventory, '--limit', 'prom1'], { env: lab!.env });
      expect(alone.exitCode, alone.stdout + alone.stderr).toBe(1);
      const newFp = await fingerprintOf('pki/metrics.crt');
      expect(newFp).not.toBe(oldFp);
      expect(alone.stdout).toContain(
        `prom1       failed       wait until Incus trusts the new metrics certificate: not accepted by ${ADDRESSES.join(', ')} after 2s; ` +
          'the old pair stays in use (run again once incus_trust added the new certificate), 0 of 5 applied',
      );
      // Nothing switched: Prometheus still runs with the old pair, Incus trusts only the old one.
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${oldFp.slice(0, 12)}.crt`);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${oldFp}`]);

      const resumed = await reconcile(['-i', inventory], { env: lab!.env });
      expect(resumed.exitCode, resumed.stdout + resumed.stderr).toBe(0);
      expect(await fingerprintOf('pki/metrics.crt')).toBe(newFp);
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${newFp.slice(0, 12)}.crt`);
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());

      const finished = await reconcile(['-i', inventory], { env: lab!.env });
      expect(finished.exitCode, finished.stdout + finished.stderr).toBe(0);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${newFp}`]);
      await new Promise((r) => setTimeout(r, 4500));
      expect(health(await prom!.targets())).toEqual(ADDRESSES.map((a) => `https://${a}/1.0/metrics up`).sort());
    } finally {
      expect(await watch.stop()).toEqual([]);
    }
  });

  it("the key on the Prometheus host replaced by a symbolic link: refused, the link's target untouched; a key gone is deployed again", async () => {
    const fp = await fingerprintOf('pki/metrics.crt');
    const keyPath = join(prom!.dir, 'certs', `${NAME}-${fp.slice(0, 12)}.key`);
    const victim = join(root, 'victim-file');
    await writeFile(victim, 'do not touch\n', { mode: 0o644 });
    await rm(keyPath);
    await symlink(victim, keyPath);
    const refused = await reconcile(['-i', inventory], { env: lab!.env });
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toContain(`${keyPath} is a symbolic link: refused (it could point at any file); remove it and run again`);
    const v = await stat(victim);
    expect([v.mode & 0o777, v.uid, v.gid, await readFile(victim, 'utf8')]).toEqual([0o644, 0, 0, 'do not touch\n']);

    await rm(keyPath);
    const redeployed = await reconcile(['-i', inventory], { env: lab!.env });
    expect(redeployed.exitCode, redeployed.stdout + redeployed.stderr).toBe(0);
    const k = await lstat(keyPath);
    expect([k.isFile(), k.mode & 0o777, [k.uid, k.gid]]).toEqual([true, 0o600, await idsOf('prometheus')]);
    expect((await reconcile(['-i', inventory, '--check'], { env: lab!.env })).exitCode).toBe(0);
  });

  it('a reload that fails during a rotation: the old certificate stays trusted until Prometheus has really loaded the new pair (its config API, not the file on disk)', async () => {
    const oldFp = await fingerprintOf('pki/metrics.crt');
    // Due again (a 300-day certificate, rotated 350 days before expiry), with a reload that fails.
    const entry = { validity_days: 400, rotate_before_days: 350 };
    await writeInventoryFile(entry, { prometheus_reload_command: ['false'] });
    const watch = watchTargets();
    try {
      const failed = await reconcile(['-i', inventory], { env: lab!.env });
      expect(failed.exitCode, failed.stdout + failed.stderr).toBe(1);
      expect(failed.stdout).toMatch(/prom1 +failed +reload prometheus: exit 1/);
      const newFp = await fingerprintOf('pki/metrics.crt');
      expect(newFp).not.toBe(oldFp);
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${newFp.slice(0, 12)}.crt`);

      // The file is the new one, Prometheus still runs the old: planned again, never recorded as done.
      const again = await reconcile(['-i', inventory, '--check'], { env: lab!.env });
      expect(again.stdout).toContain('update in place (Prometheus has not loaded it (a reload failed or was cut short): written and reloaded again)');
      expect((await reconcile(['-i', inventory], { env: lab!.env })).exitCode).toBe(1);
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());

      // The reload works again: Prometheus loads the new pair, then the old certificate goes.
      await writeInventoryFile(entry);
      const reloaded = await reconcile(['-i', inventory], { env: lab!.env });
      expect(reloaded.exitCode, reloaded.stdout + reloaded.stderr).toBe(0);
      const finished = await reconcile(['-i', inventory], { env: lab!.env });
      expect(finished.exitCode, finished.stdout + finished.stderr).toBe(0);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${newFp}`]);
      expect((await reconcile(['-i', inventory, '--check'], { env: lab!.env })).exitCode).toBe(0);
    } finally {
      expect(await watch.stop()).toEqual([]);
    }
  });

  it('a Prometheus host down during a rotation: the rotation is not started over, the certificate it runs stays trusted (no 403 sample), a checkout without the key is stopped', async () => {
    const oldFp = await fingerprintOf('pki/metrics.crt');
    const promHost = lab!.host('prom1');
    const run = (...args: string[]) => reconcile(['-i', inventory, ...args], { env: lab!.env });
    const watch = watchTargets();
    await promHost.stopSshd();
    try {
      // Due (about 400 days left, rotated 450 days before expiry): the rotation starts, prom1 cannot be reached.
      await writeInventoryFile({ validity_days: 500, rotate_before_days: 450 });
      const first = await run();
      expect(first.exitCode, first.stdout + first.stderr).toBe(1);
      expect(first.stdout).toMatch(/prom1 +unreachable/);
      const newFp = await fingerprintOf('pki/metrics.crt');
      expect(newFp).not.toBe(oldFp);
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());

      // The new certificate is due as well now: the rotation under way is not started over.
      await writeInventoryFile({ validity_days: 600, rotate_before_days: 550 });
      const second = await run();
      expect(second.exitCode, second.stdout + second.stderr).toBe(1);
      expect(second.stdout).toContain(
        `controller: no changes\n  warning: metrics key pair "${NAME}": pki/metrics.crt expires ${parseCertificatePem(await pem('pki/metrics.crt'))
          .notAfter.toISOString()
          .slice(0, 10)}, but the rotation under way waits (prom1 has not recorded the new pair yet); the next one starts once it is done\n`,
      );
      expect([await fingerprintOf('pki/metrics.crt.previous'), await fingerprintOf('pki/metrics.crt')]).toEqual([oldFp, newFp]);
      for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());
      // Never in sync while prom1 runs a certificate that is not the current one.
      expect((await run('--check')).exitCode).toBe(1);

      // A checkout without the key (keys stay out of Git): stopped, nothing made, nothing removed.
      const key = join(root, 'pki/metrics.key');
      await rename(key, `${key}.elsewhere`);
      try {
        const noKey = await run();
        expect(noKey.exitCode).toBe(1);
        expect(noKey.stdout).toContain(
          `  error: incus_trust: metrics key pair "${NAME}": pki/metrics.crt is here but its key pki/metrics.key is not — this checkout lacks it (keys stay out of Git)`,
        );
        expect(await fingerprintOf('pki/metrics.crt')).toBe(newFp);
        for (const h of hosts) expect((await metricsTrust(h)).sort()).toEqual([`${NAME} ${newFp}`, `${NAME} ${oldFp}`].sort());
      } finally {
        await rename(`${key}.elsewhere`, key);
      }

      // prom1 back: it gets the new pair, then the old certificate goes.
      await promHost.startSshd();
      await writeInventoryFile({ validity_days: 600, rotate_before_days: 5 });
      const back = await run();
      expect(back.exitCode, back.stdout + back.stderr).toBe(0);
      expect(await readFile(prom!.configFile, 'utf8')).toContain(`${NAME}-${newFp.slice(0, 12)}.crt`);
      expect((await run()).exitCode).toBe(0);
      for (const h of hosts) expect(await metricsTrust(h)).toEqual([`${NAME} ${newFp}`]);
      expect((await run('--check')).exitCode).toBe(0);
    } finally {
      await promHost.startSshd().catch(() => undefined);
      expect(await watch.stop()).toEqual([]);
    }
  });
});

/**
 * Every file and folder under `dir` with its type, mode, size, mtime and SHA-256 — what a --check
 * must leave as it was. The lab's daemons write only their own logs and state, left out.
 */
async function tree(dir: string): Promise<string[]> {
  const { createHash } = await import('node:crypto');
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (/\/(incus|logs|data|run)(\/|$)|\.log$|\/unix\.socket|queries\.active|\/known_hosts$/.test(p)) continue;
      const s = await stat(p).catch(() => undefined);
      if (!s) continue;
      if (e.isDirectory()) {
        out.push(`${p}/ ${s.mode.toString(8)}`);
        await walk(p);
      } else if (e.isFile()) {
        out.push(
          `${p} ${s.mode.toString(8)} ${s.size} ${s.mtimeMs} ${createHash('sha256')
            .update(await readFile(p))
            .digest('hex')
            .slice(0, 16)}`,
        );
      }
    }
  };
  await walk(dir);
  return out;
}

async function idsOf(user: string): Promise<[number, number]> {
  const run = promisify(execFile);
  return [Number((await run('id', ['-u', user])).stdout.trim()), Number((await run('id', ['-g', user])).stdout.trim())];
}

describe('server verification', () => {
  it('with incus_server_name and incus_server_ca_file Prometheus verifies each server: up without the MITM warning; a wrong name is refused', async () => {
    const entry = { validity_days: 300, rotate_before_days: 150 };
    // incusd's self-generated server certificate names the machine; it is used as its own CA.
    const serverName = hostname();
    const verified = Object.fromEntries(hosts.map((h) => [h.name, { incus_server_name: serverName, incus_server_ca_file: join(h.incusDir!, 'server.crt') }]));
    await writeInventoryFile(entry, {}, verified);
    const r = await reconcile(['-i', inventory], { env: lab!.env });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('insecure_skip_verify');
    const config = await readFile(prom!.configFile, 'utf8');
    expect(config).not.toContain('insecure_skip_verify');
    for (const h of hosts) expect(config).toContain(`ca_file: ${join(h.incusDir!, 'server.crt')}`);
    // One job per server (each has its own CA file): incus and incus-2, both verified and up.
    await eventually(
      'both verified targets up',
      () => prom!.targets(),
      (ts) => JSON.stringify(ts.map((t) => t.labels.job).sort()) === '["incus","incus-2"]' && ts.every((t) => t.health === 'up'),
    );

    await writeInventoryFile(entry, {}, { ...verified, incus1: { ...verified.incus1, incus_server_name: 'not-the-server' } });
    expect((await reconcile(['-i', inventory], { env: lab!.env })).exitCode).toBe(0);
    const refused = await eventually(
      'the target with a wrong server name down',
      () => prom!.targets(),
      (ts) => ts.some((t) => t.scrapeUrl === `https://${ADDRESSES[0]}/1.0/metrics` && t.health === 'down'),
    );
    expect(refused.find((t) => t.scrapeUrl === `https://${ADDRESSES[0]}/1.0/metrics`)!.lastError).toContain('not-the-server');
  });
});

describe('Qubes VMs in the deployed prometheus.yml', () => {
  it("the Prometheus host also scrapes the Qubes VMs of the inventory's dom0 through prometheus-qubes-proxy; promtool accepts the file", async () => {
    // A dom0 declared in the inventory but not reconciled in this run (--limit): its scrape jobs come from its variables alone.
    const dom0 = { ansible_connection: 'local', qubes_prometheus_proxy: { proxy: 'sys-net', targets: [{ vm: 'vault', ports: [9100] }] } };
    await writeInventoryFile({ validity_days: 300, rotate_before_days: 150 }, {}, {}, { qubes: { hosts: { dom0 } } });
    const r = await reconcile(['-i', inventory, '--limit', 'incus:prometheus'], { env: lab!.env });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain('dom0');
    const config = await readFile(prom!.configFile, 'utf8');
    expect(config).toContain(
      [
        '  - job_name: qubes-proxy-dom0',
        '    metrics_path: /forward',
        '    static_configs:',
        '      - targets:',
        '          - sys-net:8199',
        '        labels:',
        '          __param_target: vault',
        '          __param_port: "9100"',
        '          instance: vault:9100',
      ].join('\n'),
    );
    const promtool = await promisify(execFile)('promtool', ['check', 'config', prom!.configFile]);
    expect(promtool.stdout).toContain('SUCCESS');
    // Prometheus loaded it: the proxy target is one of its targets (down here: no proxy VM runs).
    await eventually(
      'the Qubes job loaded',
      () => prom!.targets(),
      (ts) => ts.some((t) => t.labels.job === 'qubes-proxy-dom0' && t.labels.vm === 'vault'),
    );
    // scrape-config prints the same job.
    const printed = await reconcile(['scrape-config', '-i', inventory], { env: lab!.env });
    expect(printed.stdout).toContain('  - job_name: qubes-proxy-dom0\n');
  });

  it('@tag: targets are the VMs dom0 gives the tag now (qvm-ls in dom0): a VM tagged later is drift until it is scraped', async () => {
    // The dom0 stand-in's qvm-ls / qvm-tags on PATH for an `ansible_connection: local` dom0 (Qubes cannot run here).
    const standIn = await setUpDom0StandIn(join(root, 'tag-dom0'));
    const env = { ...lab!.env, PATH: `${standIn.binDir}:${process.env.PATH}` };
    const tag = (vm: string) => promisify(execFile)(join(standIn.binDir, 'qvm-tags'), [vm, 'add', 'metrics']);
    await tag('work');
    const dom0 = { ansible_connection: 'local', qubes_prometheus_proxy: { proxy: 'sys-net', targets: [{ vm: '@tag:metrics', ports: [9100] }] } };
    await writeInventoryFile({ validity_days: 300, rotate_before_days: 150 }, {}, {}, { qubes: { hosts: { dom0 } } });
    const first = await reconcile(['-i', inventory, '--limit', 'incus:prometheus'], { env });
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    let config = await readFile(prom!.configFile, 'utf8');
    expect(config).toContain('# Qubes @tag:metrics in dom0: work\n');
    expect(config).toMatch(
      /__param_target: work\n\s+__param_port: "9100"\n\s+instance: work:9100\n\s+vm: work\n\s+port: "9100"\n\s+proxy: sys-net\n\s+dom0: dom0\n\s+tag: metrics/,
    );
    expect((await reconcile(['-i', inventory, '--limit', 'incus:prometheus', '--check'], { env })).exitCode).toBe(0);

    await tag('personal');
    const drift = await reconcile(['-i', inventory, '--limit', 'incus:prometheus', '--check', '--diff'], { env });
    expect(drift.exitCode, drift.stdout + drift.stderr).toBe(2);
    expect(drift.stdout).toContain('+# Qubes @tag:metrics in dom0: personal, work');
    expect(drift.stdout).toMatch(/\+\s+__param_target: personal/);
    expect((await reconcile(['-i', inventory, '--limit', 'incus:prometheus'], { env })).exitCode).toBe(0);
    config = await readFile(prom!.configFile, 'utf8');
    expect(config).toContain('instance: personal:9100');
    await eventually(
      'the newly tagged VM is a Prometheus target',
      () => prom!.targets(),
      (ts) => ts.some((t) => t.labels.job === 'qubes-proxy-dom0' && t.labels.vm === 'personal'),
    );
    expect((await reconcile(['-i', inventory, '--limit', 'incus:prometheus', '--check'], { env })).exitCode).toBe(0);

    // What dom0 answers is checked: a name that is not a Qubes VM name fails the plan, never a target.
    const { tagsFile } = dom0StandInState(standIn.binDir);
    const tags = await readFile(tagsFile, 'utf8');
    await writeFile(tagsFile, `${tags}bad;name metrics\n`);
    const odd = await reconcile(['-i', inventory, '--limit', 'incus:prometheus', '--check'], { env });
    expect(odd.exitCode).toBe(1);
    expect(odd.stdout).toContain(
      'cannot list the tagged Qubes VMs to scrape: dom0: list the VMs tagged metrics: qvm-ls printed "bad;name", which is not a Qubes VM name',
    );
    await writeFile(tagsFile, tags);
  });
});

/**
 * Watches Prometheus while a rotation runs. stop() returns every failure seen: a target
 * reported `down` (a scrape that failed; `unknown` is a target recreated by a reload and not
 * scraped yet), and — from Prometheus's own stored samples over the whole window — any `up`
 * sample that was 0, or a member with fewer scrapes than the window allows (a gap).
 */
function watchTargets(): { stop(): Promise<string[]> } {
  const seen: string[] = [];
  const startedAt = Date.now();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const t of await prom!.targets()) if (t.health === 'down') seen.push(`${t.scrapeUrl} down: ${t.lastError}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const query = async (q: string) => {
    const body = (await (await fetch(`${prom!.url}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as {
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    return Object.fromEntries(body.data.result.map((r) => [r.metric.instance!, Number(r.value[1])]));
  };
  return {
    stop: async () => {
      watching = false;
      await watcher;
      const window = Math.ceil((Date.now() - startedAt) / 1000);
      const lowest = await query(`min_over_time(up{job="incus"}[${window}s])`);
      const scrapes = await query(`count_over_time(up{job="incus"}[${window}s])`);
      for (const a of ADDRESSES) {
        if (lowest[a] !== 1) seen.push(`${a}: lowest up over ${window}s = ${lowest[a]}`);
        // Scraped every 2 s: allow the first and last interval and one reload's restart.
        if ((scrapes[a] ?? 0) < Math.floor(window / 2) - 3) seen.push(`${a}: only ${scrapes[a]} scrapes in ${window}s`);
      }
      return seen;
    },
  };
}
