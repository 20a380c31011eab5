/**
 * The controller's plan for `prometheus_kubernetes` (pure, over the files read beside the
 * inventory and the Incus endpoints observed): one action per manifest file whose content differs
 * from what the inventory and the hosts say, with its diff. The Secret holds the private key: its
 * content is never in the plan — its action carries where to find the pair, and apply renders it;
 * its diff says only which certificate it holds.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { CertificateParseError, parseCertificatePem, type CertificateInfo } from '../../pki/certificate.js';
import { renderKubernetesManifests, FINGERPRINT_ANNOTATION, secretNameOf, type KubernetesOptions, type PairMaterial } from '../../render/kubernetes.js';
import { KNOWN_AFTER_APPLY } from '../incus-trust/plan.js';
import { metricsTargets } from '../../render/scrape-config.js';
import { unifiedDiff } from '../../render/unified-diff.js';
import {
  DEPLOYED_SUFFIX,
  KUBERNETES_DEPLOYMENT,
  incusGroupOf,
  incusHostsToScrape,
  inventoryPath,
  parseDeployedRecord,
  readMetricsCertificateSpecs,
} from '../incus-trust/metrics-desired.js';
import type { ScrapeFacts } from '../prometheus-scrape/model.js';
import type { Action, ControllerPlanContext, ModulePlan } from '../types.js';
import { inventoryWide, readKubernetesSpec } from './desired.js';
import type { KubernetesReason } from './reasons.js';

export const MANIFEST_KIND = 'kubernetes manifest';

/** What apply writes: a manifest's text, or for the Secret the recipe (never key material). */
export type ManifestPayload =
  | { op: 'manifest'; path: string; content: string; mode: number }
  | {
      op: 'secret';
      path: string;
      /** Absolute paths on the controller. */
      certificatePath: string;
      keyPath: string;
      /** CA files (incus_server_ca_file as given) and where they are read on the controller. */
      caFiles: { name: string; path: string }[];
      options: KubernetesOptions;
      targets: ReturnType<typeof metricsTargets>['targets'];
    }
  /** CERT.deployed says which pair the manifests hold, so that a rotation waits for them (metrics-desired.ts). */
  | { op: 'record'; certificatePath: string; fingerprint?: string };

export type ManifestAction = Action<ManifestPayload, KubernetesReason>;

