/**
 * A unified diff (as `diff -u` prints it) between two texts, for `--diff` on files that
 * reconcile manages (Qubes policy, scrape configuration). Pure; line-based LCS, which is
 * plenty for files of a few hundred lines.
 */

export interface UnifiedDiffOptions {
  /** Label of the old text (`--- LABEL`); `/dev/null` when the file does not exist yet. */
  fromLabel: string;
  /** Label of the new text (`+++ LABEL`). */
  toLabel: string;
  /** Unchanged lines shown around each change (default 3, as diff -u). */
  context?: number;
  /** Applied to every line shown (not to what is compared): hides secret values, say. */
  show?: (line: string) => string;
}

/** One line of the edit script. */
type Edit = { op: ' ' | '-' | '+'; line: string; oldIndex: number; newIndex: number };

/** Above this many cells the LCS table is not worth it: the diff says "replace everything". */
const MAX_TABLE_CELLS = 4_000_000;

/**
 * The unified diff turning `before` into `after`; `before` undefined means the file does not
 * exist. Returns '' when both are equal. Ends with a newline when not empty.
 */
export function unifiedDiff(before: string | undefined, after: string, options: UnifiedDiffOptions): string {
  if (before === after) return '';
  const context = options.context ?? 3;
  const a = splitLines(before ?? '');
  const b = splitLines(after);
  // A last line without its newline differs from the same line with one (as for diff -u).
  const edits = editScript(keysOf(a), keysOf(b)).map((e) => ({ ...e, line: e.line.replace(NO_EOL, '') }));
  const out = [`--- ${before === undefined ? '/dev/null' : options.fromLabel}`, `+++ ${options.toLabel}`];
  for (const hunk of hunksOf(edits, context)) {
    const oldLines = hunk.filter((e) => e.op !== '+');
    const newLines = hunk.filter((e) => e.op !== '-');
    out.push(
      `@@ -${range(
        oldLines.map((e) => e.oldIndex),
        startBefore(hunk, 'old'),
      )} +${range(
        newLines.map((e) => e.newIndex),
        startBefore(hunk, 'new'),
      )} @@`,
    );
    for (const e of hunk) {
      out.push(`${e.op}${options.show ? options.show(e.line) : e.line}`);
      // diff -u marks a last line without its newline right after that line.
      if (e.op !== '+' && e.oldIndex === a.lines.length - 1 && !a.finalNewline) out.push('\\ No newline at end of file');
      else if (e.op === '+' && e.newIndex === b.lines.length - 1 && !b.finalNewline) out.push('\\ No newline at end of file');
    }
  }
  return out.join('\n') + '\n';
}

/** Cannot occur inside a line (lines never hold a newline). */
const NO_EOL = '\n(no newline)';

function keysOf(text: { lines: string[]; finalNewline: boolean }): string[] {
  return text.finalNewline ? text.lines : text.lines.map((l, i) => (i === text.lines.length - 1 ? l + NO_EOL : l));
}

function splitLines(text: string): { lines: string[]; finalNewline: boolean } {
  if (text === '') return { lines: [], finalNewline: true };
  const finalNewline = text.endsWith('\n');
  const lines = (finalNewline ? text.slice(0, -1) : text).split('\n');
  return { lines, finalNewline };
}

/** Longest common subsequence by dynamic programming, then walked forwards into edits. */
function editScript(a: string[], b: string[]): Edit[] {
  const n = a.length;
  const m = b.length;
  const edits: Edit[] = [];
  if ((n + 1) * (m + 1) > MAX_TABLE_CELLS) {
    a.forEach((line, i) => edits.push({ op: '-', line, oldIndex: i, newIndex: -1 }));
    b.forEach((line, j) => edits.push({ op: '+', line, oldIndex: -1, newIndex: j }));
    return edits;
  }
  // lcs[i][j] = length of the LCS of a[i..] and b[j..], in one flat array.
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = a[i] === b[j] ? lcs[(i + 1) * width + j + 1]! + 1 : Math.max(lcs[(i + 1) * width + j]!, lcs[i * width + j + 1]!);
    }
  }
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      edits.push({ op: ' ', line: a[i]!, oldIndex: i, newIndex: j });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i * width + j + 1]! >= lcs[(i + 1) * width + j]!)) {
      edits.push({ op: '+', line: b[j]!, oldIndex: i - 1, newIndex: j });
      j++;
    } else {
      edits.push({ op: '-', line: a[i]!, oldIndex: i, newIndex: j - 1 });
      i++;
    }
  }
  // Removals before additions inside each run of changes, as diff prints them.
  return reorderRuns(edits);
}

function reorderRuns(edits: Edit[]): Edit[] {
  const out: Edit[] = [];
  let run: Edit[] = [];
  const flush = () => {
    out.push(...run.filter((e) => e.op === '-'), ...run.filter((e) => e.op === '+'));
    run = [];
  };
  for (const e of edits) {
    if (e.op === ' ') {
      flush();
      out.push(e);
    } else run.push(e);
  }
  flush();
  return out;
}

/** Groups changes with `context` lines around them; changes closer than 2×context share a hunk. */
function hunksOf(edits: Edit[], context: number): Edit[][] {
  const changed = edits.map((e, k) => (e.op === ' ' ? -1 : k)).filter((k) => k >= 0);
  const hunks: Edit[][] = [];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = changed[k]!;
    while (k + 1 < changed.length && changed[k + 1]! - end <= 2 * context) end = changed[++k]!;
    k++;
    hunks.push(edits.slice(start, Math.min(edits.length, end + context + 1)));
  }
  return hunks;
}

/** For an empty side of a hunk, diff -u names the line before it (0 at the top). */
function startBefore(hunk: Edit[], side: 'old' | 'new'): number {
  const first = hunk[0]!;
  return side === 'old' ? (first.op === '+' ? first.oldIndex + 1 : first.oldIndex) : first.op === '-' ? first.newIndex + 1 : first.newIndex;
}

function range(indexes: number[], emptyAt: number): string {
  if (indexes.length === 0) return `${emptyAt},0`;
  const start = indexes[0]! + 1;
  return indexes.length === 1 ? `${start}` : `${start},${indexes.length}`;
}
