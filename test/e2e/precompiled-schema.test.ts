/**
 * `npm run build` precompiles the inventory schema (scripts/precompile-schema.mjs) so that a run
 * neither loads ajv nor compiles it. The built validator must be made from today's schema and
 * judge exactly as a validator compiled at run time does (same verdicts, same error objects).
 * Needs `npm run build` first (npm test's pretest does it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

it('the validator built into dist/ is made from schema/inventory.schema.json and judges as a fresh compile does', async () => {
  const schema = JSON.parse(readFileSync(join(REPO, 'schema/inventory.schema.json'), 'utf8'));
  const built = (await import(join(REPO, 'dist/src/inventory/inventory-schema.validator.js'))) as { default: ValidateFunction; schemaText: string };
  const { AJV_OPTIONS } = (await import(join(REPO, 'dist/src/inventory/validate.js'))) as { AJV_OPTIONS: object };
  expect(built.schemaText).toBe(JSON.stringify(schema));

  const compiled = new Ajv2020(AJV_OPTIONS).compile(schema);
  const cases: unknown[] = [
    {},
    { incus_trusted_clients: [{ name: 'alice', certificate_file: 'alice.crt', restricted: true, projects: ['p1'] }] },
    { incus_trusted_clients: [{ name: '', certificate_file: 3, extra: 1 }] },
    { incus_trusted_clients: [{ name: `${'x'.repeat(255)}😀`, certificate_file: 'a', projects: [1] }] },
    { incus_metrics_certificates: [{ name: 'a/b', certificate_file: 'm.crt', key_file: 'm.key', validity_days: 0 }] },
    { ansible_port: 'twenty-two', ansible_become: 'maybe', ansible_connection: 'winrm' },
  ];
  for (const value of cases) {
    expect(built.default(value)).toBe(compiled(value));
    expect(built.default.errors ?? null).toEqual(compiled.errors ?? null);
  }
});
