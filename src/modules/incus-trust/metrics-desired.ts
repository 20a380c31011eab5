/**
 * `incus_metrics_certificates` → DesiredCertificate entries of type `metrics`. Pure: the files
 * are read through DesiredContext.readInventoryFile and the clock is ctx.now.
 *
 * The key pair lives beside the inventory (certificate_file, key_file). A rotation keeps its
 * state in files beside the certificate, never in a state file (see metrics-keys.ts):
 *
 *   CERT            the current certificate (after a rotation started: the new one)
 *   CERT.previous   the certificate being retired; trusted until every Prometheus host has the
 *                   new pair, then declared absent (so any Incus host not reached yet drops it)
 *   CERT.deployed   one line per Prometheus host, `HOST FINGERPRINT`: the certificate that host
 *                   runs with, recorded by prometheus_scrape after it deployed and reloaded
 *
 * So the trust store sees, for one entry NAME:
 *   - no CERT: NAME to be added, pair "to be generated" (apply generates it first);
 *   - CERT expiring within rotate_before_days, no rotation under way: CERT kept, a new pair
 *     "to be generated" (what check mode shows; apply rotates the files before planning);
 *   - CERT.previous ≠ CERT, some Prometheus host not on CERT yet: both trusted under NAME;
 *   - every Prometheus host on CERT: CERT trusted, CERT.previous absent (removed).
 */
