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
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCommandArgs } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { formatProblem, InventoryError, UsageError } from '../../errors.js';
import { defaultPlanDeps, defaultSessionPool } from '../../engine/inputs.js';
import { readInventoryFile } from '../../inventory/load.js';
import type { InventoryHost } from '../../inventory/model.js';
import { parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import { metricsTargets, renderScrapeConfigs, type ScrapeConfig } from '../../render/scrape-config.js';
import { readMetricsCertificateSpecs, type MetricsCertificateSpec } from '../../modules/incus-trust/metrics-desired.js';
import { inventoryPath } from '../../modules/incus-trust/metrics-desired.js';
import { DEFAULT_CERT_DIR, FINGERPRINT_IN_NAME } from '../../modules/prometheus-scrape/desired.js';
import { incusGroupOf, incusHostsToScrape, observeMetricsEndpoints } from '../../modules/prometheus-scrape/targets.js';
import type { HostSession } from '../../transport/types.js';
import { generatedScrapeJobs } from '../../modules/prometheus-scrape/jobs.js';

export const HELP = `Usage: reconcile scrape-config -i INVENTORY [--limit PATTERN] [--certificate NAME]
                              [--cert-file PATH] [--key-file PATH] [--json]

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
  -h, --help             this help

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
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('scrape-config', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`scrape-config: unexpected argument '${positionals[0]}' (see 'reconcile scrape-config --help')`);
  if (!values.inventory) throw new UsageError(`scrape-config: -i INVENTORY is required (see 'reconcile scrape-config --help')`);

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

  const transport = transportOptions(io, false);
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
