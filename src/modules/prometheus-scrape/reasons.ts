/**
 * prometheus_scrape's report vocabulary: every reason an action may have, as a code (what the
 * JSON report and saved plans carry) and its words. Pure.
 */
import type { ReasonVocabulary } from '../types.js';

export type ScrapeReason =
  'pair-to-generate' | 'pair-new' | 'missing' | 'key-attributes' | 'refused-at-reload' | 'not-loaded' | 'content-differs' | 'unused' | 'record';

export const SCRAPE_REASONS: ReasonVocabulary<ScrapeReason> = {
  'pair-to-generate': () => 'key pair to be generated',
  'pair-new': () => 'new certificate; the old pair stays until Prometheus reloaded',
  missing: () => 'missing',
  'key-attributes': () => 'mode or owner differ',
  'refused-at-reload': () => 'Prometheus refused it at its last reload',
  'not-loaded': () => 'Prometheus has not loaded it (a reload failed or was cut short): written and reloaded again',
  'content-differs': () => 'content differs',
  unused: () => 'no longer used (removed after Prometheus reloaded)',
  record: (host) => `records that ${host ?? 'this host'} runs with this certificate, so that the previous one can be removed from Incus`,
};
