/**
 * Ansible's INI inventory (plugins/inventory/ini.py) read into an ordered list of operations,
 * each with its file:line:column, that load.ts applies as it applies a YAML inventory. Pure: no I/O.
 *
 * Exports:
 *   parseIniInventory(file, text, knownGroups): { operations, problems }
 *     knownGroups: groups that exist before this file (`all`, `ungrouped`, earlier files'), which
 *     `[g:vars]` and `[g:children]` may name without declaring them here.
 *   splitShell(line): Python's shlex.split(line, comments=True) with each character's offset.
 *   parsePythonLiteral(text): the value Ansible's _parse_value gives (ast.literal_eval, else the text).
 *
 * Deliberate differences from Ansible: every problem is reported (Ansible stops at the first);
 * Python literals with no JSON meaning (sets, complex numbers, tuple keys) and `\N{…}` escapes are
 * refused with an error instead of being read; floats are JavaScript numbers, so `1.0` prints as
 * `1`; a value's position is where it starts (no positions inside list or dict values).
 */
import type { Problem, SourceLocation } from '../errors.js';
import type { VarDefinition } from './model.js';
import { expandHostPattern } from './host-ranges.js';

export type IniOperation =
  | { kind: 'group'; name: string; location: SourceLocation }
  | { kind: 'child'; parent: string; child: string; location: SourceLocation; valuePath: string }
  | { kind: 'hosts'; group: string; names: string[]; port?: number; location: SourceLocation; valuePath: string; vars: Record<string, VarDefinition> }
  | { kind: 'groupVar'; group: string; name: string; definition: VarDefinition };

export interface IniParseResult {
  operations: IniOperation[];
  problems: Problem[];
}

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

interface Pending {
  state: 'vars' | 'children';
  location: SourceLocation;
  sourceLine: string;
  parents: { name: string; location: SourceLocation }[];
}

