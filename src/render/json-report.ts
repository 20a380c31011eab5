/**
 * The machine view of a run: the RunReport as one JSON object (schema/report.schema.json), each
 * action's reason code with its words (`reasonText`) beside it. Pure. Action payloads are never
 * part of a report, so no key material can leak here.
 */
import type { RunReport } from '../engine/report.js';
import type { ReasonWords } from './view.js';

export function renderJsonReport(report: RunReport, words: ReasonWords): string {
  const hosts = report.hosts.map((h) => ({ ...h, actions: h.actions.map((a) => ({ ...a, reasonText: words(a.module, a.reason, a.detail) })) }));
  return JSON.stringify({ ...report, hosts }, null, 2) + '\n';
}
