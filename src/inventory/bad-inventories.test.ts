/**
 * The corpus of bad inventories (test/fixtures/bad-inventories/KIND/): each must give exactly
 * the listed problems, with file:line:column, value path, message, source line and caret.
 * Certificate files are generated here (never committed): a valid one, an expired one, one not
 * valid yet, and a private key where a certificate belongs.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, InventoryError, type Problem } from '../errors.js';
import { generateSelfSigned } from '../pki/generate.js';
import { loadInventory, readInventoryFile } from './load.js';
import { validateInventory } from './validate.js';
import { loadPlaybook } from '../playbook/load.js';
import { EXPECTED } from './bad-inventories.expected.js';
import { MODULES } from '../modules/registry.js';

const FIXTURES = new URL('../../test/fixtures/bad-inventories/', import.meta.url).pathname;
let root: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'reconcile-bad-'));
  cpSync(FIXTURES, root, { recursive: true });
  // Fixed dates, so the messages are stable: expired in 2020, valid from 2100.
  const good = await generateSelfSigned({ commonName: 'good', validityDays: 36500, now: new Date('2026-01-01T00:00:00Z'), type: 'client' });
  const expired = await generateSelfSigned({ commonName: 'old', validityDays: 30, now: new Date('2020-01-01T00:00:00Z'), type: 'client' });
  const future = await generateSelfSigned({ commonName: 'future', validityDays: 30, now: new Date('2100-01-01T00:00:00Z'), type: 'client' });
  for (const kind of readdirSync(root)) {
    const certs = join(root, kind, 'certs');
    mkdirSync(certs, { recursive: true });
    writeFileSync(join(certs, 'good.crt'), good.certificatePem);
    writeFileSync(join(certs, 'expired.crt'), expired.certificatePem);
    writeFileSync(join(certs, 'future.crt'), future.certificatePem);
    writeFileSync(join(certs, 'admin.key'), good.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(certs, 'README.md'), '# Certificates\nPublic certificates of our clients.\n');
  }
  // A FIFO cannot be committed: made here. Reading one would wait for a writer forever.
  execFileSync('mkfifo', [join(root, 'not-a-file', 'certs', 'pipe')]);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Loads and validates like `reconcile validate`, and renders what the user sees. */
async function problemsOf(kind: string): Promise<string[]> {
  const dir = join(root, kind);
  let problems: Problem[];
  try {
    const inventory = await loadInventory(join(dir, 'hosts.yaml'));
    problems = validateInventory(inventory, new Date(), (p) => readInventoryFile(inventory, p), MODULES);
    if (kind === 'bad-host-pattern') problems.push(...(await loadPlaybook(join(dir, 'site.yaml'))).problems);
  } catch (e) {
    if (!(e instanceof InventoryError)) throw e;
    problems = e.problems;
  }
  return problems.map((p) =>
    formatProblem(p)
      .split(root + '/')
      .join(''),
  );
}

describe('bad inventories', () => {
  it('the corpus has at least 20 kinds, each with its expected problems', () => {
    const kinds = readdirSync(FIXTURES).sort();
    expect(kinds.length).toBeGreaterThanOrEqual(20);
    expect(Object.keys(EXPECTED).sort()).toEqual(kinds);
  });

  for (const [kind, expected] of Object.entries(EXPECTED)) {
    it(kind, async () => {
      const actual = await problemsOf(kind);
      expect(actual).toEqual(expected);
    });
  }
});
