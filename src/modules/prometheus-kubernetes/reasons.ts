/** prometheus_kubernetes's report vocabulary (codes in the JSON report and saved plans; words here). Pure. */
import type { ReasonVocabulary } from '../types.js';

export type KubernetesReason = 'missing' | 'content-differs' | 'secret-differs' | 'pair-to-generate' | 'record';

export const KUBERNETES_REASONS: ReasonVocabulary<KubernetesReason> = {
  missing: () => 'missing',
  'content-differs': () => 'content differs',
  'secret-differs': (d) => `the Secret does not hold the current metrics pair${d ? ` (${d})` : ''}`,
  'pair-to-generate': () => 'the metrics pair is still to be generated',
  record: () => 'records that the Kubernetes manifests hold this certificate, so that a rotation can remove the previous one',
};