export function parseIniInventory(file: string, text: string, knownGroups: Iterable<string>): IniParseResult {
  const operations: IniOperation[] = [];
  const problems: Problem[] = [];
  const groups = new Set(knownGroups);
  const pending = new Map<string, Pending>();
  const lines = text.split(/\r\n|\n|\r/);
  let group = 'ungrouped';
  let state = 'hosts';

  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    const at = (offsetInLine: number): SourceLocation => ({ file, line: lineNo, column: indent + offsetInLine + 1 });
    const fail = (offsetInLine: number, message: string, valuePath?: string) => {
      const p: Problem = { severity: 'error', location: at(offsetInLine), message, sourceLine: raw };
      if (valuePath) p.valuePath = valuePath;
      problems.push(p);
    };
    if (line === '' || line[0] === '#' || line[0] === ';') return;

    const section = SECTION.exec(line);
    if (section) {
      group = section[1]!;
      state = section[2] ?? 'hosts';
      if (!['hosts', 'children', 'vars'].includes(state)) {
        fail(group.length + 2, `section [${group}:${state}] has an unknown type "${state}" (use :vars or :children)`);
        state = 'skip';
        return;
      }
      if (!groups.has(group)) {
        if (state === 'vars' && !pending.has(group)) pending.set(group, { state: 'vars', location: at(1), sourceLine: raw, parents: [] });
        groups.add(group);
        operations.push({ kind: 'group', name: group, location: at(1) });
      }
      if (state !== 'vars') declare(group);
      return;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      fail(0, `invalid section ${line}: a section is [GROUP], [GROUP:vars] or [GROUP:children], without spaces`);
      state = 'skip';
      return;
    }

    if (state === 'hosts') {
      const tokens = splitShell(line);
      if ('error' in tokens) return fail(tokens.offset, `cannot read the host line: ${tokens.error}`);
      if (tokens.length === 0) return;
      const [first, ...rest] = tokens;
      const pattern = first!.text;
      const hostPath = `${group}.hosts.${pattern}`;
      if (pattern.trim().endsWith(':')) return fail(first!.offset, `invalid host "${pattern}": a trailing ":" must be followed by a port`, hostPath);
      let expanded;
      try {
        expanded = expandHostPattern(pattern);
      } catch (e) {
        return fail(first!.offset, (e as Error).message, hostPath);
      }
      if (expanded.names.some((n) => n.trim() === '---'))
        return fail(first!.offset, 'invalid host "---": is this a YAML file with an INI extension?', hostPath);
      const vars: Record<string, VarDefinition> = {};
      for (const token of rest) {
        const eq = token.text.indexOf('=');
        if (eq < 0) {
          fail(token.offset, `expected key=value after the host name, not "${token.text}"`, hostPath);
          continue;
        }
        const name = token.text.slice(0, eq);
        // Point at the value as written (its opening quote, if quoted).
        const valueOffset = token.sources[eq]! + 1;
        const valuePath = `${hostPath}.${name}`;
        const parsed = parsePythonLiteral(token.text.slice(eq + 1));
        if ('unsupported' in parsed) {
          fail(valueOffset, parsed.unsupported, valuePath);
          continue;
        }
        vars[name] = { value: parsed.value, location: at(valueOffset), valuePath, nested: new Map() };
      }
      operations.push({ kind: 'hosts', group, names: expanded.names, port: expanded.port, location: at(first!.offset), valuePath: hostPath, vars });
    } else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) return fail(0, `expected key=value in [${group}:vars], not "${line}"`, `${group}.vars`);
      const name = line.slice(0, eq).trim();
      const afterEq = line.slice(eq + 1);
      const valueText = afterEq.trim();
      const valueOffset = valueText === '' ? eq + 1 : eq + 1 + (afterEq.length - afterEq.trimStart().length);
      const valuePath = `${group}.vars.${name}`;
      const parsed = parsePythonLiteral(valueText);
      if ('unsupported' in parsed) return fail(valueOffset, parsed.unsupported, valuePath);
      operations.push({ kind: 'groupVar', group, name, definition: { value: parsed.value, location: at(valueOffset), valuePath, nested: new Map() } });
    } else if (state === 'children') {
      const m = GROUP_NAME.exec(line);
      if (!m) return fail(0, `expected a group name in [${group}:children], not "${line}"`, `${group}.children`);
      const child = m[1]!;
      if (groups.has(child)) {
        operations.push({ kind: 'child', parent: group, child, location: at(0), valuePath: `${group}.children.${child}` });
      } else {
        const p = pending.get(child);
        if (p) p.parents.push({ name: group, location: at(0) });
        else pending.set(child, { state: 'children', location: at(0), sourceLine: raw, parents: [{ name: group, location: at(0) }] });
      }
    }
  });

  /** Ansible's _add_pending_children: a group named before its own section is linked once declared. */
  function declare(name: string): void {
    const p = pending.get(name);
    if (!p) return;
    pending.delete(name);
    if (p.state !== 'children') return;
    for (const parent of p.parents) {
      operations.push({ kind: 'child', parent: parent.name, child: name, location: parent.location, valuePath: `${parent.name}.children.${name}` });
      declare(parent.name);
    }
  }

  for (const [name, p] of pending) {
    problems.push({
      severity: 'error',
      location: p.location,
      sourceLine: p.sourceLine,
      message:
        p.state === 'vars'
          ? `section [${name}:vars] is for a group that is never declared: add a [${name}] or [${name}:children] section`
          : `group "${name}" in [${p.parents[p.parents.length - 1]!.name}:children] is never declared: add a [${name}] or [${name}:children] section`,
    });
  }
  return { operations, problems };
}

interface Token {
  text: string;
  offset: number;
  /** Offset in the line of each character of `text` (quotes and escapes removed). */
  sources: number[];
}

/** Python's shlex.split(line, comments=True) (POSIX mode), keeping where each character came from. */
export function splitShell(line: string): Token[] | { error: string; offset: number } {
  const tokens: Token[] = [];
  let token: Token | undefined;
  let i = 0;
  const push = (c: string, at: number) => {
    token!.text += c;
    token!.sources.push(at);
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (token) tokens.push(token);
      token = undefined;
      i++;
      continue;
    }
    if (c === '#') break;
    token ??= { text: '', offset: i, sources: [] };
    if (c === '\\') {
      if (i + 1 >= line.length) return { error: 'no character after the final backslash', offset: i };
      push(line[i + 1]!, i + 1);
      i += 2;
    } else if (c === "'" || c === '"') {
      const open = i;
      i++;
      for (;;) {
        if (i >= line.length) return { error: `no closing quotation for the ${c} opened here`, offset: open };
        const q = line[i]!;
        if (q === c) break;
        if (c === '"' && q === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
          push(line[i + 1]!, i + 1);
          i += 2;
          continue;
        }
        push(q, i);
        i++;
      }
      i++;
    } else {
      push(c, i);
      i++;
    }
  }
  if (token) tokens.push(token);
  return tokens;
}

