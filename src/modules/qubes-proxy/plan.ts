/**
 * Pure plan for one dom0: the policy file (add when missing, update when its text, mode or
 * owner differ, with a unified diff for --diff) and the proxy service of each proxy VM
 * (enable when it is not on). A target dropped from the inventory loses its policy lines, which
 * revokes its access; a proxy VM dropped (one the managed file set up) also gets its service
 * disabled, so it stops running a proxy nothing uses.
 */
import { unifiedDiff } from '../../render/unified-diff.js';
import { createHash } from 'node:crypto';
import type { Action, FieldChange, ModulePlan, PlanContext } from '../types.js';
import type { QubesReason } from './reasons.js';
import { POLICY_GROUP, POLICY_MODE, POLICY_OWNER, PROXY_SERVICE, type DesiredQubesProxy, type ObservedQubesProxy } from './model.js';
import { countRules, renderPolicy } from './policy.js';
import { checkPolicySyntax } from './policy-syntax.js';

export const POLICY_KIND = 'qubes policy file';
export const SERVICE_KIND = 'qubes service';

/** What apply needs for the policy file (Action.payload). */
export interface PolicyFileActionData {
  type: 'policy-file';
  path: string;
  content: string;
  /** Whether a file exists today (it is backed up before being replaced). */
  exists: boolean;
}

/** What apply needs to enable (or, for a proxy the inventory dropped, disable) the proxy service. */
export interface ProxyServiceActionData {
  type: 'proxy-service';
  vm: string;
  /** false: disable; absent or true: enable (plans saved before disabling existed). */
  enable?: boolean;
}

export type QubesPayload = PolicyFileActionData | ProxyServiceActionData;
export type QubesAction = Action<QubesPayload, QubesReason>;
export type QubesPlan = ModulePlan<QubesPayload, QubesReason>;

const MODE_TEXT = POLICY_MODE.toString(8);

export function planQubesProxy(desired: DesiredQubesProxy, observed: ObservedQubesProxy, _ctx: PlanContext): QubesPlan {
  const actions: QubesAction[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];

  const content = renderPolicy(desired);
  // A rendering bug must never reach dom0: a broken file makes qrexec deny every call.
  for (const e of checkPolicySyntax(content)) errors.push(`rendered policy line ${e.line}: ${e.message} (a bug in reconcile; nothing written)`);

  const policy = observed.policy;
  const data: PolicyFileActionData = { type: 'policy-file', path: desired.policyPath, content, exists: policy.content !== undefined };
  const after = { rules: countRules(content), mode: `0${MODE_TEXT}`, owner: `${POLICY_OWNER}:${POLICY_GROUP}` };
  // The file as read (text only: mode and owner are set by the write anyway).
  const precondition = {
    subject: desired.policyPath,
    digest: policy.content === undefined ? null : createHash('sha256').update(policy.content, 'utf8').digest('hex'),
  };
  if (policy.content === undefined) {
    actions.push({
      action: 'add',
      kind: POLICY_KIND,
      name: desired.policyPath,
      reason: 'not-on-dom0',
      after,
      diff: unifiedDiff(undefined, content, { fromLabel: desired.policyPath, toLabel: `${desired.policyPath} (planned)` }),
      applies: true,
      precondition,
      payload: data,
    });
  } else {
    const changes: FieldChange[] = [];
    const textDiffers = policy.content !== content;
    if (textDiffers) changes.push({ field: 'rules', before: countRules(policy.content), after: after.rules });
    if (policy.mode !== MODE_TEXT) changes.push({ field: 'mode', before: policy.mode ? `0${policy.mode}` : undefined, after: after.mode });
    const owner = `${policy.owner}:${policy.group}`;
    if (owner !== after.owner) changes.push({ field: 'owner', before: owner, after: after.owner });
    if (changes.length > 0) {
      actions.push({
        action: 'update',
        kind: POLICY_KIND,
        name: desired.policyPath,
        reason: textDiffers ? 'content-differs' : 'attributes-differ',
        ...(textDiffers ? {} : { detail: changes.map((c) => c.field).join(' and ') }),
        before: { rules: countRules(policy.content), mode: policy.mode ? `0${policy.mode}` : undefined, owner },
        after,
        changes,
        diff: textDiffers
          ? unifiedDiff(policy.content, content, { fromLabel: `${desired.policyPath} (dom0)`, toLabel: `${desired.policyPath} (planned)` })
          : undefined,
        applies: true,
        precondition,
        payload: data,
      });
    }
  }

  for (const vm of desired.proxies) {
    const service = observed.services.find((s) => s.vm === vm);
    if (!service) {
      errors.push(`proxy VM ${vm} was not observed`);
      continue;
    }
    if (service.error) {
      errors.push(service.error);
      continue;
    }
    if (service.enabled === true) continue;
    const serviceData: ProxyServiceActionData = { type: 'proxy-service', vm };
    actions.push({
      action: service.enabled === false ? 'update' : 'add',
      kind: SERVICE_KIND,
      name: `${vm}: ${PROXY_SERVICE}`,
      reason: service.enabled === false ? 'service-disabled' : 'service-not-enabled',
      before: service.enabled === false ? { enabled: false } : undefined,
      after: { enabled: true },
      changes: service.enabled === false ? [{ field: 'enabled', before: false, after: true }] : undefined,
      applies: true,
      // Enabling is the same whatever was read: no precondition.
      payload: serviceData,
    });
  }
  // A proxy VM reconcile set up that the inventory dropped: its service goes off, after the policy
  // that no longer lets it reach anything.
  for (const service of observed.retired ?? []) {
    if (service.error) {
      warnings.push(`${service.vm} was a proxy VM of this dom0 and is no longer in the inventory, but its service could not be read (${service.error})`);
      continue;
    }
    if (service.enabled !== true) continue;
    actions.push({
      action: 'remove',
      kind: SERVICE_KIND,
      name: `${service.vm}: ${PROXY_SERVICE}`,
      reason: 'proxy-removed',
      before: { enabled: true },
      after: { enabled: false },
      changes: [{ field: 'enabled', before: true, after: false }],
      applies: true,
      payload: { type: 'proxy-service', vm: service.vm, enable: false },
    });
  }
  return { module: 'qubes_prometheus_proxy', actions, errors, warnings };
}
