/**
 * prometheus_scrape's desired state for one Prometheus host (pure): host variables, the
 * metrics pair from incus_metrics_certificates (read through ctx.readInventoryFile) and the
 * Incus endpoints its observeRun step read (ctx.observedRun).
 *
 * Variables (of the Prometheus host, or its groups / all):
 *   prometheus_config_file           whole prometheus.yml written here (/etc/prometheus/prometheus.yml)
 *   prometheus_metrics_cert_dir      folder of the pair files (/etc/prometheus/incus-metrics)
 *   prometheus_key_owner / _group    owner of the key file, mode 0600 (prometheus / the owner)
 *   prometheus_reload_command        argv list run on the host to reload; else POST to
 *   prometheus_reload_url            (http://127.0.0.1:9090/-/reload, needs --web.enable-lifecycle)
 *   prometheus_promtool              promtool command, used when present on the host (promtool)
 *   prometheus_trust_wait_seconds    before switching to a new pair, wait until every target
 *                                    accepts it, checked from the controller (60; 0 = don't)
 *   prometheus_global                `global:` mapping of prometheus.yml
 *   prometheus_extra_scrape_configs  list of scrape_configs appended verbatim
 *   prometheus_config_extra          other top-level keys (rule_files, alerting …) verbatim
 *   prometheus_incus_job_name        job name (incus); prometheus_incus_scrape_interval
 *   prometheus_metrics_certificate   which incus_metrics_certificates entry (default: the first)
 *   incus_metrics_group              inventory group of the Incus hosts to scrape (incus)
 *   prometheus_scrape_group          the Prometheus group itself (prometheus): other hosts a play
 *                                    selects are left alone
 */