type LiteralResult = { value: unknown } | { unsupported: string };

class NotLiteral extends Error {}

/**
 * What Ansible's _parse_value makes of an INI value: ast.literal_eval of the text (numbers, True,
 * False, None, quoted strings, lists, tuples, dicts), and the text itself when that fails.
 */
export function parsePythonLiteral(text: string): LiteralResult {
  // literal_eval strips leading spaces and tabs; a `#` outside a string starts a Python comment.
  const src = text.replace(/^[ \t]+/, '');
  let pos = 0;
  // A literal Python reads but JSON cannot hold: refused only if the whole text is a literal.
  let unsupported: string | undefined;
  const refuse = (message: string): null => {
    unsupported ??= message;
    return null;
  };
  const skip = () => {
    for (;;) {
      while (pos < src.length && /\s/.test(src[pos]!)) pos++;
      if (src[pos] === '#') {
        while (pos < src.length && src[pos] !== '\n') pos++;
        continue;
      }
      return;
    }
  };
  /** What the last value read was, for Python's rules on signs and complex numbers. */
  let lastKind: 'number' | 'signed' | 'complex' | 'other' = 'other';
  const value = (): unknown => {
    skip();
    const sign = src[pos];
    let v: unknown;
    if (sign === '+' || sign === '-') {
      pos++;
      const operand = atom();
      if (lastKind !== 'number' && lastKind !== 'complex') throw new NotLiteral();
      v = sign === '-' ? -Number(operand) : Number(operand);
      if (lastKind === 'complex') return v;
      lastKind = 'signed';
    } else {
      v = atom();
      if (lastKind !== 'number') return v;
    }
    // `1+2j` is a complex number, which Python reads and JSON cannot hold.
    skip();
    const op = src[pos];
    if (op === '+' || op === '-') {
      const save = pos;
      pos++;
      skip();
      const imaginary = /^(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9_]+)?[jJ]/.exec(src.slice(pos));
      if (imaginary && scalar(imaginary[0]) === COMPLEX) {
        pos += imaginary[0].length;
        lastKind = 'other';
        return refuse('a complex number is not supported as a variable value');
      }
      pos = save;
    }
    return v;
  };
  const atom = (): unknown => {
    skip();
    const c = src[pos];
    lastKind = 'other';
    if (c === undefined) throw new NotLiteral();
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      pos++;
      const items: unknown[] = [];
      let comma = false;
      for (;;) {
        skip();
        if (src[pos] === close) {
          pos++;
          break;
        }
        if (items.length > 0 && !comma) throw new NotLiteral();
        items.push(value());
        skip();
        comma = src[pos] === ',';
        if (comma) pos++;
      }
      // `(1)` is just 1 (and keeps its kind); `(1,)` and `()` are tuples, which print as lists.
      if (c === '(' && items.length === 1 && !comma) return items[0];
      lastKind = 'other';
      return items;
    }
    if (c === '{') {
      pos++;
      const out: Record<string, unknown> = {};
      let first = true;
      for (;;) {
        skip();
        if (src[pos] === '}') {
          pos++;
          return out;
        }
        if (!first) {
          if (src[pos] !== ',') throw new NotLiteral();
          pos++;
          skip();
          if (src[pos] === '}') {
            pos++;
            return out;
          }
        }
        first = false;
        const key = value();
        lastKind = 'other';
        skip();
        if (src[pos] !== ':') {
          // A set: read the rest to know whether Python would read it at all.
          while (src[pos] === ',') {
            pos++;
            skip();
            if (src[pos] === '}') break;
            value();
            skip();
          }
          if (src[pos] !== '}') throw new NotLiteral();
          pos++;
          return refuse('a Python set is not supported as a variable value');
        }
        pos++;
        const v = value();
        if (typeof key === 'object' && key !== null) refuse('a dict key must be a string, number, boolean or None');
        out[key === null ? 'null' : String(key)] = v;
      }
    }
    if (c === '"' || c === "'" || /^[rRuUbB]{1,2}['"]/.test(src.slice(pos, pos + 3))) {
      // Adjacent strings concatenate, as in Python.
      let out = '';
      do {
        out += stringLiteral();
        skip();
        lastKind = 'other';
      } while (src[pos] === '"' || src[pos] === "'" || /^[rRuUbB]{1,2}['"]/.test(src.slice(pos, pos + 3)));
      return out;
    }
    const word = /^(?:0[xXoObB][0-9a-fA-F_]+|[0-9_.]+(?:[eE][-+]?[0-9_]+)?[jJ]?|[A-Za-z_][A-Za-z0-9_]*)/.exec(src.slice(pos));
    if (!word) throw new NotLiteral();
    pos += word[0].length;
    const leaf = scalar(word[0]);
    if (leaf === COMPLEX) {
      lastKind = 'complex';
      return refuse('a complex number is not supported as a variable value');
    }
    lastKind = typeof leaf === 'number' ? 'number' : 'other';
    return leaf;
  };
  const stringLiteral = (): string => {
    const prefix = /^[rRuUbB]*/.exec(src.slice(pos))![0];
    if (/[fF]/.test(prefix) || prefix.length > 2) throw new NotLiteral();
    pos += prefix.length;
    const quote = src[pos]!;
    const triple = src.startsWith(quote.repeat(3), pos);
    const raw = /[rR]/.test(prefix);
    pos += triple ? 3 : 1;
    let out = '';
    for (;;) {
      if (triple && src.startsWith(quote.repeat(3), pos)) {
        pos += 3;
        return out;
      }
      const ch = src[pos];
      if (ch === undefined || (ch === '\n' && !triple)) throw new NotLiteral();
      pos++;
      if (ch === quote && !triple) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const e = src[pos];
      if (e === undefined) throw new NotLiteral();
      pos++;
      if (raw) {
        out += '\\' + e;
        continue;
      }
      const simple: Record<string, string> = {
        n: '\n',
        t: '\t',
        r: '\r',
        '\\': '\\',
        "'": "'",
        '"': '"',
        a: '\x07',
        b: '\b',
        f: '\f',
        v: '\v',
        '0': '\0',
        '\n': '',
      };
      if (e in simple && !(e === '0' && /[0-7]/.test(src[pos] ?? ''))) {
        out += simple[e];
      } else if (e === 'x' || e === 'u' || e === 'U') {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = src.slice(pos, pos + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw new NotLiteral();
        out += String.fromCodePoint(parseInt(hex, 16));
        pos += len;
      } else if (/[0-7]/.test(e)) {
        let oct = e;
        while (oct.length < 3 && /[0-7]/.test(src[pos] ?? '')) oct += src[pos++];
        out += String.fromCharCode(parseInt(oct, 8));
      } else if (e === 'N') {
        refuse('a \\N{…} escape is not supported; write the character itself');
      } else {
        out += '\\' + e;
      }
    }
  };
  try {
    const first = value();
    skip();
    // `1, 2` is a tuple in Python: a list here.
    const items = [first];
    let tuple = false;
    while (src[pos] === ',') {
      tuple = true;
      pos++;
      skip();
      if (pos >= src.length) break;
      items.push(value());
      skip();
    }
    if (pos < src.length) return { value: text };
    if (unsupported) return { unsupported: `${unsupported} (the value is ${text})` };
    return { value: tuple ? items : first };
  } catch (e) {
    if (!(e instanceof NotLiteral)) throw e;
    return { value: text };
  }
}

const COMPLEX = Symbol('complex');

/** A Python number or constant; anything else is not a literal (the text is kept). */
function scalar(word: string): unknown {
  if (word === 'True') return true;
  if (word === 'False') return false;
  if (word === 'None') return null;
  if (/^[A-Za-z_]/.test(word)) throw new NotLiteral();
  const digits = (s: string) => s.replace(/_/g, '');
  const digitPart = '[0-9](?:_?[0-9])*';
  const float = new RegExp(`^(?:(?:${digitPart})?\\.${digitPart}|${digitPart}\\.?)(?:[eE][-+]?${digitPart})?$`);
  if (/[jJ]$/.test(word)) {
    if (float.test(word.slice(0, -1))) return COMPLEX;
    throw new NotLiteral();
  }
  if (/^0[xX](?:_?[0-9a-fA-F])+$/.test(word)) return parseInt(digits(word.slice(2)), 16);
  if (/^0[oO](?:_?[0-7])+$/.test(word)) return parseInt(digits(word.slice(2)), 8);
  if (/^0[bB](?:_?[01])+$/.test(word)) return parseInt(digits(word.slice(2)), 2);
  if (/^(?:[1-9](?:_?[0-9])*|0(?:_?0)*)$/.test(word)) return Number(digits(word));
  if (float.test(word) && /[.eE]/.test(word)) return Number(digits(word));
  throw new NotLiteral();
}