import { isAbsolute, resolve } from 'node:path';
import type { Problem, SourceLocation } from '../../errors.js';
import { unreadableReason, type Inventory, type InventoryHost, type VarDefinition } from '../../inventory/model.js';
import { CertificateParseError, daysLeft, parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import type { DesiredContext } from '../types.js';
import type { DesiredCertificate } from './model.js';

export const METRICS_VARIABLE = 'incus_metrics_certificates';
/** Inventory group whose hosts must have the new pair before the old certificate is removed. */
export const PROMETHEUS_GROUP_VARIABLE = 'prometheus_scrape_group';
export const DEFAULT_PROMETHEUS_GROUP = 'prometheus';
/** Inventory group of the Incus hosts that register the metrics certificates and are scraped. */
export const INCUS_METRICS_GROUP_VARIABLE = 'incus_metrics_group';
export const DEFAULT_INCUS_METRICS_GROUP = 'incus';

export const DEFAULT_COMMON_NAME = 'metrics.local';
export const DEFAULT_VALIDITY_DAYS = 3650;
export const DEFAULT_ROTATE_BEFORE_DAYS = 30;
export const DEFAULT_DESCRIPTION = 'Metrics certificate for Prometheus scraping';

export const PREVIOUS_SUFFIX = '.previous';
export const DEPLOYED_SUFFIX = '.deployed';

/** One `incus_metrics_certificates` entry, normalized with its defaults. */
export interface MetricsCertificateSpec {
  name: string;
  description: string;
  /** Relative to the inventory folder (or absolute), as written. */
  certificateFile: string;
  keyFile: string;
  commonName: string;
  validityDays: number;
  rotateBeforeDays: number;
  restricted: boolean;
  projects: string[];
  location: SourceLocation;
  valuePath: string;
}

/** Where a pair stands, from the files beside the certificate (see the header). */
export type MetricsPairPhase =
  | { phase: 'missing' }
  | { phase: 'current'; certificate: CertificateInfo }
  /** Expiring; a rotation would start (check mode shows it, apply mode starts it). */
  | { phase: 'due'; certificate: CertificateInfo }
  | { phase: 'rotating'; certificate: CertificateInfo; previous: CertificateInfo; waitingFor: string[] }
  | { phase: 'retired'; certificate: CertificateInfo; previous: CertificateInfo };

const KNOWN_FIELDS = new Set([
  'name',
  'description',
  'certificate_file',
  'key_file',
  'common_name',
  'validity_days',
  'rotate_before_days',
  'restricted',
  'projects',
]);

/** A path of the inventory (relative to its folder) as an absolute path on the controller. */
export function inventoryPath(inventory: Pick<Inventory, 'baseDir'>, file: string): string {
  return isAbsolute(file) ? file : resolve(inventory.baseDir, file);
}

/** Reads and checks the entries of one host; every problem at once. */
export function readMetricsCertificateSpecs(host: InventoryHost): { specs: MetricsCertificateSpec[]; problems: Problem[] } {
  const def = host.vars[METRICS_VARIABLE];
  const problems: Problem[] = [];
  const specs: MetricsCertificateSpec[] = [];
  if (!def) return { specs, problems };
  if (!Array.isArray(def.value)) {
    problems.push({ severity: 'error', location: def.location, valuePath: def.valuePath, message: `must be a list of certificates, got ${typeOf(def.value)}` });
    return { specs, problems };
  }
  const names = new Map<string, string>();
  def.value.forEach((raw: unknown, i: number) => {
    const base = `[${i}]`;
    const valuePath = `${def.valuePath}${base}`;
    const entryLocation = at(def, base);
    const problem = (field: string | undefined, message: string) =>
      problems.push({
        severity: 'error',
        location: field ? at(def, `${base}.${field}`) : entryLocation,
        valuePath: field ? `${valuePath}.${field}` : valuePath,
        message,
      });
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problem(undefined, `must be a mapping with name, certificate_file and key_file, got ${typeOf(raw)}`);
      return;
    }
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!KNOWN_FIELDS.has(key)) problem(key, `unknown field "${key}" (known: ${[...KNOWN_FIELDS].join(', ')})`);
    }
    const text = (field: string, required: boolean, fallback = ''): string => {
      const v = entry[field];
      if (v === undefined || v === null) {
        if (required) problem(undefined, `${field} is required`);
        return fallback;
      }
      if (typeof v !== 'string' || (required && v.trim() === '')) {
        problem(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
        return fallback;
      }
      return v;
    };
    const days = (field: string, fallback: number, min: number): number => {
      const v = entry[field];
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
        problem(field, `must be a whole number of days ≥ ${min}, got ${JSON.stringify(v)}`);
        return fallback;
      }
      return v;
    };
    const name = text('name', true);
    const certificateFile = text('certificate_file', true);
    const keyFile = text('key_file', true);
    const description = text('description', false, DEFAULT_DESCRIPTION);
    const commonName = text('common_name', false, DEFAULT_COMMON_NAME) || DEFAULT_COMMON_NAME;
    const validityDays = days('validity_days', DEFAULT_VALIDITY_DAYS, 1);
    const rotateBeforeDays = days('rotate_before_days', DEFAULT_ROTATE_BEFORE_DAYS, 0);
    if (rotateBeforeDays >= validityDays) {
      problem('rotate_before_days', `must be less than validity_days (${validityDays}), got ${rotateBeforeDays}: every new pair would be rotated at once`);
    }
    let restricted = false;
    if (entry.restricted !== undefined && entry.restricted !== null) {
      if (typeof entry.restricted !== 'boolean') problem('restricted', `must be true or false, got ${JSON.stringify(entry.restricted)}`);
      else restricted = entry.restricted;
    }
    let projects: string[] = [];
    if (entry.projects !== undefined && entry.projects !== null) {
      if (!Array.isArray(entry.projects) || entry.projects.some((p) => typeof p !== 'string')) {
        problem('projects', `must be a list of project names, got ${JSON.stringify(entry.projects)}`);
      } else {
        projects = entry.projects as string[];
        if (projects.length > 0 && !restricted) {
          problems.push({
            severity: 'warning',
            location: at(def, `${base}.projects`),
            valuePath: `${valuePath}.projects`,
            message: 'projects has no effect without restricted: true',
          });
        }
      }
    }
    if (certificateFile && keyFile && certificateFile === keyFile) problem('key_file', 'must differ from certificate_file');
    if (name) {
      const other = names.get(name);
      if (other !== undefined) problem('name', `"${name}" is already used by ${other}`);
      else names.set(name, valuePath);
    }
    specs.push({
      name,
      description,
      certificateFile,
      keyFile,
      commonName,
      validityDays,
      rotateBeforeDays,
      restricted,
      projects,
      location: entryLocation,
      valuePath,
    });
  });
  return { specs: problems.some((p) => p.severity === 'error') ? [] : specs, problems };
}

/** True for the hosts of the Prometheus group (prometheus_scrape_group, default "prometheus"). */
export function inPrometheusGroup(host: InventoryHost): boolean {
  return host.groups.includes(stringVar(host.vars[PROMETHEUS_GROUP_VARIABLE]) ?? DEFAULT_PROMETHEUS_GROUP);
}

/** The Incus group's name as a host sees it (incus_metrics_group, default "incus"). */
export function incusGroupOf(host: InventoryHost | undefined): string {
  return stringVar(host?.vars[INCUS_METRICS_GROUP_VARIABLE]) ?? DEFAULT_INCUS_METRICS_GROUP;
}

/**
 * The Incus hosts whose members are scrape targets, inventory order: the Incus group's hosts;
 * without that group, the hosts that register a metrics certificate (as incus_trust does) and
 * are not in the Prometheus group.
 */
export function incusHostsToScrape(inventory: Inventory, incusGroup: string): InventoryHost[] {
  const hosts = [...inventory.hosts.values()];
  if (inventory.groups.has(incusGroup)) return hosts.filter((h) => h.groups.includes(incusGroup));
  return hosts.filter((h) => h.vars[METRICS_VARIABLE] !== undefined && !inPrometheusGroup(h));
}

