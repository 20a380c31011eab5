/**
 * `reconcile scrape-config -i INVENTORY [--limit PATTERN] [--certificate NAME] [--cert-file PATH]
 * [--key-file PATH] [--json]`: the Prometheus scrape_configs for the inventory's Incus metrics
 * endpoints, read live from every Incus host (core.metrics_address / core.https_address,
 * cluster members), for users who keep their own prometheus.yml. What the Terraform
 * incus-metrics module gave as outputs is here too: the certificate's fingerprint and paths as
 * YAML comments, or all of it with --json. Never the key: only its path.
 *
 * Exit code 0; 1 when an Incus host could not be read (the others are still printed).
 */
import { ansibleSettings, inventoryOf } from '../ansible-config.js';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from '../../async-fs.js';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../write-atomic.js';
import {
  KUBERNETES_LABEL_KEY,
  KUBERNETES_LABEL_VALUE,
  KUBERNETES_NAME,
  renderKubernetesManifests,
  secretNameOf,
  type KubernetesFormat,
} from '../../render/kubernetes.js';
import { keyMatchesCertificate } from '../../modules/incus-trust/key-pairs.js';
import type { Inventory } from '../../inventory/model.js';
import { parseCommandArgs } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { formatProblem, InventoryError, UsageError } from '../../errors.js';
import { defaultPlanDeps, defaultSessionPool } from '../../engine/inputs.js';
import { readInventoryFile } from '../../inventory/load.js';
import type { InventoryHost } from '../../inventory/model.js';
import { parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import { metricsTargets, renderScrapeConfigs, type MetricsTarget, type ScrapeConfig } from '../../render/scrape-config.js';
import { readMetricsCertificateSpecs, type MetricsCertificateSpec } from '../../modules/incus-trust/metrics-desired.js';
import { inventoryPath } from '../../modules/incus-trust/metrics-desired.js';
import { DEFAULT_CERT_DIR, FINGERPRINT_IN_NAME } from '../../modules/prometheus-scrape/desired.js';
import { incusGroupOf, incusHostsToScrape, observeMetricsEndpoints } from '../../modules/prometheus-scrape/targets.js';
import type { HostSession } from '../../transport/types.js';
import { generatedScrapeJobs } from '../../modules/prometheus-scrape/jobs.js';

export const HELP = `Usage: reconcile scrape-config -i INVENTORY [--limit PATTERN] [--certificate NAME]
                              [--cert-file PATH] [--key-file PATH] [--json]
       reconcile scrape-config -i INVENTORY --format prometheus-operator|servicemonitor --out DIR
                              [--namespace NS] [--label KEY=VALUE ...] [--secret-name NAME] [--name NAME]

Prints Prometheus scrape_configs for every member of every Incus host or cluster of the
inventory (the hosts of the group named by incus_metrics_group, default "incus"), read
live from each host's core.metrics_address or core.https_address. Paste them under
scrape_configs: of your prometheus.yml (Prometheus 2.42 cannot include files), or let the
prometheus_scrape play deploy a whole prometheus.yml for you.

  -i, --inventory FILE   Ansible YAML inventory
  --limit PATTERN        only these Incus hosts (Ansible host pattern)
  --certificate NAME     which incus_metrics_certificates entry (default: the first)
  --cert-file PATH       client certificate path as Prometheus sees it
                         (default: where prometheus_scrape deploys it, ${DEFAULT_CERT_DIR}/NAME-FP.crt)
  --key-file PATH        client key path as Prometheus sees it (same default, .key)
  --json                 one JSON object: certificate (fingerprint, paths), targets, scrape_configs, yaml, warnings
  --format FORMAT        prometheus (default: scrape_configs for a prometheus.yml, on stdout);
                         prometheus-operator: a Secret with the pair and a ScrapeConfig
                         (monitoring.coreos.com/v1alpha1), written to --out DIR;
                         servicemonitor: a Secret, a selector-less Service, its Endpoints and a
                         ServiceMonitor (monitoring.coreos.com/v1), written to --out DIR
  --out DIR              where the manifests go (created if missing); DIR/secret.yaml holds the
                         private key: mode 0600, never printed; do not commit it unencrypted
                         (SOPS, sealed-secrets)
  --namespace NS         namespace of every manifest (default monitoring)
  --label KEY=VALUE      a label the Prometheus resource selects on (repeatable; default
                         release=kube-prometheus-stack)
  --secret-name NAME     the Secret's name (default incus-metrics-ENTRY)
  --name NAME            the ScrapeConfig's, or Service's and ServiceMonitor's, name (default incus-metrics)
  -h, --help             this help

  kubectl apply -f DIR   then puts them in place (or commit them for Argo CD / Flux).

Without incus_server_name, the jobs skip server certificate verification
(insecure_skip_verify: true) and a warning names the MITM risk.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  limit: { type: 'string', short: 'l' },
  certificate: { type: 'string' },
  'cert-file': { type: 'string' },
  'key-file': { type: 'string' },
  json: { type: 'boolean' },
  format: { type: 'string' },
  out: { type: 'string' },
  namespace: { type: 'string' },
  label: { type: 'string', multiple: true },
  'secret-name': { type: 'string' },
  name: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FORMATS = ['prometheus', 'prometheus-operator', 'servicemonitor'] as const;

function kubernetesOptions(values: { format?: string; out?: string; namespace?: string; label?: string[]; 'secret-name'?: string; name?: string }) {
  const format = values.format ?? 'prometheus';
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`scrape-config: --format takes ${FORMATS.join(', ')}, not '${format}'`);
  if (format === 'prometheus') {
    for (const flag of ['out', 'namespace', 'label', 'secret-name', 'name'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`scrape-config: --${flag} goes with --format prometheus-operator or servicemonitor`);
    }
    return undefined;
  }
  if (values.out === undefined)
    throw new UsageError(`scrape-config: --format ${format} writes files (the Secret holds the private key): --out DIR is required`);
  const namespace = values.namespace ?? 'monitoring';
  const labels: Record<string, string> = {};
  for (const l of values.label ?? ['release=kube-prometheus-stack']) {
    const eq = l.indexOf('=');
    const [key, value] = eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
    if (eq < 0 || !KUBERNETES_LABEL_KEY.test(key) || !KUBERNETES_LABEL_VALUE.test(value))
      throw new UsageError(`scrape-config: --label takes KEY=VALUE with a Kubernetes label key and value, not '${l}'`);
    labels[key] = value;
  }
  for (const [flag, v] of [
    ['namespace', namespace],
    ['secret-name', values['secret-name']],
    ['name', values.name],
  ] as const) {
    if (v !== undefined && !KUBERNETES_NAME.test(v))
      throw new UsageError(`scrape-config: --${flag} must be a Kubernetes name (lowercase letters, digits, '-' and '.'), not '${v}'`);
  }
  return { format: format as KubernetesFormat, out: values.out, namespace, labels, secretName: values['secret-name'], name: values.name ?? 'incus-metrics' };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('scrape-config', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`scrape-config: unexpected argument '${positionals[0]}' (see 'reconcile scrape-config --help')`);
  // -i, else ansible.cfg's inventory or ANSIBLE_INVENTORY, as Ansible finds them.
  const ansible = ansibleSettings(io);
  values.inventory ??= inventoryOf(undefined, ansible, io, 'scrape-config');
  const k8s = kubernetesOptions(values);

  const deps = defaultPlanDeps();
  const inventory = await deps.loadInventory(resolve(io.cwd, values.inventory));
  const problems = await deps.validateInventory(inventory, new Date(), (rel) => readInventoryFile(inventory, rel), deps.modules);
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
  for (const p of problems) io.stderr(`${formatProblem(p)}\n`);

  const allGroup = inventory.groups.get('all');
  // The group variable is read where a user sets it for the whole inventory: all's vars.
  const all = allGroup ? ({ name: 'all', groups: ['all'], vars: { ...allGroup.vars, ...allGroup.fileVars } } satisfies InventoryHost) : undefined;
  const limited = () => (values.limit !== undefined ? new Set(deps.selectHosts(inventory, values.limit).hosts) : undefined);
  let incusHosts = incusHostsToScrape(inventory, incusGroupOf(all));
  if (values.limit !== undefined) {
    const sel = deps.selectHosts(inventory, values.limit);
    for (const w of sel.warnings) io.stderr(`warning: ${w}\n`);
    const chosen = new Set(sel.hosts);
    incusHosts = incusHosts.filter((h) => chosen.has(h.name));
  }
  if (incusHosts.length === 0) {
    // An inventory of Qubes machines only still gets its prometheus-qubes-proxy jobs.
    const qubesOnly = generatedScrapeJobs(inventory, undefined, limited());
    if (qubesOnly.configs.length > 0) {
      const yamlText = renderScrapeConfigs(qubesOnly.configs, ['Generated by reconcile scrape-config — Qubes VMs through prometheus-qubes-proxy.']);
      if (values.json) io.stdout(JSON.stringify({ scrape_configs: qubesOnly.configs, yaml: yamlText, warnings: qubesOnly.warnings }, null, 2) + '\n');
      else {
        io.stdout(yamlText);
        for (const w of qubesOnly.warnings) io.stderr(`warning: ${w}\n`);
      }
      return 0;
    }
    throw new UsageError(`scrape-config: no Incus host to scrape (group "${incusGroupOf(all)}"${values.limit ? ` ∩ --limit ${values.limit}` : ''} is empty)`);
  }

  const spec = pickSpec(incusHosts, values.certificate);
  const certificate = readCertificate(inventoryPath(inventory, spec.certificateFile));
  const stem = `${spec.name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${certificate ? certificate.fingerprint.slice(0, FINGERPRINT_IN_NAME) : 'FINGERPRINT'}`;
  const certFile = values['cert-file'] ?? `${DEFAULT_CERT_DIR}/${stem}.crt`;
  const keyFile = values['key-file'] ?? `${DEFAULT_CERT_DIR}/${stem}.key`;

  const transport = transportOptions(io, false, { settings: ansible });
  const pool = defaultSessionPool(transport);
  const sessionOf = async (h: InventoryHost): Promise<HostSession> => pool.session(await deps.connectionSpec(h, inventory, transport));
  let observed;
  try {
    observed = await observeMetricsEndpoints(incusHosts, sessionOf);
  } finally {
    await pool.closeAll();
  }

  const warnings: string[] = [];
  if (!certificate)
    warnings.push(`${spec.certificateFile} does not exist yet: run reconcile (apply) to generate the pair; its fingerprint goes in the file names`);
  const { targets, warnings: targetWarnings } = metricsTargets(observed.endpoints);
  warnings.push(...targetWarnings);
  // The same jobs prometheus_scrape deploys: Incus, then Qubes VMs behind prometheus-qubes-proxy
  // (from each dom0's qubes_prometheus_proxy, no connection needed).
  const jobs = generatedScrapeJobs(inventory, { targets, options: { jobName: 'incus', certFile, keyFile } }, limited());
  warnings.push(...jobs.warnings);
  const configs: ScrapeConfig[] = jobs.configs;

  const header = [
    'Generated by reconcile scrape-config — Incus metrics over mTLS.',
    `certificate "${spec.name}": fingerprint ${certificate?.fingerprint ?? '(not generated yet)'}${certificate ? `, expires ${certificate.notAfter.toISOString()}` : ''}`,
    `  on this machine: ${spec.certificateFile}, ${spec.keyFile} (key: keep it 0600, never in Git)`,
    `  for Prometheus:  cert_file ${certFile}, key_file ${keyFile}`,
    `targets: ${targets.map((t) => t.address).join(', ') || '(none)'}`,
  ];
  const yamlText = renderScrapeConfigs(configs, header);
  for (const f of observed.failures) warnings.push(`cannot read the metrics endpoint of ${f.message}`);

  if (k8s) {
    const written = await writeKubernetesManifests(k8s, spec, certificate, targets, inventory, io);
    for (const w of [...targetWarnings, ...written.warnings].filter((w, i, all) => all.indexOf(w) === i)) io.stderr(`warning: ${w}\n`);
    for (const f of observed.failures) io.stderr(`warning: cannot read the metrics endpoint of ${f.message}\n`);
    return observed.failures.length > 0 ? 1 : 0;
  }

  if (values.json) {
    io.stdout(
      JSON.stringify(
        {
          certificate: {
            name: spec.name,
            fingerprint: certificate?.fingerprint ?? null,
            notAfter: certificate?.notAfter.toISOString() ?? null,
            certificateFile: spec.certificateFile,
            keyFile: spec.keyFile,
            prometheusCertFile: certFile,
            prometheusKeyFile: keyFile,
          },
          targets,
          scrape_configs: configs,
          yaml: yamlText,
          warnings,
          failures: observed.failures,
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    io.stdout(yamlText);
    for (const w of warnings) io.stderr(`warning: ${w}\n`);
  }
  return observed.failures.length > 0 ? 1 : 0;
}

function pickSpec(hosts: InventoryHost[], name: string | undefined): MetricsCertificateSpec {
  for (const h of hosts) {
    const { specs, problems } = readMetricsCertificateSpecs(h);
    if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
    const found = name === undefined ? specs[0] : specs.find((s) => s.name === name);
    if (found) return found;
  }
  throw new UsageError(
    name === undefined
      ? 'scrape-config: no incus_metrics_certificates entry reaches the Incus hosts'
      : `scrape-config: no incus_metrics_certificates entry is named "${name}"`,
  );
}

function readCertificate(path: string): CertificateInfo | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return parseCertificatePem(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`scrape-config: ${path}: ${(e as Error).message}`);
  }
}

/**
 * --format prometheus-operator|servicemonitor: the manifests in --out DIR, each written atomically,
 * the Secret (it holds the private key) with mode 0600; stdout lists the files, never their content.
 */
async function writeKubernetesManifests(
  k8s: NonNullable<ReturnType<typeof kubernetesOptions>>,
  spec: MetricsCertificateSpec,
  certificate: CertificateInfo | undefined,
  targets: MetricsTarget[],
  inventory: Inventory,
  io: CliIO,
): Promise<{ warnings: string[] }> {
  if (!certificate) throw new UsageError(`scrape-config: ${spec.certificateFile} does not exist yet: run reconcile (apply) to generate the pair first`);
  const keyPath = inventoryPath(inventory, spec.keyFile);
  let keyPem: string;
  try {
    keyPem = readFileSync(keyPath, 'utf8');
  } catch (e) {
    throw new UsageError(`scrape-config: cannot read the key ${keyPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the Secret needs it`);
  }
  if (!keyMatchesCertificate(keyPem, certificate.pem)) throw new UsageError(`scrape-config: ${keyPath} is not the key of ${spec.certificateFile}`);
  const caFiles = new Map<string, string>();
  for (const t of targets) {
    if (!t.tlsServerName || !t.tlsCaFile || caFiles.has(t.tlsCaFile)) continue;
    try {
      caFiles.set(t.tlsCaFile, readFileSync(inventoryPath(inventory, t.tlsCaFile), 'utf8'));
    } catch {
      // reported by the renderer, naming the host
    }
  }
  const rendered = renderKubernetesManifests(
    targets,
    { certificatePem: certificate.pem, keyPem, fingerprint: certificate.fingerprint, caFiles },
    {
      format: k8s.format,
      namespace: k8s.namespace,
      labels: k8s.labels,
      secretName: k8s.secretName ?? secretNameOf(spec.name),
      name: k8s.name,
      jobName: 'incus',
    },
  );
  if (rendered.errors.length > 0) throw new UsageError(`scrape-config: ${rendered.errors.join('; ')}`);
  const out = resolve(io.cwd, k8s.out);
  try {
    await mkdir(out, { recursive: true });
    for (const f of rendered.files) await writeFileAtomic(join(out, f.name), f.content, { mode: f.mode });
  } catch (e) {
    throw new UsageError(`scrape-config: cannot write the manifests to ${out}: ${(e as Error).message}`);
  }
  for (const f of rendered.files)
    io.stdout(`wrote ${join(out, f.name)}${f.mode === 0o600 ? ' (mode 0600: holds the private key; never commit it unencrypted)' : ''}\n`);
  io.stdout(`apply them with: kubectl apply -f ${out}\n`);
  return { warnings: rendered.warnings };
}
