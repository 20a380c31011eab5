/**
 * Hostile and malformed input, property-based (fast-check): the inventory loader and its
 * validation, the host-pattern parser, the Incus answer readers (envelope and trust store
 * shapes), known_hosts and ~/.ssh/config parsing get arbitrary input and must never crash:
 * they return a value or throw the one typed error their callers turn into a clear message
 * (InventoryError, UsageError, TransportError, ShapeError) — never a TypeError, a RangeError or
 * a hang. Shell quoting is checked against a real `sh`: any string comes back unchanged.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblem, InventoryError, TransportError, UsageError } from '../../src/errors.js';
import { expandHostPattern, loadInventory, readInventoryFile } from '../../src/inventory/load.js';
import { hostPatternError, selectHosts } from '../../src/inventory/patterns.js';
import { validateInventory } from '../../src/inventory/validate.js';
import type { Inventory } from '../../src/inventory/model.js';
import { observeTrust, readCertificates, readMembers, readProjects, readServerInfo, ShapeError } from '../../src/modules/incus-trust/observe.js';
import { readEnvelope } from '../../src/transport/incus-api.js';
import { parseKnownHosts } from '../../src/transport/known-hosts.js';
import { parseSshConfig } from '../../src/transport/ssh-config.js';
import { shellCommand } from '../../src/transport/shell-quote.js';
import type { HostSession } from '../../src/transport/types.js';
import { MODULES } from '../../src/modules/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'reconcile-property-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RUNS = { numRuns: 150 };
const NOW = new Date('2026-06-01T00:00:00Z');

/** Shell and YAML metacharacters, newlines, unicode, Jinja and vault markers: the usual suspects. */
const nasty = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    '$(touch /tmp/pwned)',
    '`id`',
    "'; rm -rf / #",
    '"\n- x',
    '{{ lookup("pipe", "id") }}',
    '!vault |',
    '&anchor',
    '*alias',
    '\u0000',
    '\u202e',
    'ünïcødé 🔑',
    '[0:99999999]',
    'web[a:z]',
    'host[1:3]:2222',
    '~(a+)+$',
    '../../etc/passwd',
    '\\',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

/** Values shaped like an inventory, with hostile leaves. */
const inventoryLike: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    nasty,
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(nasty, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const knownKey = fc.constantFrom(
  'hosts',
  'vars',
  'children',
  'ansible_host',
  'ansible_port',
  'incus_trusted_clients',
  'incus_socket',
  'name',
  'certificate_file',
  'projects',
  'restricted',
  'state',
);
const inventoryDoc = fc.record({
  all: fc.record(
    {
      hosts: fc.dictionary(nasty, fc.oneof(fc.constant(null), fc.dictionary(knownKey, inventoryLike, { maxKeys: 4 })), { maxKeys: 3 }),
      vars: fc.dictionary(knownKey, inventoryLike, { maxKeys: 4 }),
      children: fc.dictionary(nasty, inventoryLike, { maxKeys: 2 }),
    },
    { requiredKeys: [] },
  ),
});

let fileNo = 0;
/** Loads TEXT as an inventory file; returns the inventory, or the InventoryError (anything else fails the property). */
async function loadText(text: string): Promise<Inventory | InventoryError> {
  const file = join(dir, `inv-${fileNo++}.yaml`);
  writeFileSync(file, text);
  try {
    return await loadInventory(file);
  } catch (e) {
    if (e instanceof InventoryError) return e;
    throw e;
  }
}

function expectClearInventoryError(e: InventoryError): void {
  expect(e.problems.length).toBeGreaterThan(0);
  for (const p of e.problems) {
    expect(p.message).toMatch(/\S/);
    // Rendering never throws and carries no stack trace.
    expect(formatProblem(p)).not.toMatch(/\n\s+at /);
  }
}

describe('inventory loader and validation on hostile input', () => {
  it('arbitrary text: an inventory or an InventoryError with located messages', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 })), async (text) => {
        const r = await loadText(text);
        if (r instanceof InventoryError) expectClearInventoryError(r);
      }),
      RUNS,
    );
  });

  it('inventory-shaped YAML with hostile names and values: loads and validates, or says what is wrong', async () => {
    await fc.assert(
      fc.asyncProperty(inventoryDoc, async (doc) => {
        const r = await loadText(stringify(doc));
        if (r instanceof InventoryError) return expectClearInventoryError(r);
        const problems = validateInventory(r, NOW, (rel) => readInventoryFile(r, rel), MODULES);
        for (const p of problems) expect(formatProblem(p)).toMatch(/\S/);
      }),
      RUNS,
    );
  });

  it('host ranges: expanded, or refused with a message; a huge range never exhausts memory', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          nasty,
          fc.tuple(fc.nat(), fc.nat()).map(([x, y]) => `h[${x}:${y}]`),
          fc.constantFrom('h[0:99999999]', 'h[0:9999999999999]', 'h[a:zzzz]', 'h[00:99][00:99][00:99]'),
        ),
        (pattern) => {
          try {
            const r = expandHostPattern(pattern);
            expect(r.names.length).toBeLessThanOrEqual(100_000);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect(e).not.toBeInstanceOf(TypeError);
            expect(e).not.toBeInstanceOf(RangeError);
            expect((e as Error).message).toMatch(/\S/);
          }
        },
      ),
      RUNS,
    );
  });
});

