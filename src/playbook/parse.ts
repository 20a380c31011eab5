/**
 * Pure part of the playbook loader: YAML text → plays, with every problem located.
 *
 * Exports:
 *   parsePlaybook(file: string, text: string): { plays: Play[]; problems: Problem[] }
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { Problem } from '../errors.js';
import type { Play } from '../engine/plan-run.js';
import { MODULE_NAMES } from '../modules/registry.js';
import type { ModuleName } from '../modules/types.js';
import { hostPatternError } from '../inventory/patterns.js';
import { parseBlockYaml } from '../inventory/block-yaml.js';

const PLAY_KEYS = ['name', 'hosts', 'reconcile'];
export const PLAYBOOK_YAML = { version: '1.1', prettyErrors: false, uniqueKeys: true } as const;

export function parsePlaybook(file: string, text: string): { plays: Play[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const lines = text.split(/\r?\n/);
  const lineCounter = new LineCounter();
  const doc = parseBlockYaml(text, PLAYBOOK_YAML, lineCounter) ?? parseDocument(text, { ...PLAYBOOK_YAML, lineCounter });
  const problem = (offset: number | undefined, valuePath: string | undefined, message: string, severity: Problem['severity'] = 'error') => {
    const pos = lineCounter.linePos(offset ?? 0);
    const p: Problem = { severity, location: { file, line: pos.line, column: pos.col }, message, sourceLine: lines[pos.line - 1] };
    if (valuePath) p.valuePath = valuePath;
    problems.push(p);
  };
  const at = (n: unknown) => (n as Node | null | undefined)?.range?.[0];
  for (const e of doc.errors) problem(e.pos[0], undefined, `YAML syntax error: ${e.message.split('\n')[0]}`);
  if (doc.errors.length > 0) return { plays: [], problems };

  const root = doc.contents;
  if (!isSeq(root)) {
    problem(at(root), undefined, 'a playbook is a list of plays (- name: …, hosts: …, reconcile: […])');
    return { plays: [], problems };
  }
  const plays: Play[] = [];
  root.items.forEach((item, i) => {
    const path = `[${i}]`;
    if (!isMap(item)) {
      problem(at(item), path, 'a play must be a mapping with name, hosts and reconcile');
      return;
    }
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!PLAY_KEYS.includes(key)) problem(at(pair.key), `${path}.${key}`, `unknown key "${key}" in a play (allowed: ${PLAY_KEYS.join(', ')})`);
    }
    const nameNode = item.get('name', true) as Node | undefined;
    const name = isScalar(nameNode) && typeof nameNode.value === 'string' ? nameNode.value : undefined;
    if (nameNode !== undefined && name === undefined) problem(at(nameNode), `${path}.name`, 'must be a string');

    const hostsNode = item.get('hosts', true) as Node | undefined;
    let hosts: string | undefined;
    if (hostsNode === undefined) problem(at(item), path, 'is missing the required key "hosts" (a host pattern such as all or incus:!staging)');
    else if (isScalar(hostsNode) && typeof hostsNode.value === 'string') hosts = hostsNode.value;
    else if (isSeq(hostsNode) && hostsNode.items.every((h) => isScalar(h) && typeof h.value === 'string')) {
      hosts = hostsNode.items.map((h) => String((h as { value: string }).value)).join(',');
    } else problem(at(hostsNode), `${path}.hosts`, 'must be a host pattern (a string) or a list of them');
    if (hosts !== undefined) {
      const why = hostPatternError(hosts);
      if (why) problem(at(hostsNode), `${path}.hosts`, why);
    }

    const reconcileNode = item.get('reconcile', true) as Node | undefined;
    const reconcile: ModuleName[] = [];
    if (reconcileNode === undefined) {
      problem(at(item), path, `is missing the required key "reconcile" (a list of: ${MODULE_NAMES.join(', ')})`);
    } else if (!isSeq(reconcileNode) || reconcileNode.items.length === 0) {
      problem(at(reconcileNode), `${path}.reconcile`, `must be a non-empty list of: ${MODULE_NAMES.join(', ')}`);
    } else {
      reconcileNode.items.forEach((m, j) => {
        const value = isScalar(m) ? m.value : undefined;
        if (typeof value !== 'string' || !(MODULE_NAMES as string[]).includes(value)) {
          problem(at(m), `${path}.reconcile[${j}]`, `unknown kind ${JSON.stringify(value ?? null)} (known: ${MODULE_NAMES.join(', ')})`);
        } else if (reconcile.includes(value as ModuleName)) {
          problem(at(m), `${path}.reconcile[${j}]`, `"${value}" is listed twice`);
        } else reconcile.push(value as ModuleName);
      });
    }
    if (hosts !== undefined) plays.push({ name: name ?? `play ${i + 1}`, hosts, reconcile });
  });
  if (root.items.length === 0) problem(at(root), undefined, 'the playbook has no play', 'warning');
  return { plays, problems };
}