import { isAbsolute, posix } from 'node:path';
import type { Problem } from '../../errors.js';
import type { InventoryHost, VarDefinition } from '../../inventory/model.js';
import { CertificateParseError, daysLeft, parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import { metricsTargets, renderPrometheusConfig, type ScrapeConfig } from '../../render/scrape-config.js';
import {
  DEPLOYED_SUFFIX,
  inPrometheusGroup,
  incusGroupOf,
  incusHostsToScrape,
  metricsSpecForPrometheusHost,
  parseDeployedRecord,
  type MetricsCertificateSpec,
} from '../incus-trust/metrics-desired.js';
import type { DesiredContext, DesiredResult } from '../types.js';
import { generatedScrapeJobs } from './jobs.js';
import type { DesiredMetricsPair, DesiredScrape, ScrapeFacts } from './model.js';

export const DEFAULT_CONFIG_FILE = '/etc/prometheus/prometheus.yml';
export const DEFAULT_CERT_DIR = '/etc/prometheus/incus-metrics';
export const DEFAULT_KEY_OWNER = 'prometheus';
export const DEFAULT_RELOAD_URL = 'http://127.0.0.1:9090/-/reload';
export const DEFAULT_TRUST_WAIT_SECONDS = 60;
export const FINGERPRINT_IN_NAME = 12;
/** Shown in file names of a pair still to be generated. */
export const UNKNOWN_FINGERPRINT = '(known after apply)';

/** The hosts of the Prometheus group (prometheus_scrape_group, default "prometheus"): the only ones this module touches. */
export const isPrometheusHost = inPrometheusGroup;

export function desiredScrape(host: InventoryHost, ctx: DesiredContext): DesiredResult<DesiredScrape> {
  // A play may select `all`: hosts outside the Prometheus group have nothing to reconcile here.
  if (!isPrometheusHost(host)) return { problems: [] };
  const problems: Problem[] = [];
  const facts = (ctx.observedRun as ScrapeFacts | undefined) ?? { endpoints: [], failures: [] };
  const v = host.vars;
  const str = (name: string, fallback: string): string => {
    const d = v[name];
    if (d === undefined || d.value === null) return fallback;
    if (typeof d.value !== 'string' || d.value === '') {
      problems.push(problemAt(d, `must be a non-empty string, got ${JSON.stringify(d.value)}`));
      return fallback;
    }
    return d.value;
  };
  const absPath = (name: string, fallback: string): string => {
    const p = str(name, fallback);
    if (!p.startsWith('/')) problems.push(problemAt(v[name]!, `must be an absolute path on the Prometheus host, got ${JSON.stringify(p)}`));
    return p;
  };
  const mapping = (name: string): Record<string, unknown> | undefined => {
    const d = v[name];
    if (d === undefined || d.value === null) return undefined;
    if (typeof d.value !== 'object' || Array.isArray(d.value)) {
      problems.push(problemAt(d, `must be a mapping, got ${JSON.stringify(d.value)}`));
      return undefined;
    }
    return d.value as Record<string, unknown>;
  };

  const configFile = absPath('prometheus_config_file', DEFAULT_CONFIG_FILE);
  const certDir = absPath('prometheus_metrics_cert_dir', DEFAULT_CERT_DIR);
  const keyOwner = str('prometheus_key_owner', DEFAULT_KEY_OWNER);
  const keyGroup = str('prometheus_key_group', keyOwner);
  const reloadUrl = str('prometheus_reload_url', DEFAULT_RELOAD_URL);
  const promtool = str('prometheus_promtool', 'promtool');
  const jobName = str('prometheus_incus_job_name', 'incus');
  const scrapeInterval = v.prometheus_incus_scrape_interval ? str('prometheus_incus_scrape_interval', '') : undefined;
  let reloadCommand: string[] | undefined;
  const rc = v.prometheus_reload_command;
  if (rc && rc.value !== null) {
    if (!Array.isArray(rc.value) || rc.value.length === 0 || rc.value.some((x) => typeof x !== 'string')) {
      problems.push(problemAt(rc, `must be a command as a list of words (e.g. [systemctl, reload, prometheus]), got ${JSON.stringify(rc.value)}`));
    } else {
      reloadCommand = rc.value as string[];
    }
  }
  let trustWaitSeconds = DEFAULT_TRUST_WAIT_SECONDS;
  const tw = v.prometheus_trust_wait_seconds;
  if (tw && tw.value !== null) {
    if (typeof tw.value !== 'number' || !Number.isInteger(tw.value) || tw.value < 0) {
      problems.push(problemAt(tw, `must be a whole number of seconds ≥ 0, got ${JSON.stringify(tw.value)}`));
    } else {
      trustWaitSeconds = tw.value;
    }
  }
  let extra: ScrapeConfig[] = [];
  const ex = v.prometheus_extra_scrape_configs;
  if (ex && ex.value !== null) {
    if (!Array.isArray(ex.value) || ex.value.some((c) => typeof c !== 'object' || c === null || Array.isArray(c))) {
      problems.push(problemAt(ex, 'must be a list of scrape_config mappings'));
    } else {
      extra = ex.value as ScrapeConfig[];
    }
  }

  // The metrics pair: this host's entries, else those of the Incus hosts it scrapes.
  const incusHosts = incusHostsToScrape(ctx.inventory, incusGroupOf(host));
  const spec = metricsSpecForPrometheusHost(ctx.inventory, host);
  const choice = v.prometheus_metrics_certificate;
  if (!spec && choice && typeof choice.value === 'string') problems.push(problemAt(choice, `no incus_metrics_certificates entry is named "${choice.value}"`));
  const scraped = new Set(incusHosts.map((h) => h.name));
  const endpoints = facts.endpoints.filter((e) => scraped.has(e.host));
  const errors = [
    ...facts.failures.filter((f) => scraped.has(f.host)).map((f) => `cannot read the metrics endpoint of ${f.message}`),
    ...(facts.qubesFailures ?? []).map((f) => `cannot list the tagged Qubes VMs to scrape: ${f.message}`),
  ];
  const warnings: string[] = [];
  let pair: DesiredMetricsPair | undefined;
  if (spec) {
    const current = readCertificate(spec, ctx, problems);
    // Check mode before a due rotation: the pair this host will get is still to be generated.
    const due = current !== undefined && daysLeft(current, ctx.now) < spec.rotateBeforeDays;
    const certificate = due ? undefined : current;
    const fp = certificate?.fingerprint;
    const stem = `${safeFileName(spec.name)}-${fp ? fp.slice(0, FINGERPRINT_IN_NAME) : UNKNOWN_FINGERPRINT}`;
    const localCertificateFile = resolveIn(ctx.inventory.baseDir, spec.certificateFile);
    const record = parseDeployedRecord(ctx.readInventoryFile(spec.certificateFile + DEPLOYED_SUFFIX)?.toString('utf8'));
    pair = {
      name: spec.name,
      filePrefix: safeFileName(spec.name),
      fingerprint: fp,
      certificatePem: certificate?.pem,
      certPath: posix.join(certDir, `${stem}.crt`),
      keyPath: posix.join(certDir, `${stem}.key`),
      localCertificateFile,
      localKeyFile: resolveIn(ctx.inventory.baseDir, spec.keyFile),
      recorded: fp !== undefined && record.get(host.name) === fp,
    };
  } else {
    // Without a metrics certificate there is nothing to scrape Incus with: a host that merely
    // sits in a group named "prometheus" keeps its own prometheus.yml untouched.
    return { problems };
  }

  const { targets, warnings: targetWarnings } = metricsTargets(endpoints);
  warnings.push(...targetWarnings);
  // The Incus jobs, then the Qubes VMs of every dom0 through prometheus-qubes-proxy: what scrape-config prints.
  const jobs = generatedScrapeJobs(
    ctx.inventory,
    { targets, options: { jobName, certFile: pair.certPath, keyFile: pair.keyPath, scrapeInterval } },
    undefined,
    facts.qubesTags,
  );
  const configs = jobs.configs;
  warnings.push(...jobs.warnings);
  const header = [
    'Managed by reconcile (prometheus_scrape): local changes are overwritten on the next run.',
    ...(pair
      ? [
          `Incus metrics certificate "${pair.name}": fingerprint ${pair.fingerprint ?? UNKNOWN_FINGERPRINT}`,
          `  cert_file ${pair.certPath}`,
          `  key_file  ${pair.keyPath}`,
        ]
      : []),
    // The expansion is part of the file: a VM tagged later changes it, so the plan shows it as drift.
    ...Object.entries(facts.qubesTags ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flatMap(([dom0, tags]) =>
        Object.entries(tags).map(([tag, vms]) => `Qubes @tag:${tag} in ${dom0}: ${vms.length > 0 ? vms.join(', ') : '(no VM has it)'}`),
      ),
  ];
  const configText = renderPrometheusConfig(
    { global: mapping('prometheus_global'), configs, extra, otherTopLevel: mapping('prometheus_config_extra') },
    header,
  );

  if (problems.some((p) => p.severity === 'error')) return { problems };
  return {
    desired: {
      host: host.name,
      configFile,
      configText,
      pair,
      certDir,
      keyOwner,
      keyGroup,
      reloadCommand,
      reloadUrl,
      promtool,
      trustWaitSeconds,
      targets: targets.map((t) => t.address),
      errors,
      warnings,
    },
    problems,
  };
}

function readCertificate(spec: MetricsCertificateSpec, ctx: DesiredContext, problems: Problem[]): CertificateInfo | undefined {
  const bytes = ctx.readInventoryFile(spec.certificateFile);
  if (!bytes) return undefined;
  try {
    return parseCertificatePem(bytes.toString('utf8'));
  } catch (e) {
    if (!(e instanceof CertificateParseError)) throw e;
    problems.push({
      severity: 'error',
      location: spec.location,
      valuePath: `${spec.valuePath}.certificate_file`,
      message: `${spec.certificateFile}: ${e.message}`,
    });
    return undefined;
  }
}

function problemAt(d: VarDefinition, message: string): Problem {
  return { severity: 'error', location: d.location, valuePath: d.valuePath, message };
}

function resolveIn(baseDir: string, file: string): string {
  return isAbsolute(file) ? file : posix.join(baseDir, file);
}

/** Entry names become file names on the host: keep them to a safe alphabet. */
function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}
