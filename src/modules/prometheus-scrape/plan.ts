/**
 * prometheus_scrape's pure planner: DesiredScrape × ObservedScrape → ModulePlan.
 *
 * Order of the actions = order of apply: the new pair (beside the old one), then the
 * configuration that points at it (checked by promtool, then renamed into place), then — after
 * Prometheus reloaded — the pair files no longer used, and last the deployment record that
 * lets incus_trust retire the previous certificate.
 */
import { createHash } from 'node:crypto';
import type { Action, ModulePlan, PlanContext } from '../types.js';
import type { DesiredScrape, ObservedScrape, PendingPair, ScrapePayload } from './model.js';
import { UNKNOWN_FINGERPRINT } from './desired.js';
import type { ScrapeReason } from './reasons.js';
import { redactSecretLine } from '../../render/redact.js';
import { unifiedDiff } from '../../render/unified-diff.js';

export type ScrapeAction = Action<ScrapePayload, ScrapeReason>;
export type ScrapePlan = ModulePlan<ScrapePayload, ScrapeReason>;

export const PAIR_KIND = 'prometheus metrics pair';
export const KEY_KIND = 'prometheus metrics key';
export const CONFIG_KIND = 'prometheus config';
export const RECORD_KIND = 'deployment record';

export function planScrape(desired: DesiredScrape, observed: ObservedScrape, _ctx: PlanContext): ScrapePlan {
  const actions: ScrapeAction[] = [];
  const pair = desired.pair;
  const pending: PendingPair | undefined =
    pair && pair.fingerprint === undefined ? { certificatePath: pair.localCertificateFile, filePrefix: pair.filePrefix } : undefined;
  const otherPairFiles = pair ? observed.pairFiles.filter((f) => f !== pair.certPath && f !== pair.keyPath) : [];
  if (pair) {
    const fingerprint = pair.fingerprint ?? UNKNOWN_FINGERPRINT;
    // A key file gone while its certificate stays is deployed again with it (not chown'ed: it is not there).
    if (pair.fingerprint === undefined || observed.certificateFingerprint !== pair.fingerprint || !observed.key) {
      const rotating = otherPairFiles.some((f) => f.endsWith('.crt'));
      actions.push({
        action: rotating ? 'rotate' : 'add',
        kind: PAIR_KIND,
        name: pair.certPath,
        reason: pair.fingerprint === undefined ? 'pair-to-generate' : rotating ? 'pair-new' : 'missing',
        fingerprint,
        after: { certificate: pair.certPath, key: pair.keyPath, keyMode: '0600', keyOwner: `${desired.keyOwner}:${desired.keyGroup}` },
        applies: true,
        payload: {
          op: 'pair',
          rotating,
          certDir: desired.certDir,
          certPath: pair.certPath,
          keyPath: pair.keyPath,
          certificatePem: pair.certificatePem,
          ...(pending ? { pending } : {}),
          localKeyFile: pair.localKeyFile,
          owner: desired.keyOwner,
          group: desired.keyGroup,
          trustWaitSeconds: desired.trustWaitSeconds,
          targets: desired.targets,
        },
      });
    } else if (!observed.key || observed.key.mode !== '600' || observed.key.owner !== desired.keyOwner || observed.key.group !== desired.keyGroup) {
      const before = observed.key ? { mode: `0${observed.key.mode}`, owner: `${observed.key.owner}:${observed.key.group}` } : { missing: true };
      const after = { mode: '0600', owner: `${desired.keyOwner}:${desired.keyGroup}` };
      actions.push({
        action: observed.key ? 'update' : 'add',
        kind: KEY_KIND,
        name: pair.keyPath,
        reason: observed.key ? 'key-attributes' : 'missing',
        fingerprint,
        before,
        after,
        changes: observed.key ? [{ field: 'key', before, after }] : undefined,
        applies: true,
        payload: { op: 'key-attributes', keyPath: pair.keyPath, owner: desired.keyOwner, group: desired.keyGroup },
      });
    }
  }
  // Same text but refused at the last reload, or never loaded (a reload that failed, a run cut
  // between write and reload): Prometheus runs an older configuration; write and reload again.
  // Until it runs the new pair the deployment is not recorded, so Incus keeps the old certificate.
  const same = observed.configText === desired.configText;
  const refused = same && observed.reloadConfigSuccess === false;
  const notLoaded =
    same && !refused && pair?.fingerprint !== undefined && observed.loadedConfig !== undefined && !observed.loadedConfig.includes(pair.certPath);
  if (!same || refused || notLoaded) {
    actions.push({
      action: observed.configText === undefined ? 'add' : 'update',
      kind: CONFIG_KIND,
      name: desired.configFile,
      reason: observed.configText === undefined ? 'missing' : refused ? 'refused-at-reload' : notLoaded ? 'not-loaded' : 'content-differs',
      before: observed.configText === undefined ? undefined : { bytes: Buffer.byteLength(observed.configText) },
      after: { targets: desired.targets, bytes: Buffer.byteLength(desired.configText) },
      // Passwords and tokens of the configuration are never shown (CI logs, pull requests).
      diff:
        observed.configText === undefined || refused || notLoaded
          ? undefined
          : unifiedDiff(observed.configText, desired.configText, {
              fromLabel: desired.configFile,
              toLabel: `${desired.configFile} (planned)`,
              show: redactSecretLine,
            }),
      applies: true,
      // The file as read: apply refuses to overwrite a version it has not seen.
      precondition: {
        subject: desired.configFile,
        digest: observed.configText === undefined ? null : createHash('sha256').update(observed.configText).digest('hex'),
      },
      payload: {
        op: 'config',
        configFile: desired.configFile,
        configText: desired.configText,
        mode: observed.configAttributes ? parseInt(observed.configAttributes.mode, 8) : 0o644,
        ...(observed.configAttributes ? { owner: observed.configAttributes.owner, group: observed.configAttributes.group } : {}),
        ...(pending ? { pending } : {}),
        promtool: observed.promtool ? desired.promtool : undefined,
        reload: { command: desired.reloadCommand, url: desired.reloadUrl },
      },
    });
  }
  for (const path of otherPairFiles) {
    actions.push({
      action: 'remove',
      kind: PAIR_KIND,
      name: path,
      reason: 'unused',
      applies: true,
      payload: { op: 'remove-file', path },
    });
  }
  if (pair && (!pair.recorded || actions.some((a) => a.payload?.op === 'pair'))) {
    actions.push({
      action: 'update',
      kind: RECORD_KIND,
      name: `${pair.localCertificateFile}.deployed`,
      reason: 'record',
      detail: desired.host,
      fingerprint: pair.fingerprint ?? UNKNOWN_FINGERPRINT,
      applies: true,
      payload: {
        op: 'record',
        localCertificateFile: pair.localCertificateFile,
        host: desired.host,
        fingerprint: pair.fingerprint,
        ...(pending ? { pending } : {}),
      },
    });
  }
  return {
    module: 'prometheus_scrape',
    actions,
    errors: desired.errors,
    warnings: [...desired.warnings, ...(observed.promtool ? [] : [`${desired.promtool} not found on the host: the configuration is deployed unchecked`])],
  };
}
