/**
 * Variables that look like one reconcile reads but are not (`incus_trusted_client` for
 * `incus_trusted_clients`): Ansible keeps them as any other variable, so the intended setting
 * silently does nothing — a drift detector that checks nothing. Each is a problem naming its
 * file:line:column and the variable meant: a warning, or an error under --strict. Pure.
 */
import type { Problem } from '../errors.js';
import type { Inventory, VarDefinition } from './model.js';

/** The variable reconcile reads that `name` most likely meant, if any. */
export function intendedVariable(name: string, known: readonly string[]): string | undefined {
  if (known.includes(name)) return undefined;
  const plural = known.find((k) => k === `${name}s` || `${k}s` === name || k === `${name}es` || `${k}es` === name);
  if (plural) return plural;
  // Short names would match too much: one edit for them, two for longer ones.
  const allowed = name.length >= 10 ? 2 : name.length >= 6 ? 1 : 0;
  let best: { name: string; distance: number } | undefined;
  for (const k of known) {
    const d = editDistance(name, k, allowed);
    if (d <= allowed && (!best || d < best.distance)) best = { name: k, distance: d };
  }
  return best?.name;
}

export function nearMissProblems(inventory: Inventory, known: readonly string[], severity: 'warning' | 'error'): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const visit = (name: string, def: VarDefinition) => {
    const where = `${def.location.file}:${def.location.line}:${def.location.column}`;
    if (seen.has(where)) return;
    seen.add(where);
    const meant = intendedVariable(name, known);
    if (!meant) return;
    problems.push({
      severity,
      location: def.nested.get('key:') ?? def.location,
      valuePath: def.valuePath,
      message: `"${name}" is not a variable reconcile reads: did you mean "${meant}"? As written it is ignored${severity === 'warning' ? ' (an error with --strict)' : ''}`,
    });
  };
  for (const group of inventory.groups.values()) {
    for (const [name, def] of [...Object.entries(group.vars), ...Object.entries(group.fileVars)]) visit(name, def);
  }
  for (const host of inventory.hosts.values()) for (const [name, def] of Object.entries(host.vars)) visit(name, def);
  return problems;
}

/** Levenshtein distance, giving up (returning limit + 1) once it exceeds `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const v = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      current.push(v);
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin > limit) return limit + 1;
    previous = current;
  }
  return previous[b.length]!;
}
