/**
 * Adds items to a list variable of a YAML inventory or vars file, changing nothing else: the
 * file's comments, quoting, blank lines and order stay byte for byte. yaml's Document API
 * finds where the list is (its source ranges); the new items are text inserted there, in the
 * list's own indentation. Pure: text in, text out (or why it cannot be done safely).
 *
 * Where the items go:
 * - the one block list under KEY: after its last item;
 * - KEY with an empty value (`KEY:` or `KEY: []`): the list replaces the value;
 * - no KEY in the file: under `all.vars` of an inventory file (created if `all` has no vars),
 *   or at the top of a vars file (group_vars/…, host_vars/…).
 * A flow list with items, or KEY in more than one place, is refused: which list was meant
 * cannot be told, and a guess would change what the inventory means.
 */
import { isMap, isScalar, isSeq, parseDocument, stringify, visit, type Document, type Pair, type YAMLMap } from 'yaml';

export type InsertResult = { text: string; line: number } | { error: string };

export function insertListItems(text: string, key: string, items: Record<string, unknown>[], kind: 'inventory' | 'vars'): InsertResult {
  const doc = parseDocument(text, { version: '1.1', keepSourceTokens: false });
  if (doc.errors.length > 0) return { error: `it does not parse as YAML (${doc.errors[0]!.message.split('\n')[0]})` };
  const found: Pair[] = [];
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.value === key) found.push(pair as Pair);
    },
  });
  if (found.length > 1) {
    const lines = found.map((p) => lineOf(text, (p.key as { range: [number, number, number] }).range[0]));
    return { error: `${key} is set in ${found.length} places (lines ${lines.join(', ')}); which list to add to cannot be told` };
  }
  const result = found.length === 1 ? intoExisting(text, found[0]!, items, key) : intoNew(text, doc, key, items, kind);
  if ('error' in result) return result;
  return verified(text, result, key, items);
}

/** Appends to the list KEY already has, or replaces its empty value. */
function intoExisting(text: string, pair: Pair, items: Record<string, unknown>[], key: string): InsertResult {
  const keyStart = (pair.key as { range: [number, number, number] }).range[0];
  const keyColumn = keyStart - lineStartOf(text, keyStart);
  const value = pair.value;
  if (isSeq(value) && !value.flow && value.items.length > 0) {
    const first = (value.items[0] as { range: [number, number, number] }).range[0];
    const lineStart = lineStartOf(text, first);
    const dash = text.indexOf('-', lineStart);
    const last = value.items.at(-1) as { range: [number, number, number] };
    const at = endOfLine(text, last.range[1]);
    return splice(text, at, at, itemsText(items, dash - lineStart, first - lineStart));
  }
  const empty = value === null || (isScalar(value) && (value.value === null || value.value === '')) || (isSeq(value) && value.items.length === 0);
  if (!empty) {
    const what = isSeq(value) ? 'a flow list ([a, b]); write it as a block list (one "- " item per line)' : 'not a list';
    return { error: `${key} (line ${lineOf(text, keyStart)}) is ${what}` };
  }
  const indent = keyColumn + 2;
  const block = itemsText(items, indent, indent + 2);
  if (value !== null && isSeq(value)) {
    // `KEY: []` → `KEY:` with the block on the following lines (a comment after `[]` stays on the key's line).
    const [start, end] = (value as { range: [number, number, number] }).range;
    const cut = trimmedStart(text, start);
    const without = text.slice(0, cut) + text.slice(end);
    const at = endOfLine(without, cut);
    return splice(without, at, at, block);
  }
  const at = endOfLine(text, keyStart);
  return splice(text, at, at, block);
}

/** KEY is not in the file: under all.vars of an inventory, at the top of a vars file. */
function intoNew(text: string, doc: Document, key: string, items: Record<string, unknown>[], kind: 'inventory' | 'vars'): InsertResult {
  const root = doc.contents;
  if (kind === 'vars') {
    if (root === null || (isScalar(root) && root.value === null)) {
      return { text: `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${key}:\n${itemsText(items, 2, 4)}`, line: lineOf(text, text.length) + 1 };
    }
    if (!isMap(root) || root.flow) return { error: 'its top level is not a block mapping of variables' };
    return appendPair(text, root, key, items);
  }
  const all = isMap(root) ? root.get('all', true) : undefined;
  if (!isMap(all) || all.flow)
    return { error: `it has no "all:" group written as a block mapping to put ${key} under (add "${key}: []" where the entries belong)` };
  const vars = all.get('vars', true);
  if (isMap(vars) && !vars.flow) return appendPair(text, vars, key, items);
  if (vars !== undefined && !(isScalar(vars) && vars.value === null)) return { error: '"all.vars" is not a block mapping' };
  if (vars !== undefined) return { error: `"all.vars" is empty; write "${key}: []" under it first` };
  const column = columnOfFirstKey(text, all);
  const at = endOfLine(text, lastValueEnd(all));
  const block = `${' '.repeat(column)}vars:\n${' '.repeat(column + 2)}${key}:\n${itemsText(items, column + 4, column + 6)}`;
  return splice(text, at, at, block);
}

