/**
 * incus_trust's report vocabulary: every reason an action may have, as a code (what the JSON
 * report and saved plans carry) and its words (what people read). Pure.
 */
import type { ReasonVocabulary } from '../types.js';

export type TrustReason =
  | 'missing'
  | 'missing-pair'
  | 'new-certificate'
  | 'new-pair'
  | 'new-with-overlap'
  | 'previous-kept'
  | 'previous-expired'
  | 'type-changed'
  | 'fields-differ'
  | 'superseded'
  | 'absent'
  | 'pruned'
  | 'not-in-inventory'
  // Controller: the metrics key pair files beside the inventory.
  | 'pair-missing'
  | 'pair-due'
  | 'pair-key-mismatch'
  | 'pair-install-interrupted';

const withNote = (words: string) => (detail?: string) => (detail ? `${words}; ${detail}` : words);

export const TRUST_REASONS: ReasonVocabulary<TrustReason> = {
  missing: withNote('missing'),
  'missing-pair': withNote('missing (key pair to be generated)'),
  'new-certificate': () => 'new certificate',
  'new-pair': () => 'new certificate (key pair to be generated)',
  'new-with-overlap': (d) => `new certificate; the previous one stays trusted until ${d ?? '?'}`,
  'previous-kept': (d) => `previous certificate, trusted until ${d ?? '?'}`,
  'previous-expired': (d) => `previous certificate, trusted until ${d ?? '?'}, which has passed`,
  'type-changed': (d) => `type changed (${d ?? '?'})`,
  'fields-differ': (d) => `fields differ: ${d ?? '?'}`,
  superseded: () => 'superseded: the inventory gives this name another certificate',
  absent: () => 'state: absent in the inventory',
  pruned: () => 'not in the inventory; pruning is on',
  // The detail is the fingerprint: the line itself says how to revoke what it shows.
  'not-in-inventory': (d) => `not in the inventory; to revoke it: --prune, or an entry with state: absent and fingerprint: ${d ?? '…'}`,
  'pair-missing': () => 'no key pair yet: an ECDSA P-384 pair is generated, its key written 0600',
  'pair-due': (d) =>
    `the certificate expires ${d ?? 'soon'}: a new pair is generated, the current one stays trusted until every Prometheus host runs the new one`,
  'pair-key-mismatch': () => 'the key file does not belong to the certificate: a new pair is generated',
  'pair-install-interrupted': () => 'a previous run was interrupted while installing a new pair: the install is finished',
};
