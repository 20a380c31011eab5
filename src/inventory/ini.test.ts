import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../errors.js';
import { parseIniInventory, parsePythonLiteral, splitShell, type IniOperation } from './ini.js';

const parse = (text: string, known: string[] = ['all', 'ungrouped']) => parseIniInventory('inv.ini', text, known);
const hostOps = (ops: IniOperation[]) => ops.filter((o) => o.kind === 'hosts');

describe('parsePythonLiteral (Ansible _parse_value)', () => {
  it('gives what Python 3 ast.literal_eval gives, or the text itself, for every value kind', () => {
    const samples = [
      '42',
      '-7',
      '+3',
      '0',
      '00',
      '0755',
      '0x1F',
      '0o17',
      '0b101',
      '1_000',
      '0.25',
      '.5',
      '1.5e-1',
      '2.5E+3',
      'True',
      'False',
      'None',
      'true',
      'yes',
      'no',
      'null',
      '30s',
      '10.0.0.5',
      'a b',
      '"quoted"',
      "'single'",
      '"a" \'b\'',
      '"esc\\tape\\x41\\u00e9"',
      "r'\\d+'",
      "u'x'",
      "b'bytes'",
      '[1, 2]',
      '[]',
      '[1, [2, "x"]]',
      '(1, 2)',
      '(1)',
      '()',
      '1, 2',
      "{'a': 1, 'b': [True, None]}",
      '{1: 2}',
      '{}',
      'x # comment',
      '1 # comment',
      '[1,',
      '"unterminated',
      '{{ jinja }}',
      'a=b',
      '',
      "'it''s'",
      'Grüße',
      '-',
      '1e3x',
      '_1',
      '-(9)',
      '- 3',
      '--1',
      '-True',
      '"""tri\\nple"""',
      "'''open",
    ];
    const python = `import ast, json, sys
out = []
for s in json.load(sys.stdin):
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError):
        v = s
    if isinstance(v, bytes): v = v.decode()
    out.append(v)
print(json.dumps(out))`;
    const expected = JSON.parse(execFileSync('python3', ['-c', python], { input: JSON.stringify(samples), encoding: 'utf8' })) as unknown[];
    const ours = samples.map((s) => {
      const r = parsePythonLiteral(s);
      return 'value' in r ? r.value : r;
    });
    expect(ours).toEqual(expected);
  });

  it('refuses Python values that have no JSON meaning instead of guessing', () => {
    expect(parsePythonLiteral('{1, 2}')).toEqual({ unsupported: 'a Python set is not supported as a variable value (the value is {1, 2})' });
    expect(parsePythonLiteral('3j')).toEqual({ unsupported: 'a complex number is not supported as a variable value (the value is 3j)' });
    expect(parsePythonLiteral('1+2j')).toMatchObject({ unsupported: expect.stringContaining('complex') });
  });
});

describe('parseIniInventory', () => {
  it('reads sections, ungrouped hosts, ranges, ports and inline values with their positions', () => {
    const { operations, problems } = parse(
      [
        '# comment',
        'lonely  owner=nobody',
        '[web]',
        '  web[01:02].example:2222 role="a b" n=3 # trailing',
        '[web:vars]',
        'ratio = 0.5 ; not a comment here',
        '[infra:children]',
        'web',
      ].join('\n'),
    );
    expect(problems).toEqual([]);
    const [lonely, web] = hostOps(operations) as Extract<IniOperation, { kind: 'hosts' }>[];
    expect(lonely).toMatchObject({ group: 'ungrouped', names: ['lonely'], location: { file: 'inv.ini', line: 2, column: 1 } });
    expect(lonely!.vars.owner).toMatchObject({ value: 'nobody', location: { line: 2, column: 15 }, valuePath: 'ungrouped.hosts.lonely.owner' });
    expect(web).toMatchObject({ group: 'web', names: ['web01.example', 'web02.example'], port: 2222, location: { line: 4, column: 3 } });
    expect(web!.vars.role).toMatchObject({ value: 'a b', location: { line: 4, column: 32 } });
    expect(web!.vars.n).toMatchObject({ value: 3, location: { line: 4, column: 40 } });
    const ratio = operations.find((o) => o.kind === 'groupVar');
    expect(ratio).toMatchObject({
      group: 'web',
      name: 'ratio',
      definition: { value: '0.5 ; not a comment here', location: { line: 6, column: 9 }, valuePath: 'web.vars.ratio' },
    });
    expect(operations.filter((o) => o.kind === 'group' || o.kind === 'child').map((o) => (o.kind === 'group' ? o.name : `${o.parent}>${o.child}`))).toEqual([
      'web',
      'infra',
      'infra>web',
    ]);
  });

  it('links a child group named before its section when the section comes, as Ansible does', () => {
    const { operations, problems } = parse('[p:children]\nc\n[c]\nh\n');
    expect(problems).toEqual([]);
    expect(operations.map((o) => o.kind)).toEqual(['group', 'group', 'child', 'hosts']);
    expect(operations[2]).toMatchObject({ parent: 'p', child: 'c', location: { line: 2, column: 1 } });
  });

  it('reports every syntax error with file:line:column', () => {
    const text = [
      '[web]',
      'h1 "unclosed',
      'h2 novalue',
      'h3:',
      '[bad section]',
      '[x:vars]',
      'a=1',
      '[web:vars]',
      'novalue',
      '[web:extra]',
      '[p:children]',
      'ghost',
      'two words',
    ].join('\n');
    expect(parse(text).problems.map(formatProblem)).toEqual([
      'inv.ini:2:4: error: cannot read the host line: no closing quotation for the " opened here\n    h1 "unclosed\n       ^',
      'inv.ini:3:4: error: web.hosts.h2: expected key=value after the host name, not "novalue"\n    h2 novalue\n       ^',
      'inv.ini:4:1: error: web.hosts.h3:: invalid host "h3:": a trailing ":" must be followed by a port\n    h3:\n    ^',
      'inv.ini:5:1: error: invalid section [bad section]: a section is [GROUP], [GROUP:vars] or [GROUP:children], without spaces\n    [bad section]\n    ^',
      'inv.ini:9:1: error: web.vars: expected key=value in [web:vars], not "novalue"\n    novalue\n    ^',
      'inv.ini:10:6: error: section [web:extra] has an unknown type "extra" (use :vars or :children)\n    [web:extra]\n         ^',
      'inv.ini:13:1: error: p.children: expected a group name in [p:children], not "two words"\n    two words\n    ^',
      'inv.ini:6:2: error: section [x:vars] is for a group that is never declared: add a [x] or [x:children] section\n    [x:vars]\n     ^',
      'inv.ini:12:1: error: group "ghost" in [p:children] is never declared: add a [ghost] or [ghost:children] section\n    ghost\n    ^',
    ]);
  });

  it('lets [all:vars] and groups of earlier files be named without a section', () => {
    expect(parse('[all:vars]\na=1\n[old:children]\nweb\n[web]\n', ['all', 'ungrouped', 'old']).problems).toEqual([]);
  });
});