function appendPair(text: string, map: YAMLMap, key: string, items: Record<string, unknown>[]): InsertResult {
  const column = columnOfFirstKey(text, map);
  const at = endOfLine(text, lastValueEnd(map));
  return splice(text, at, at, `${' '.repeat(column)}${key}:\n${itemsText(items, column + 2, column + 4)}`);
}

function columnOfFirstKey(text: string, map: YAMLMap): number {
  const first = (map.items[0]?.key as { range?: [number, number, number] } | undefined)?.range?.[0];
  return first === undefined ? 0 : first - lineStartOf(text, first);
}

function lastValueEnd(map: YAMLMap): number {
  const last = map.items.at(-1);
  const node = (last?.value ?? last?.key) as { range?: [number, number, number] } | undefined;
  return node?.range?.[1] ?? (map as { range?: [number, number, number] }).range?.[1] ?? 0;
}

/** Items as block-list text: `- ` at `dashColumn`, each item's keys at `contentColumn`. */
function itemsText(items: Record<string, unknown>[], dashColumn: number, contentColumn: number): string {
  const gap = ' '.repeat(Math.max(1, contentColumn - dashColumn - 1));
  return items
    .map((item) => {
      // YAML 1.1 as Ansible reads it: a name like "yes" or "on" is quoted, not read back as a boolean.
      const lines = stringify(item, { version: '1.1', lineWidth: 0 }).replace(/\n$/, '').split('\n');
      return lines.map((l, i) => (i === 0 ? `${' '.repeat(dashColumn)}-${gap}${l}` : `${' '.repeat(contentColumn)}${l}`)).join('\n') + '\n';
    })
    .join('');
}

/** The new text must hold exactly the old values plus the new items at the end of KEY's list. */
function verified(before: string, result: { text: string; line: number }, key: string, items: Record<string, unknown>[]): InsertResult {
  const old = parseDocument(before, { version: '1.1' }).toJS() as unknown;
  const doc = parseDocument(result.text, { version: '1.1' });
  if (doc.errors.length > 0) return { error: 'the entries could not be inserted without breaking the file' };
  const now = doc.toJS() as unknown;
  const stripped = withoutAddedItems(now, key, items.length);
  if (stripped === undefined || JSON.stringify(normalized(stripped, key)) !== JSON.stringify(normalized(old, key))) {
    return { error: 'the entries could not be inserted without changing something else in the file' };
  }
  return result;
}

/** `value` with the last `count` items of KEY's list removed (undefined if there is no such list). */
function withoutAddedItems(value: unknown, key: string, count: number): unknown {
  let done = false;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === key && Array.isArray(x) && !done) {
        done = true;
        out[k] = x.slice(0, x.length - count);
      } else {
        out[k] = walk(x);
      }
    }
    return out;
  };
  const result = walk(value);
  return done ? result : undefined;
}

/** An empty KEY (null, [] or absent) and an empty `vars` compare equal: that is what the insert fills. */
function normalized(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return value.map((v) => normalized(v, key));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value as Record<string, unknown>)) {
    if (k === key && (x === null || (Array.isArray(x) && x.length === 0))) continue;
    const inner = normalized(x, key);
    if (k === 'vars' && inner !== null && typeof inner === 'object' && !Array.isArray(inner) && Object.keys(inner).length === 0) continue;
    out[k] = inner;
  }
  return out;
}

function splice(text: string, from: number, to: number, insert: string): { text: string; line: number } {
  const head = text.slice(0, from);
  const needsNewline = insert !== '' && head !== '' && !head.endsWith('\n');
  return { text: head + (needsNewline ? '\n' : '') + insert + text.slice(to), line: lineOf(text, from) + (needsNewline ? 1 : 0) };
}

function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

/** The offset just after the end of the line holding `offset - 1` (the end of a value). */
function endOfLine(text: string, offset: number): number {
  if (offset > 0 && text[offset - 1] === '\n') return offset;
  const newline = text.indexOf('\n', offset);
  return newline === -1 ? text.length : newline + 1;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

function trimmedStart(text: string, offset: number): number {
  let i = offset;
  while (i > 0 && (text[i - 1] === ' ' || text[i - 1] === '\t')) i--;
  return i;
}
