import { describe, expect, it } from 'vitest';
import { insertListItems } from './insert-entries.js';

const KEY = 'incus_trusted_clients';
const entry = { name: 'hand-added', description: 'by hand', certificate_file: 'certs/hand-added.crt', restricted: true, projects: ['default'] };
const ENTRY_AT_6 = `      - name: hand-added
        description: by hand
        certificate_file: certs/hand-added.crt
        restricted: true
        projects:
          - default
`;

describe('insertListItems', () => {
  it('appends after the last item of the block list, in its indentation, leaving every other byte as it was', () => {
    const before = `# Incus servers
all:
  hosts:
    web1: {}   # the first
  vars:
    # who may call the API
    incus_trusted_clients:
      - name: alice   # Alice's laptop
        certificate_file: 'certs/alice.crt'

    other: "x"
`;
    const result = insertListItems(before, KEY, [entry], 'inventory');
    expect(result).toEqual({
      line: 10,
      text: before.replace("        certificate_file: 'certs/alice.crt'\n", `        certificate_file: 'certs/alice.crt'\n${ENTRY_AT_6}`),
    });
  });

  it('keeps a list whose dashes sit at the key column', () => {
    const before = `all:\n  vars:\n    ${KEY}:\n    - name: a\n      certificate_file: a.crt\n`;
    const result = insertListItems(before, KEY, [{ name: 'b', certificate_file: 'b.crt' }], 'inventory');
    expect(result).toEqual({ line: 6, text: `${before}    - name: b\n      certificate_file: b.crt\n` });
  });

  it('fills an empty value, keeping a comment on its line', () => {
    const before = `all:\n  vars:\n    ${KEY}: []  # none yet\n    x: 1\n`;
    expect(insertListItems(before, KEY, [{ name: 'b', certificate_file: 'b.crt' }], 'inventory')).toEqual({
      line: 4,
      text: `all:\n  vars:\n    ${KEY}:  # none yet\n      - name: b\n        certificate_file: b.crt\n    x: 1\n`,
    });
  });

  it('adds the variable under all.vars, creating vars when all has none; at the top of a vars file', () => {
    const withVars = `all:\n  vars:\n    incus_trust_prune: false\n  hosts:\n    a: {}\n`;
    expect(insertListItems(withVars, KEY, [{ name: 'b' }], 'inventory')).toEqual({
      line: 4,
      text: `all:\n  vars:\n    incus_trust_prune: false\n    ${KEY}:\n      - name: b\n  hosts:\n    a: {}\n`,
    });
    const noVars = `all:\n  hosts:\n    a:\n      ansible_host: 10.0.0.1\n`;
    expect(insertListItems(noVars, KEY, [{ name: 'b' }], 'inventory')).toEqual({
      line: 5,
      text: `${noVars}  vars:\n    ${KEY}:\n      - name: b\n`,
    });
    expect(insertListItems('# group vars\nincus_trust_prune: true\n', KEY, [{ name: 'b' }], 'vars')).toEqual({
      line: 3,
      text: `# group vars\nincus_trust_prune: true\n${KEY}:\n  - name: b\n`,
    });
  });

  it('quotes what YAML 1.1 (Ansible) would read as something else', () => {
    const result = insertListItems(`all:\n  vars:\n    ${KEY}: []\n`, KEY, [{ name: 'yes', description: '1.0' }], 'inventory');
    expect(result).toEqual({ line: 4, text: `all:\n  vars:\n    ${KEY}:\n      - name: "yes"\n        description: "1.0"\n` });
  });

  it('refuses what it cannot do without a guess', () => {
    expect(insertListItems(`a:\n  vars:\n    ${KEY}: []\nb:\n  vars:\n    ${KEY}: []\n`, KEY, [{ name: 'x' }], 'inventory')).toEqual({
      error: `${KEY} is set in 2 places (lines 3, 6); which list to add to cannot be told`,
    });
    expect(insertListItems(`all:\n  vars:\n    ${KEY}: [{name: a}]\n`, KEY, [{ name: 'x' }], 'inventory')).toEqual({
      error: `${KEY} (line 3) is a flow list ([a, b]); write it as a block list (one "- " item per line)`,
    });
    expect(insertListItems(`web1:\n  hosts: {}\n`, KEY, [{ name: 'x' }], 'inventory')).toEqual({
      error: `it has no "all:" group written as a block mapping to put ${KEY} under (add "${KEY}: []" where the entries belong)`,
    });
    expect(insertListItems(`all: [\n`, KEY, [{ name: 'x' }], 'inventory')).toMatchObject({ error: expect.stringMatching(/^it does not parse as YAML/) });
  });
});
