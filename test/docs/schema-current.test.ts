/**
 * schema/inventory.schema.json is built from its owners: each module's schema.ts (the variables
 * it reads) and the transport's (the connection variables). The checked-in file must say exactly
 * that (after adding a variable to a module: `npm run schema`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildInventorySchema } from '../../src/inventory/schema-build.js';
import { MODULES } from '../../src/modules/registry.js';
import { TRANSPORT_SCHEMA } from '../../src/transport/schema.js';
import { REPO } from '../e2e/trust-support.js';

describe('the inventory schema', () => {
  it("is the modules' and the transport's fragments, as checked in (else: npm run schema)", () => {
    const built = buildInventorySchema([...Object.values(MODULES).map((m) => m.schema), TRANSPORT_SCHEMA]);
    expect(JSON.parse(readFileSync(join(REPO, 'schema/inventory.schema.json'), 'utf8'))).toEqual(built);
  });

  it('refuses a variable two owners declare', () => {
    expect(() => buildInventorySchema([{ properties: { x: {} } }, { properties: { x: {} } }])).toThrow('inventory schema: variable x is declared twice');
  });
});
