/**
 * The block-style YAML that inventories are written in — nested mappings and lists, one
 * `key: value` or `- value` a line, plain or simply quoted scalars, comments — read in one pass
 * into the `yaml` package's own nodes, with the same values, tags' resolution and positions as
 * its `parseDocument` gives. The yaml package takes ~25 ms (cold, as every run is) for a 30-host
 * inventory; this takes a fraction of that.
 *
 * Exports:
 *   parseBlockYaml(source, options, lineCounter): Document.Parsed | undefined
 *     undefined for anything beyond that subset (flow collections, anchors, tags, block or
 *     multi-line scalars, escapes, merge keys, duplicate keys, tabs, several documents …) and for
 *     anything it would have to judge as an error: the caller then parses with the yaml package,
 *     which reads all of YAML and reports its errors. A node's range[0] and a scalar's range[1]
 *     are the yaml package's; range[2] is range[1] (nothing reads it here).
 */
import { Document, isScalar, Pair, Scalar, YAMLMap, YAMLSeq, type DocumentOptions, type LineCounter, type ParseOptions, type SchemaOptions } from 'yaml';

type Options = ParseOptions & DocumentOptions & SchemaOptions;
type Node = Scalar | YAMLMap | YAMLSeq;
type TagLike = {
  default?: boolean | 'key';
  test?: RegExp;
  resolve: (text: string, onError: (message: string) => void, options: unknown) => unknown;
  format?: string;
};

/** Beyond the subset: the yaml package reads it. */
class NotBlockYaml extends Error {}

interface Line {
  /** Offset of the line's first character in the source. */
  start: number;
  /** Column of its first character that is not a space. */
  indent: number;
  /** The line without its comment and trailing spaces, from column 0. */
  text: string;
}

export function parseBlockYaml(source: string, options: Options, lineCounter: LineCounter): Document.Parsed | undefined {
  // A BOM, a CR or a tab anywhere: left to the yaml package, whatever they mean there.
  if (/[\t\r\uFEFF]/.test(source)) return undefined;
  const doc = new Document(undefined, options) as Document.Parsed;
  try {
    const lines = contentLines(source);
    if (lines.length === 0) return undefined;
    const reader = new BlockReader(source, lines, doc);
    const root = reader.block(-1, false);
    if (!root || reader.at < lines.length) return undefined;
    doc.contents = root as Document.Parsed['contents'];
  } catch (e) {
    if (e instanceof NotBlockYaml) return undefined;
    throw e;
  }
  lineCounter.addNewLine(0);
  for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
  return doc;
}

/** The lines that hold something, their comments cut off; a leading `---` is skipped. */
function contentLines(source: string): Line[] {
  const lines: Line[] = [];
  let start = 0;
  let first = true;
  while (start <= source.length) {
    let end = source.indexOf('\n', start);
    if (end < 0) end = source.length;
    const raw = source.slice(start, end);
    const text = (raw.includes('#') ? withoutComment(raw) : raw).trimEnd();
    const indent = text.length - text.trimStart().length;
    if (text.length > 0) {
      if (text.startsWith('---') || text.startsWith('...')) {
        // Only a first line that is exactly `---` (a document start) is ours.
        if (!(first && text === '---')) throw new NotBlockYaml();
      } else {
        lines.push({ start, indent, text });
      }
      first = false;
    }
    start = end + 1;
  }
  return lines;
}

/** A line up to its comment: a `#` at its start or after a space, outside quotes. */
function withoutComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '#' && (i === 0 || line[i - 1] === ' ')) {
      return line.slice(0, i);
    } else if ((c === '"' || c === "'") && (i === 0 || ' :-'.includes(line[i - 1]!))) {
      quote = c;
    }
  }
  return line;
}

class BlockReader {
  /** The next line to read. */
  at = 0;
  private readonly tags: TagLike[];

