import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { unifiedDiff } from './unified-diff.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'reconcile-udiff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What GNU `diff -u` prints for the same two texts (the format users know). */
function gnuDiff(before: string, after: string): string {
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  writeFileSync(a, before);
  writeFileSync(b, after);
  try {
    execFileSync('diff', ['-u', '--label', 'old', '--label', 'new', a, b]);
    return '';
  } catch (e) {
    return (e as { stdout: Buffer }).stdout.toString();
  }
}

describe('unifiedDiff', () => {
  test('equal texts give no diff', () => {
    expect(unifiedDiff('a\n', 'a\n', { fromLabel: 'old', toLabel: 'new' })).toBe('');
  });

  test('a new file is diffed against /dev/null', () => {
    expect(unifiedDiff(undefined, 'x\ny\n', { fromLabel: 'old', toLabel: 'new' })).toBe('--- /dev/null\n+++ new\n@@ -0,0 +1,2 @@\n+x\n+y\n');
  });

  test('two changes far apart make two hunks with 3 lines of context', () => {
    const before = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n';
    const after = 'a\nb\nc\nX\ne\nf\ng\nh\ni\nj\nk2\n';
    expect(unifiedDiff(before, after, { fromLabel: 'old', toLabel: 'new' })).toBe(
      ['--- old', '+++ new', '@@ -1,7 +1,7 @@', ' a', ' b', ' c', '-d', '+X', ' e', ' f', ' g', '@@ -8,4 +8,4 @@', ' h', ' i', ' j', '-k', '+k2', ''].join(
        '\n',
      ),
    );
  });

  const cases: [string, string, string][] = [
    ['insert at the top', 'a\nb\n', 'x\na\nb\n'],
    ['missing final newline added', 'a\nb\nc', 'a\nb\nc\n'],
    ['remove and append', '1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n', '1\n2\n3\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n'],
    ['everything removed', 'a\n', ''],
    [
      'policy line changed',
      '# h\n\nr.P +9100 sys-net work allow autostart=no\n\nr.D * sys-net @adminvm allow\n',
      '# h\n\nr.P +9100 sys-net vault allow autostart=no\nr.P +9100 sys-net work allow autostart=no\n\nr.D * sys-net @adminvm allow\n',
    ],
  ];
  test.each(cases)('same output as GNU diff -u: %s', (_name, before, after) => {
    expect(unifiedDiff(before, after, { fromLabel: 'old', toLabel: 'new' })).toBe(gnuDiff(before, after));
  });
});