describe('parsePythonLiteral on generated values', () => {
  it('agrees with Python 3 ast.literal_eval (or refuses the value) for 400 generated values', () => {
    const pieces = [
      '1',
      '0',
      '9',
      '_',
      '.',
      'e',
      'E',
      '-',
      '+',
      'x',
      'o',
      'b',
      'j',
      'True',
      'None',
      'False',
      'a',
      "'",
      '"',
      '\\',
      '[',
      ']',
      '(',
      ')',
      '{',
      '}',
      ',',
      ':',
      ' ',
      '#',
      'u',
      'r',
      'F',
    ];
    const samples = fc.sample(
      fc.array(fc.constantFrom(...pieces), { maxLength: 8 }).map((p) => p.join('')),
      { numRuns: 400, seed: 4242 },
    );
    const python = `import ast, json, sys
out = []
for s in json.load(sys.stdin):
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        v = s
    if isinstance(v, bytes): v = v.decode()
    if isinstance(v, (set, complex, frozenset)) or (isinstance(v, dict) and any(isinstance(k, tuple) for k in v)):
        v = {'unsupported': True}
    out.append(v)
print(json.dumps(out))`;
    const expected = JSON.parse(execFileSync('python3', ['-c', python], { input: JSON.stringify(samples), encoding: 'utf8' })) as unknown[];
    const mismatches = samples.flatMap((s, i) => {
      const r = parsePythonLiteral(s);
      const ours = 'value' in r ? r.value : { unsupported: true };
      return JSON.stringify(ours) === JSON.stringify(expected[i]) ? [] : [{ s, ours, python: expected[i] }];
    });
    expect(mismatches).toEqual([]);
  });

  it('never throws on arbitrary text and puts every problem inside the file', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const lines = text.split(/\r\n|\n|\r/).length;
        for (const p of parse(text).problems) expect(p.location!.line).toBeLessThanOrEqual(lines);
      }),
      { numRuns: 300 },
    );
  });
});

describe('splitShell on generated host lines', () => {
  it('splits as Python shlex.split(line, comments=True) does, for 400 generated lines', () => {
    const pieces = ['a', 'b=', '=', ' ', '\t', "'", '"', '\\', '#', 'x y', ':22', '[1:2]'];
    const samples = fc.sample(
      fc.array(fc.constantFrom(...pieces), { maxLength: 10 }).map((p) => p.join('')),
      { numRuns: 400, seed: 4242 },
    );
    const python = `import json, shlex, sys
out = []
for s in json.load(sys.stdin):
    try:
        out.append(shlex.split(s, comments=True))
    except ValueError:
        out.append('error')
print(json.dumps(out))`;
    const expected = JSON.parse(execFileSync('python3', ['-c', python], { input: JSON.stringify(samples), encoding: 'utf8' })) as unknown[];
    const mismatches = samples.flatMap((s, i) => {
      const tokens = splitShell(s);
      const ours = 'error' in tokens ? 'error' : tokens.map((t) => t.text);
      return JSON.stringify(ours) === JSON.stringify(expected[i]) ? [] : [{ s, ours, python: expected[i] }];
    });
    expect(mismatches).toEqual([]);
  });
});