  constructor(
    private readonly source: string,
    private readonly lines: Line[],
    private readonly doc: Document.Parsed,
  ) {
    this.tags = (doc.schema.tags as unknown as TagLike[]).filter((t) => t.default === true && t.test);
  }

  /**
   * The collection that starts at the next line, if that line is indented more than `parent`
   * (a list may also sit at the column of the key it belongs to); undefined when there is none.
   */
  block(parent: number, underKey: boolean): YAMLMap | YAMLSeq | undefined {
    const line = this.lines[this.at];
    if (!line) return undefined;
    const isItem = isSeqItem(line.text, line.indent);
    if (line.indent <= parent && !(underKey && isItem && line.indent === parent)) return undefined;
    return isItem ? this.sequence(line.indent) : this.mapping(line.indent);
  }

  /** `- value` lines at `column` (`- - x` is not ours). */
  private sequence(column: number): YAMLSeq {
    const seq = new YAMLSeq(this.doc.schema);
    seq.range = [this.lines[this.at]!.start + column, 0, 0];
    for (;;) {
      const line = this.lines[this.at]!;
      const rest = line.text.slice(column + 1);
      const gap = rest.length - rest.trimStart().length;
      if (rest.length === 0) {
        // `-` alone: the item is the block below, or null.
        this.at++;
        seq.items.push(this.block(column, false) ?? this.empty(line.start + column + 1));
      } else if (gap === 0) {
        throw new NotBlockYaml();
      } else {
        const itemColumn = column + 1 + gap;
        if (isSeqItem(line.text, itemColumn)) throw new NotBlockYaml();
        seq.items.push(keyEnd(line.text, itemColumn) >= 0 ? this.mapping(itemColumn) : this.scalarLine(line, itemColumn, column));
      }
      const next = this.lines[this.at];
      // A line at the list's column that is no item belongs to the mapping around it.
      if (!next || next.indent < column || (next.indent === column && !isSeqItem(next.text, column))) break;
      if (next.indent > column) throw new NotBlockYaml();
    }
    seq.range[1] = seq.range[2] = this.endOfLast();
    return seq;
  }

  /** `key: value` lines at `column` (the first may follow a `- ` on its line). */
  private mapping(column: number): YAMLMap {
    const map = new YAMLMap(this.doc.schema);
    const seen = new Set<unknown>();
    map.range = [this.lines[this.at]!.start + column, 0, 0];
    for (;;) {
      const line = this.lines[this.at]!;
      const colon = keyEnd(line.text, column);
      if (colon < 0) throw new NotBlockYaml();
      const keyText = line.text.slice(column, colon);
      if (keyText.endsWith(' ')) throw new NotBlockYaml();
      const key = this.scalar(keyText, line.start + column, true);
      if (seen.has(key.value)) throw new NotBlockYaml();
      seen.add(key.value);
      const rest = line.text.slice(colon + 1);
      let value: Node;
      if (rest.trim().length === 0) {
        this.at++;
        value = this.block(column, true) ?? this.empty(line.start + colon + 1);
      } else {
        value = this.scalarLine(line, colon + 1 + (rest.length - rest.trimStart().length), column);
      }
      map.items.push(new Pair(key, value));
      const next = this.lines[this.at];
      if (!next || next.indent < column) break;
      if (next.indent > column || isSeqItem(next.text, column)) throw new NotBlockYaml();
    }
    map.range[1] = map.range[2] = this.endOfLast();
    return map;
  }

  /** The value that ends the current line (a scalar or `[a, b]`); the next line must not continue it. */
  private scalarLine(line: Line, from: number, column: number): Scalar | YAMLSeq {
    const text = line.text.slice(from);
    const value = text.startsWith('[') ? this.flowList(text, line.start + from) : this.scalar(text, line.start + from, false);
    this.at++;
    const next = this.lines[this.at];
    if (next && next.indent > column) throw new NotBlockYaml();
    return value;
  }

