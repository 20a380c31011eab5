/**
 * The machine view of a run: the RunReport as one JSON object (schema/report.schema.json).
 * Pure. Action payloads (`data`) are never part of a report, so no key material can leak here.
 */
import type { RunReport } from '../engine/report.js';

export function renderJsonReport(report: RunReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
