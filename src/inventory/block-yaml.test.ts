/**
 * The one-pass reader of block YAML must give exactly what the yaml package gives — same nodes,
 * values, scalar styles, positions and line starts — or nothing (then the yaml package reads the
 * file). Checked on every YAML file of the repository and on thousands of generated documents,
 * among them broken ones; and it must really take the usual inventories.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseBlockYaml } from './block-yaml.js';
import { INVENTORY_YAML } from './load.js';
import { PLAYBOOK_YAML } from '../playbook/parse.js';

/** Everything of a node that the inventory reader can see, as plain data. */
function shape(node: unknown): unknown {
  if (node === null || node === undefined) return null;
  if (isMap(node)) return { map: node.range?.[0], items: node.items.map((p) => [shape(p.key), shape(p.value)]) };
  if (isSeq(node)) return { seq: node.range?.[0], items: node.items.map(shape) };
  if (isScalar(node)) {
    const value = typeof node.value === 'number' && Number.isNaN(node.value) ? 'NaN' : node.value;
    return { value, kind: typeof node.value, type: node.type, format: node.format, tag: node.tag, source: node.source, range: node.range?.slice(0, 2) };
  }
  return { other: String(node) };
}

/** Undefined when the fast reader declined; else throws unless it matches the yaml package. */
function compare(source: string, options: Parameters<typeof parseBlockYaml>[1] = INVENTORY_YAML): 'fast' | 'declined' {
  const lines = new LineCounter();
  const fast = parseBlockYaml(source, options, lines);
  if (!fast) {
    expect(lines.lineStarts).toEqual([]);
    return 'declined';
  }
  const slowLines = new LineCounter();
  const slow = parseDocument(source, { ...options, lineCounter: slowLines });
  const context = `for:\n${source}`;
  expect(
    slow.errors.map((e) => e.message),
    context,
  ).toEqual([]);
  expect(
    slow.warnings.map((e) => e.message),
    context,
  ).toEqual([]);
  expect(shape(fast.contents), context).toEqual(shape(slow.contents));
  expect(fast.toJS({ maxAliasCount: 1000 }), context).toEqual(slow.toJS({ maxAliasCount: 1000 }));
  expect(lines.lineStarts, context).toEqual(slowLines.lineStarts);
  expect(fast.errors).toEqual([]);
  return 'fast';
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name.startsWith('.') || e.name === 'dist') return [];
    const path = join(dir, e.name);
    return e.isDirectory() ? yamlFiles(path) : /\.ya?ml$/.test(e.name) ? [path] : [];
  });
}

/** A small seeded generator (mulberry32): the same documents on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values as inventories hold them, and values at the edge of what the fast reader takes. */
const SCALARS = [
  'web1',
  'host-2.example.com',
  '10.0.0.1',
  '22',
  '0755',
  '1.5',
  'yes',
  'No',
  'true',
  'null',
  '~',
  'a b c',
  'http://x/y',
  "'single'",
  '"double"',
  '-J admin@bastion',
  "it's",
  'a#b',
  'x:y',
  '-1',
  '',
];
const EDGE_SCALARS = [
  '0o17',
  '0x1F',
  '1.5e3',
  '1.5e+3',
  '+2',
  '.5',
  '1_000',
  'on',
  'OFF',
  'y',
  'n',
  'False',
  'Null',
  '.inf',
  '-.Inf',
  '.nan',
  '2024-01-02',
  '12:30:00',
  'a # b',
  'x: y',
  'a: ',
  'end:',
  'say "hi"',
  '%h:%p',
  '@at',
  '`tick`',
  'a[0]',
  '[a, b]',
  '{a: 1}',
  '&anchor x',
  '*alias',
  '!unsafe x',
  '!vault x',
  '| x',
  '> x',
  '- x',
  '-x',
  '? x',
  '?x',
  ':x',
  ', x',
  "'it''s'",
  "'a # b'",
  '[]',
  '[ ]',
  '[a,b]',
  '[ a , b ]',
  '[a, ]',
  '[, a]',
  '[a, [b]]',
  "['q']",
  '[a: b]',
  '[1, yes, ~, 0755]',
  '[a] b',
  '[a # b]',
  '[a,,b]',
  "'unclosed",
  '"a\\tb"',
  '"a # b"',
  '"x" y',
  '<<',
  'a\\b',
  '\u00fc',
];
const KEYS = ['name', 'hosts', 'vars', 'children', 'all', 'ansible_host', 'ansible_port', 'incus_socket', 'a b', "'quoted key'", '"dq key"'];
const EDGE_KEYS = ['22', 'yes', 'x:y', 'k ', '<<', '- k', '? k', 'null', '~', '1.5', 'dup', '&a k', '!t k'];