  /** `[a, b]` on one line: plain scalars only (no quotes, nesting, or empty items). */
  private flowList(text: string, offset: number): YAMLSeq {
    if (!text.endsWith(']') || /["'[\]{}]/.test(text.slice(1, -1))) throw new NotBlockYaml();
    const seq = new YAMLSeq(this.doc.schema);
    seq.flow = true;
    seq.range = [offset, offset + text.length, offset + text.length];
    if (text.slice(1, -1).trim() === '') return seq;
    let at = 1;
    for (const part of text.slice(1, -1).split(',')) {
      const lead = part.length - part.trimStart().length;
      const item = part.trim();
      if (item === '') throw new NotBlockYaml();
      seq.items.push(this.scalar(item, offset + at + lead, false));
      at += part.length + 1;
    }
    return seq;
  }

  /** A plain, 'single' or "double" quoted scalar (without escapes) written at `offset`. */
  private scalar(text: string, offset: number, isKey: boolean): Scalar {
    let scalar: Scalar;
    const q = text[0];
    if (q === '"' || q === "'") {
      if (text.length < 2 || text[text.length - 1] !== q) throw new NotBlockYaml();
      const inner = text.slice(1, -1);
      if (q === "'" ? inner.replaceAll("''", '').includes("'") : /["\\]/.test(inner)) throw new NotBlockYaml();
      const value = q === "'" ? inner.replaceAll("''", "'") : inner;
      scalar = new Scalar(value);
      scalar.type = q === "'" ? Scalar.QUOTE_SINGLE : Scalar.QUOTE_DOUBLE;
      scalar.source = value;
    } else {
      // What starts flow, an anchor, alias, tag, directive or block scalar, what a plain scalar
      // cannot hold, and `<<` (a merge key): the yaml package's.
      if (/^(?:[-?:](?: |$)|[[\]{},#&*!|>'"%@`])|: |:$| #/.test(text) || (isKey && text === '<<')) throw new NotBlockYaml();
      const tag = this.tags.find((t) => t.test!.test(text));
      const value = tag
        ? tag.resolve(
            text,
            () => {
              throw new NotBlockYaml();
            },
            this.doc.options,
          )
        : text;
      // Some tags resolve to a node of their own (null does), as in the yaml package.
      scalar = isScalar(value) ? value : new Scalar(value);
      scalar.type = Scalar.PLAIN;
      scalar.source = text;
      if (tag?.format) scalar.format = tag.format;
    }
    scalar.range = [offset, offset + text.length, offset + text.length];
    return scalar;
  }

  /** The null of `key:` or `-` with nothing after, where the yaml package puts it: past the spaces. */
  private empty(offset: number): Scalar {
    while (this.source[offset] === ' ') offset++;
    const scalar = new Scalar(null);
    scalar.type = Scalar.PLAIN;
    scalar.source = '';
    scalar.range = [offset, offset, offset];
    return scalar;
  }

  private endOfLast(): number {
    const last = this.lines[this.at - 1]!;
    return last.start + last.text.length;
  }
}

/** Whether the line holds a list item (`-` then a space or nothing) at `column`. */
function isSeqItem(text: string, column: number): boolean {
  return text[column] === '-' && (text.length === column + 1 || text[column + 1] === ' ');
}

/** Where the key that starts at `from` ends (its `:`, then a space or the line's end), or -1. */
function keyEnd(text: string, from: number): number {
  const q = text[from];
  if (q === '"' || q === "'") {
    const close = text.indexOf(q, from + 1);
    if (close < 0) return -1;
    return text[close + 1] === ':' && (close + 2 === text.length || text[close + 2] === ' ') ? close + 1 : -1;
  }
  for (let i = text.indexOf(':', from); i >= 0; i = text.indexOf(':', i + 1)) {
    if (i + 1 === text.length || text[i + 1] === ' ') return i;
  }
  return -1;
}