/**
 * The entry a Prometheus host deploys: prometheus_metrics_certificate (a name), else the first
 * entry it sees — its own variable first, then its Incus hosts'.
 */
export function metricsSpecForPrometheusHost(inventory: Inventory, promHost: InventoryHost): MetricsCertificateSpec | undefined {
  const wanted = stringVar(promHost.vars.prometheus_metrics_certificate);
  for (const h of [promHost, ...incusHostsToScrape(inventory, incusGroupOf(promHost))]) {
    const { specs } = readMetricsCertificateSpecs(h);
    const found = wanted === undefined ? specs[0] : specs.find((s) => s.name === wanted);
    if (found) return found;
  }
  return undefined;
}

/**
 * Where the manifests of prometheus_kubernetes record the pair they hold (CERT.deployed): like a
 * Prometheus host, the Kubernetes Secret must have the new pair before the previous one goes.
 */
export const KUBERNETES_DEPLOYMENT = 'kubernetes';

/** Prometheus hosts (and the Kubernetes manifests) that deploy the entry `specName`: all must run a new pair before the previous one goes. */
export function prometheusHosts(inventory: Inventory, specName: string): string[] {
  const hosts = [...inventory.hosts.values()]
    .filter((h) => inPrometheusGroup(h) && metricsSpecForPrometheusHost(inventory, h)?.name === specName)
    .map((h) => h.name);
  return kubernetesEntry(inventory) === specName ? [...hosts, KUBERNETES_DEPLOYMENT] : hosts;
}

/** The incus_metrics_certificates entry prometheus_kubernetes (set for the whole inventory) deploys, if any. */
export function kubernetesEntry(inventory: Inventory): string | undefined {
  const all = inventory.groups.get('all');
  const def = all?.fileVars.prometheus_kubernetes ?? all?.vars.prometheus_kubernetes;
  if (!def || typeof def.value !== 'object' || def.value === null || Array.isArray(def.value)) return undefined;
  const wanted = (def.value as Record<string, unknown>).certificate;
  if (typeof wanted === 'string') return wanted;
  const wide: InventoryHost = { name: 'all', groups: ['all'], vars: { ...all!.vars, ...all!.fileVars } };
  return incusHostsToScrape(inventory, incusGroupOf(wide)).flatMap((h) => readMetricsCertificateSpecs(h).specs)[0]?.name;
}

