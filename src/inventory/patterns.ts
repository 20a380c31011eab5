/**
 * Ansible host patterns (inventory/manager.py), pure.
 *
 * Exports:
 *   selectHosts(inventory: Inventory, pattern: string): { hosts: string[]; warnings: string[] }
 *     Hosts in inventory order (first appearance in the files — Ansible's own order walks
 *     groups through Python sets, so it is not a stable order to copy); a warning per term that matches nothing (Ansible's "Could not
 *     match supplied host pattern, ignoring"). Throws UsageError for a malformed pattern.
 *   hostPatternError(pattern: string): string | undefined
 *     Why a pattern is malformed, or undefined: for validating playbooks before a run.
 *
 * Semantics kept from Ansible: `a,b` splits on commas only, otherwise `a:b` on colons
 * (brackets kept whole); plain terms are applied first (union), then `&term` (intersection),
 * then `!term` (exclusion); a pattern of only `&`/`!` terms starts from `all`. A term matches
 * group names (the group's hosts and its descendants') and, when no group matched or the
 * term is a glob or `~regex`, host names. `~regex` matches from the start of the name (Python
 * re.match); globs match the whole name (fnmatch). `term[i]`, `term[i:j]`, `term[-1]` select
 * by position in the group's host order.
 */
import { UsageError } from '../errors.js';
import type { Inventory } from './model.js';

export interface HostSelection {
  hosts: string[];
  warnings: string[];
}

interface Term {
  op: 'union' | 'intersect' | 'exclude';
  text: string;
  expr: string;
  subscript?: { start: number; end?: number };
  matcher: (name: string) => boolean;
  /** Globs and regexes also look at host names when a group matched. */
  special: boolean;
}

export function selectHosts(inventory: Inventory, pattern: string): HostSelection {
  const terms = parsePattern(pattern);
  const warnings: string[] = [];
  const ordered = [...terms.filter((t) => t.op === 'union'), ...terms.filter((t) => t.op === 'intersect'), ...terms.filter((t) => t.op === 'exclude')];
  if (!ordered.some((t) => t.op === 'union')) ordered.unshift(compileTerm('all'));
  let selected = new Set<string>();
  for (const term of ordered) {
    const matched = matchTerm(inventory, term);
    if (matched.length === 0 && term.expr !== 'all') {
      warnings.push(`could not match host pattern "${term.text}": it names no host or group in the inventory; ignoring it`);
    }
    if (term.op === 'union') for (const h of matched) selected.add(h);
    else if (term.op === 'intersect') {
      const keep = new Set(matched);
      selected = new Set([...selected].filter((h) => keep.has(h)));
    } else for (const h of matched) selected.delete(h);
  }
  return { hosts: [...inventory.hosts.keys()].filter((h) => selected.has(h)), warnings };
}

export function hostPatternError(pattern: string): string | undefined {
  try {
    parsePattern(pattern);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Ansible's split_host_pattern + order_patterns + _split_subscript, with syntax checks. */
function parsePattern(pattern: string): Term[] {
  if (pattern.trim() === '') throw new UsageError('empty host pattern');
  const parts = pattern.includes(',') ? pattern.split(',') : (pattern.match(/(?:[^\s:[\]]|\[[^\]]*\])+/g) ?? []);
  const texts = parts.map((p) => p.trim());
  if (texts.some((t) => t === '')) throw new UsageError(`bad host pattern "${pattern}": an empty term between separators`);
  if (texts.length === 0) throw new UsageError(`bad host pattern "${pattern}": no term in it`);
  return texts.map((t) => compileTerm(t));
}

function compileTerm(text: string): Term {
  let op: Term['op'] = 'union';
  let rest = text;
  if (rest.startsWith('&')) op = 'intersect';
  else if (rest.startsWith('!')) op = 'exclude';
  if (op !== 'union') rest = rest.slice(1);
  if (rest === '' || rest === '~') throw new UsageError(`bad host pattern "${text}": nothing after "${text}"`);
  let subscript: Term['subscript'];
  if (!rest.startsWith('~')) {
    const m = /^(.+)\[(?:(-?\d+)|(\d+)[:-](\d+)?)\]$/.exec(rest);
    if (m) {
      rest = m[1]!;
      subscript = m[2] !== undefined ? { start: Number(m[2]) } : { start: Number(m[3]), end: m[4] === undefined ? -1 : Number(m[4]) };
    } else if (/\[[^\]]*\]$/.test(rest) && !/[*?]/.test(rest) && /\[.*[:-].*\]$/.test(rest)) {
      throw new UsageError(`bad host pattern "${text}": a subscript is [N], [-N], [N:M] or [N:]`);
    }
  }
  let matcher: (name: string) => boolean;
  const special = rest.startsWith('~') || /[.?*[]/.test(rest);
  if (rest.startsWith('~')) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${rest.slice(1)})`);
    } catch (e) {
      throw new UsageError(`bad host pattern "${text}": invalid regular expression (${(e as Error).message.replace(/^Invalid regular expression: /, '')})`);
    }
    matcher = (name) => re.test(name);
  } else {
    const re = globToRegExp(rest, text);
    matcher = (name) => re.test(name);
  }
  return { op, text, expr: rest, subscript, matcher, special };
}

/** fnmatch.translate: `*`, `?`, `[seq]`, `[!seq]`, whole-name match, case-sensitive. */
function globToRegExp(glob: string, text: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) throw new UsageError(`bad host pattern "${text}": "[" without a closing "]"`);
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

function matchTerm(inventory: Inventory, term: Term): string[] {
  const results: string[] = [];
  const add = (h: string) => {
    if (!results.includes(h)) results.push(h);
  };
  let groupMatched = false;
  for (const g of inventory.groups.keys()) {
    if (!term.matcher(g)) continue;
    groupMatched = true;
    groupHosts(inventory, g).forEach(add);
  }
  if (!groupMatched || term.special) {
    for (const h of inventory.hosts.keys()) if (term.matcher(h)) add(h);
  }
  if (!term.subscript) return results;
  const { start, end } = term.subscript;
  if (end === undefined) {
    const h = results.at(start);
    return h === undefined ? [] : [h];
  }
  return results.slice(start, end === -1 ? undefined : end + 1);
}

/** Ansible's Group.get_hosts order: the group's own hosts, then its descendants' (depth first). */
function groupHosts(inventory: Inventory, name: string, seen = new Set<string>()): string[] {
  if (name === 'all') return [...inventory.hosts.keys()];
  if (seen.has(name)) return [];
  seen.add(name);
  const g = inventory.groups.get(name);
  if (!g) return [];
  const out = [...g.hosts];
  for (const c of g.children) for (const h of groupHosts(inventory, c, seen)) if (!out.includes(h)) out.push(h);
  return out;
}