function generate(next: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const scalar = () => (next() < 0.1 ? pick(EDGE_SCALARS) : pick(SCALARS));
  const keyName = () => (next() < 0.05 ? pick(EDGE_KEYS) : pick(KEYS));
  const out: string[] = [];
  if (next() < 0.1) out.push('---');
  const node = (indent: number, depth: number, inSeq: boolean): void => {
    const pad = ' '.repeat(indent);
    const asSeq = next() < 0.35;
    const count = 1 + Math.floor(next() * 3);
    for (let i = 0; i < count; i++) {
      if (next() < 0.08) out.push(next() < 0.5 ? '' : `${pad}# a comment: with - things`);
      const extra = next() < 0.01 ? ' ' : next() < 0.01 ? '\t' : '';
      const comment = next() < 0.1 ? ' # trailing' : next() < 0.03 ? '# no space' : '';
      const child = depth < 3 && next() < 0.4;
      const step = pick([2, 2, 2, 4, 1, 3]);
      if (asSeq) {
        const first = `${pad}${extra}-`;
        if (child && next() < 0.5) {
          out.push(first + comment);
          node(indent + step, depth + 1, true);
        } else if (child) {
          // `- key: value` and the rest of that mapping below it
          out.push(`${first} ${keyName()}: ${scalar()}${comment}`);
          if (next() < 0.6) out.push(`${pad}  ${keyName()}: ${scalar()}`);
        } else {
          out.push(`${first}${next() < 0.9 ? ' ' : ''}${scalar()}${comment}`);
        }
      } else {
        const key = next() < 0.05 && i > 0 ? 'dup' : keyName();
        if (child) {
          out.push(`${pad}${extra}${key}:${comment}`);
          // a list under a key may sit at the key's own column
          node(next() < 0.2 ? indent : indent + step, depth + 1, false);
        } else {
          out.push(`${pad}${extra}${key}:${next() < 0.95 ? ' ' : ''}${scalar()}${comment}`);
        }
      }
      if (next() < 0.01) out.push(`${pad}  continued plain text`);
    }
    void inSeq;
  };
  node(next() < 0.05 ? 2 : 0, 0, false);
  if (next() < 0.03) out.push('...');
  return out.join('\n') + (next() < 0.9 ? '\n' : '');
}

describe('block YAML read in one pass', () => {
  it('gives what the yaml package gives for every YAML file of the repository, and takes the usual inventories', () => {
    const root = join(import.meta.dirname, '../..');
    const files = yamlFiles(root);
    expect(files.length).toBeGreaterThan(5);
    const taken = files.filter((f) => compare(readFileSync(f, 'utf8')) === 'fast');
    expect(taken.length).toBeGreaterThan(files.length / 2);
    // Playbooks are read with the yaml package's own YAML 1.1 tags: the shipped one is taken.
    for (const f of files) compare(readFileSync(f, 'utf8'), PLAYBOOK_YAML);
    expect(compare(readFileSync(join(root, 'playbooks/site.yaml'), 'utf8'), PLAYBOOK_YAML)).toBe('fast');
    // A lab-style inventory, as the bench writes: taken, and read as the yaml package reads it.
    const inventory = [
      'all:',
      '  vars:',
      '    incus_trusted_clients:',
      '      - name: ci',
      '        certificate_file: certs/ci.crt',
      "        description: 'CI runner'",
      '        projects: [default]',
      '  children:',
      '    incus:',
      '      hosts:',
      '        host1:',
      '          ansible_host: 127.77.0.1',
      '          ansible_port: 22',
      '          ansible_ssh_common_args: -J admin@bastion',
      '        host2:',
      '',
    ].join('\n');
    expect(compare(inventory)).toBe('fast');
    expect(compare(inventory.replace('projects: [default]', 'projects:\n          - default'))).toBe('fast');
    expect(compare(inventory.replace('projects: [default]', 'projects: [default, "b"]'))).toBe('declined'); // quotes in a flow list
  });

  it('never differs from the yaml package on generated documents, broken ones included', () => {
    const next = random(20261129);
    let fast = 0;
    const total = 5000;
    for (let i = 0; i < total; i++) if (compare(generate(next)) === 'fast') fast++;
    // Enough of them taken for the comparison to mean something, enough declined to cover the edge.
    expect(fast).toBeGreaterThan(total * 0.2);
    expect(fast).toBeLessThan(total * 0.95);
  });

  it('reads each value and key at the edge as the yaml package does, or declines it', () => {
    for (const value of [...SCALARS, ...EDGE_SCALARS]) {
      for (const source of [`a: ${value}\n`, `- ${value}\n`, `a:\n  - ${value} # c\n  - b\n`, `a:\n- k: ${value}\n  j: x\n`]) {
        compare(source);
        compare(source, PLAYBOOK_YAML);
      }
    }
    for (const key of [...KEYS, ...EDGE_KEYS]) for (const source of [`${key}: v\n`, `- ${key}:\n  - x\n`]) compare(source);
  });

  it('declines what it does not read: the yaml package then reports or reads it', () => {
    for (const source of [
      'a: 1\na: 2\n', // duplicate key: an error the yaml package words
      'a:\n  b: 1\n c: 2\n', // bad indentation
      'a: b\n  c\n', // a plain scalar over two lines
      'a: |\n  text\n',
      'a: &x 1\nb: *x\n',
      'a: "tab\\tescape"\n',
      '<<: {a: 1}\n',
      '--- a\n',
      'a: 1\n---\nb: 2\n',
      'a:\tb\n',
      '',
      '# only a comment\n',
    ]) {
      expect(compare(source), source).toBe('declined');
    }
  });
});