/** `HOST FINGERPRINT` lines of CERT.deployed → host → fingerprint. Unparsable lines are ignored. */
export function parseDeployedRecord(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const m = /^\s*(\S+)\s+([0-9a-f]{64})\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

export function formatDeployedRecord(record: Map<string, string>): string {
  return [...record.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([h, fp]) => `${h} ${fp}\n`)
    .join('');
}

/**
 * The phase of a pair. `prometheus` are the hosts that must run with the new certificate
 * before the previous one may go.
 */
export function metricsPairPhase(
  spec: Pick<MetricsCertificateSpec, 'rotateBeforeDays'>,
  files: { certificate?: CertificateInfo; previous?: CertificateInfo; deployed: Map<string, string> },
  prometheus: string[],
  now: Date,
): MetricsPairPhase {
  const { certificate, previous } = files;
  if (!certificate) return { phase: 'missing' };
  if (previous && previous.fingerprint !== certificate.fingerprint) {
    const waitingFor = prometheus.filter((h) => files.deployed.get(h) !== certificate.fingerprint);
    if (waitingFor.length > 0) return { phase: 'rotating', certificate, previous, waitingFor };
    if (daysLeft(certificate, now) >= spec.rotateBeforeDays) return { phase: 'retired', certificate, previous };
  }
  if (daysLeft(certificate, now) < spec.rotateBeforeDays) return { phase: 'due', certificate };
  return { phase: 'current', certificate };
}

/**
 * The DesiredCertificate entries (type metrics) of one host, plus problems with their
 * file:line:column. Wired into incus_trust's desired().
 */
export function desiredMetricsCertificates(
  host: InventoryHost,
  ctx: DesiredContext,
): {
  certificates: DesiredCertificate[];
  problems: Problem[];
  /** False when the host does not register metrics certificates (no variable, or outside the Incus group). */
  registers: boolean;
} {
  const { specs, problems } = readMetricsCertificateSpecs(host);
  const certificates: DesiredCertificate[] = [];
  if (!registersMetricsCertificates(host, ctx.inventory)) return { certificates, problems, registers: false };
  for (const spec of specs) {
    const prometheus = prometheusHosts(ctx.inventory, spec.name);
    const parse = (file: string, field: string): CertificateInfo | undefined => {
      const bytes = ctx.readInventoryFile(file);
      const unreadable = unreadableReason(bytes);
      if (unreadable) {
        problems.push({ severity: 'error', location: spec.location, valuePath: `${spec.valuePath}.${field}`, message: `${file} ${unreadable}` });
        return undefined;
      }
      if (!bytes) return undefined;
      try {
        return parseCertificatePem(bytes.toString('utf8'));
      } catch (e) {
        if (!(e instanceof CertificateParseError)) throw e;
        problems.push({ severity: 'error', location: spec.location, valuePath: `${spec.valuePath}.${field}`, message: `${file}: ${e.message}` });
        return undefined;
      }
    };
    const certificate = parse(spec.certificateFile, 'certificate_file');
    // A key "file" that is a device or a FIFO would be taken for a missing key and replaced.
    const keyUnreadable = unreadableReason(ctx.readInventoryFile(spec.keyFile));
    if (keyUnreadable)
      problems.push({ severity: 'error', location: spec.location, valuePath: `${spec.valuePath}.key_file`, message: `${spec.keyFile} ${keyUnreadable}` });
    const previous = parse(spec.certificateFile + PREVIOUS_SUFFIX, 'certificate_file');
    const deployed = parseDeployedRecord(ctx.readInventoryFile(spec.certificateFile + DEPLOYED_SUFFIX)?.toString('utf8'));
    const entry = (info: CertificateInfo | undefined, state: 'present' | 'absent' = 'present', file = spec.certificateFile): DesiredCertificate => ({
      name: spec.name,
      type: 'metrics',
      description: spec.description,
      restricted: spec.restricted,
      projects: spec.projects,
      state,
      certificate: info,
      certificateFile: file,
      location: spec.location,
      valuePath: spec.valuePath,
    });
    const phase = metricsPairPhase(spec, { certificate, previous, deployed }, prometheus, ctx.now);
    switch (phase.phase) {
      case 'missing':
        certificates.push({ ...entry(undefined), pendingCertificatePath: inventoryPath(ctx.inventory, spec.certificateFile) });
        break;
      case 'current':
        certificates.push(entry(phase.certificate));
        break;
      case 'due':
        // The expiring certificate stays trusted; the new pair is added next to it.
        certificates.push(
          {
            ...entry(undefined),
            pendingCertificatePath: inventoryPath(ctx.inventory, spec.certificateFile),
            planNote: `rotation: ${spec.certificateFile} expires ${phase.certificate.notAfter.toISOString().slice(0, 10)}, within rotate_before_days (${spec.rotateBeforeDays}); the current one stays trusted until every Prometheus host runs the new pair`,
          },
          entry(phase.certificate, 'present'),
        );
        break;
      case 'rotating':
        certificates.push(
          {
            ...entry(phase.certificate),
            planNote: `rotation: the previous certificate stays trusted until ${phase.waitingFor.join(', ')} run${phase.waitingFor.length === 1 ? 's' : ''} the new pair`,
          },
          entry(phase.previous, 'present', spec.certificateFile + PREVIOUS_SUFFIX),
        );
        break;
      case 'retired':
        certificates.push(entry(phase.certificate), entry(phase.previous, 'absent', spec.certificateFile + PREVIOUS_SUFFIX));
        break;
    }
  }
  return { certificates, problems, registers: true };
}

/**
 * incus_metrics_certificates is often set for all hosts: only the Incus group (incus_metrics_group,
 * default "incus") registers it when that group exists; a Prometheus host reads the same variable
 * for the pair it deploys, but runs no Incus.
 */
export function registersMetricsCertificates(host: InventoryHost, inventory: Inventory): boolean {
  return host.vars[METRICS_VARIABLE] !== undefined && inNamedGroup(host, inventory, INCUS_METRICS_GROUP_VARIABLE, DEFAULT_INCUS_METRICS_GROUP);
}

/**
 * The rule by which Incus servers are told apart in a mixed inventory: membership of the group a
 * variable names (or its default) when the inventory has that group; every host when it has not.
 */
export function inNamedGroup(host: InventoryHost, inventory: Inventory, variable: string, fallback: string): boolean {
  const group = stringVar(host.vars[variable]) ?? fallback;
  return !inventory.groups.has(group) || host.groups.includes(group);
}

function at(def: VarDefinition, nestedPath: string): SourceLocation {
  return def.nested.get(nestedPath) ?? def.nested.get(nestedPath.replace(/\.[^.[\]]+$/, '')) ?? def.location;
}

function stringVar(def: VarDefinition | undefined): string | undefined {
  return typeof def?.value === 'string' && def.value !== '' ? def.value : undefined;
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;
}