describe('host patterns (--limit, plays) on hostile input', () => {
  let inventory: Inventory;
  it('arbitrary patterns select hosts or throw a UsageError', async () => {
    const loaded = await loadText(
      stringify({ all: { hosts: { web1: null, 'web-2': null }, children: { db: { hosts: { db1: null } }, edge: { children: { db: null } } } } }),
    );
    if (loaded instanceof InventoryError) throw new Error(loaded.problems.map(formatProblem).join('\n'));
    inventory = loaded;
    fc.assert(
      fc.property(
        fc.oneof(
          nasty,
          fc
            .array(fc.oneof(nasty, fc.constantFrom('web*', 'db', '!db', '&edge', 'all', '~w.*', 'web[0]', 'web[-1:]', 'db[5]')), { maxLength: 5 })
            .map((t) => t.join(':')),
        ),
        (pattern) => {
          let selected;
          try {
            selected = selectHosts(inventory, pattern);
          } catch (e) {
            expect(e, String(e)).toBeInstanceOf(UsageError);
            expect((e as Error).message).toMatch(/\S/);
            expect(hostPatternError(pattern)).toBeDefined();
            return;
          }
          for (const h of selected.hosts) expect(inventory.hosts.has(h)).toBe(true);
        },
      ),
      RUNS,
    );
  });
});

describe('Incus answers that are not what Incus sends', () => {
  const body = fc.oneof(
    fc.string({ maxLength: 100 }),
    fc.json().map((j) => j),
    fc.anything().map((v) => JSON.stringify(v) ?? 'undefined'),
    fc.constantFrom(
      '{"type":"sync","metadata":[{"name":',
      '{"type":"sync"}',
      '{"type":"error","error_code":412}',
      'null',
      '[]',
      '{"type":"async","operation":5}',
    ),
  );
  it('the envelope reader returns an envelope or throws TransportError naming host and step', () => {
    fc.assert(
      fc.property(body, fc.option(fc.integer({ min: 100, max: 599 }), { nil: undefined }), (text, status) => {
        try {
          readEnvelope('h1', 'read trust store', status, text);
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(TransportError);
          expect((e as Error).message).toMatch(/^h1: read trust store: /);
        }
      }),
      { numRuns: 300 },
    );
  });

  const certificateLike = fc.record(
    {
      name: fc.oneof(nasty, fc.integer(), fc.constant(null)),
      type: fc.oneof(fc.constantFrom('client', 'metrics', 'server'), fc.anything()),
      restricted: fc.oneof(fc.boolean(), fc.anything()),
      projects: fc.oneof(fc.constant(null), fc.array(nasty, { maxLength: 3 }), fc.anything()),
      description: fc.oneof(nasty, fc.anything()),
      fingerprint: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), nasty, fc.integer()),
      certificate: fc.oneof(nasty, fc.base64String({ maxLength: 200 }), fc.constant('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')),
    },
    { requiredKeys: [] },
  );
  const metadata = fc.oneof(fc.anything(), fc.array(fc.oneof(certificateLike, fc.anything()), { maxLength: 4 }));

  for (const [name, reader] of Object.entries({ readServerInfo, readMembers, readProjects, readCertificates })) {
    it(`${name}: a value or a ShapeError, for any metadata`, () => {
      fc.assert(
        fc.property(metadata, (m) => {
          try {
            reader(m);
          } catch (e) {
            expect(e, String(e)).toBeInstanceOf(ShapeError);
            expect((e as Error).message).toMatch(/\S/);
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it('observeTrust over a session answering arbitrary metadata: ObservedTrust or TransportError', async () => {
    await fc.assert(
      fc.asyncProperty(metadata, metadata, metadata, fc.option(metadata), fc.boolean(), async (server, projects, certificates, members, needsDaemon) => {
        const session = {
          spec: { host: 'h1' },
          incus: {
            request: async (_m: string, path: string, step: string) => {
              // No members: the refusal of a standalone server.
              if (path.startsWith('/1.0/cluster/members')) {
                if (members === null) throw new TransportError('h1', step, 'Incus refused (500): Server is not clustered');
                return { status: 200, metadata: members };
              }
              return {
                status: 200,
                metadata: path === '/1.0' ? server : path.startsWith('/1.0/projects') ? projects : path.startsWith('/1.0/certificates?') ? certificates : {},
              };
            },
          },
        } as unknown as HostSession;
        try {
          await observeTrust(session, { projects: true, needsDaemon: () => needsDaemon });
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(TransportError);
          expect((e as TransportError).host).toBe('h1');
        }
      }),
      RUNS,
    );
  });
});

describe('SSH client files on hostile input', () => {
  it('known_hosts and ~/.ssh/config parse any text without throwing', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme', maxLength: 300 }),
          fc.array(nasty, { maxLength: 8 }).map((l) => l.join('\n')),
        ),
        (text) => {
          parseKnownHosts(text, 'known_hosts');
          parseSshConfig(text, 'config', () => []);
        },
      ),
      RUNS,
    );
  });
});

describe('shell quoting against a real sh', () => {
  it('any argv reaches the command unchanged and never as shell code', () => {
    const marker = join(dir, 'pwned');
    const word = fc
      .oneof(nasty, fc.constant(`$(touch ${marker})`), fc.constant(`\`touch ${marker}\``), fc.constant(`;touch ${marker}`))
      .map((s) => s.replace(/\u0000/g, ''));
    // One sh per batch: print every word back as NUL-separated bytes.
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 20 }), (words) => {
        const script = shellCommand(['printf', '%s\\0', ...words]);
        const out = execFileSync('sh', ['-c', script]);
        expect(out.toString('utf8').split('\u0000').slice(0, -1)).toEqual(words.map((w) => Buffer.from(w, 'utf8').toString('utf8')));
      }),
      { numRuns: 60 },
    );
    expect(() => execFileSync('test', ['-e', marker])).toThrow();
  });
});