export function planManifests(ctx: ControllerPlanContext): ModulePlan<ManifestPayload, KubernetesReason> | undefined {
  const plan: ModulePlan<ManifestPayload, KubernetesReason> = { module: 'prometheus_kubernetes', actions: [], errors: [], warnings: [] };
  const { spec } = readKubernetesSpec(inventoryWide(ctx.inventory)); // its problems are desired()'s to report
  if (!spec) return undefined;
  const facts = (ctx.observedRun as ScrapeFacts | undefined) ?? { endpoints: [], failures: [] };
  for (const f of facts.failures) plan.errors.push(`cannot read the metrics endpoint of ${f.message}`);
  const incusHosts = incusHostsToScrape(ctx.inventory, incusGroupOf(inventoryWide(ctx.inventory)));
  const entries = incusHosts.flatMap((h) => readMetricsCertificateSpecs(h).specs);
  const entry = spec.certificate === undefined ? entries[0] : entries.find((e) => e.name === spec.certificate);
  if (!entry) {
    plan.errors.push(
      spec.certificate === undefined
        ? 'prometheus_kubernetes: no incus_metrics_certificates entry reaches the Incus hosts'
        : `prometheus_kubernetes: no incus_metrics_certificates entry is named "${spec.certificate}"`,
    );
    return plan;
  }
  const { targets, warnings } = metricsTargets(facts.endpoints);
  plan.warnings.push(...warnings);

  const options: KubernetesOptions = {
    format: spec.format,
    namespace: spec.namespace,
    labels: spec.labels,
    secretName: spec.secretName ?? secretNameOf(entry.name),
    name: spec.name,
    jobName: 'incus',
  };
  let certificate: CertificateInfo | undefined;
  const certBytes = ctx.readInventoryFile(entry.certificateFile);
  try {
    certificate = certBytes ? parseCertificatePem(certBytes.toString('utf8')) : undefined;
  } catch (e) {
    if (!(e instanceof CertificateParseError)) throw e;
  }
  const keyText = ctx.readInventoryFile(entry.keyFile)?.toString('utf8');
  const caFiles = new Map<string, string>();
  for (const t of targets) {
    if (!t.tlsServerName || !t.tlsCaFile || caFiles.has(t.tlsCaFile)) continue;
    const ca = ctx.readInventoryFile(t.tlsCaFile);
    if (ca) caFiles.set(t.tlsCaFile, ca.toString('utf8'));
  }
  // With the pair still to be generated, the Secret is planned without content: apply renders it.
  const pair: PairMaterial = {
    certificatePem: certificate?.pem ?? '',
    keyPem: keyText ?? '',
    fingerprint: certificate?.fingerprint ?? KNOWN_AFTER_APPLY,
    caFiles,
  };
  const rendered = renderKubernetesManifests(targets, pair, options);
  plan.errors.push(...rendered.errors.map((e) => `prometheus_kubernetes: ${e}`));
  plan.warnings.push(...rendered.warnings.filter((w) => !plan.warnings.includes(w)));

  let secretPlanned = false;
  for (const file of rendered.files) {
    const relative = posix.join(spec.outDir, file.name);
    const before = ctx.readInventoryFile(relative);
    const path = inventoryPath(ctx.inventory, relative);
    const precondition = { subject: relative, digest: before ? sha256(before) : null };
    if (file.name === 'secret.yaml') {
      const holds = before ? fingerprintIn(before.toString('utf8')) : undefined;
      const current = certificate && keyText !== undefined && before !== undefined && before.toString('utf8') === file.content;
      if (current) continue;
      const detail = certificate ? `${holds ? `holds ${holds.slice(0, 12)}` : 'no pair'}; wanted ${certificate.fingerprint.slice(0, 12)}` : undefined;
      secretPlanned = true;
      plan.actions.push({
        action: before ? 'update' : 'add',
        kind: MANIFEST_KIND,
        name: path,
        reason: !certificate ? 'pair-to-generate' : before ? 'secret-differs' : 'missing',
        ...(detail && before ? { detail } : {}),
        fingerprint: certificate?.fingerprint ?? KNOWN_AFTER_APPLY,
        after: { kind: 'Secret', name: options.secretName, namespace: options.namespace, mode: '0600' },
        applies: true,
        precondition,
        payload: {
          op: 'secret',
          path,
          certificatePath: inventoryPath(ctx.inventory, entry.certificateFile),
          keyPath: inventoryPath(ctx.inventory, entry.keyFile),
          caFiles: [...caFiles.keys()].map((name) => ({ name, path: inventoryPath(ctx.inventory, name) })),
          options,
          targets,
        },
      });
      continue;
    }
    const text = before?.toString('utf8');
    if (text === file.content) continue;
    plan.actions.push({
      action: before ? 'update' : 'add',
      kind: MANIFEST_KIND,
      name: path,
      reason: before ? 'content-differs' : 'missing',
      after: { bytes: Buffer.byteLength(file.content) },
      diff: unifiedDiff(text, file.content, { fromLabel: relative, toLabel: `${relative} (planned)` }),
      applies: true,
      precondition,
      payload: { op: 'manifest', path, content: file.content, mode: file.mode },
    });
  }
  // Recorded once the Secret holds the pair: a rotation removes the previous certificate only then.
  const recorded = parseDeployedRecord(ctx.readInventoryFile(entry.certificateFile + DEPLOYED_SUFFIX)?.toString('utf8')).get(KUBERNETES_DEPLOYMENT);
  if (secretPlanned || !certificate || recorded !== certificate.fingerprint) {
    plan.actions.push({
      action: 'update',
      kind: 'deployment record',
      name: `${inventoryPath(ctx.inventory, entry.certificateFile)}${DEPLOYED_SUFFIX}`,
      reason: 'record',
      fingerprint: certificate?.fingerprint ?? KNOWN_AFTER_APPLY,
      applies: true,
      payload: {
        op: 'record',
        certificatePath: inventoryPath(ctx.inventory, entry.certificateFile),
        ...(certificate ? { fingerprint: certificate.fingerprint } : {}),
      },
    });
  }
  return plan;
}

/** The fingerprint annotation of a Secret file reconcile wrote (undefined: none). */
function fingerprintIn(text: string): string | undefined {
  const m = new RegExp(`${FINGERPRINT_ANNOTATION.replace(/[./]/g, '\\$&')}: ([0-9a-f]{64})`).exec(text);
  return m?.[1];
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
