/**
 * qubes_prometheus_proxy's report vocabulary: every reason an action may have, as a code (what
 * the JSON report and saved plans carry) and its words. Pure.
 */
import type { ReasonVocabulary } from '../types.js';

export type QubesReason = 'not-on-dom0' | 'content-differs' | 'attributes-differ' | 'service-disabled' | 'service-not-enabled' | 'proxy-removed';

export const QUBES_REASONS: ReasonVocabulary<QubesReason> = {
  'not-on-dom0': () => 'not on dom0',
  'content-differs': () => 'content differs from the inventory',
  'attributes-differ': (d) => `${d ?? 'mode or owner'} differ`,
  'service-disabled': () => 'disabled in the VM',
  'service-not-enabled': () => 'not enabled in the VM',
  'proxy-removed': () => 'no longer a proxy VM in the inventory: its proxy service is disabled',
};
