// Writes schema/inventory.schema.json from the modules' and the transport's fragments
// (src/inventory/schema-build.ts), from the compiled files: `npm run schema` builds first.
// test/docs/schema-current.test.ts fails while the checked-in file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { MODULES } = await import(`${root}dist/src/modules/registry.js`);
const { TRANSPORT_SCHEMA } = await import(`${root}dist/src/transport/schema.js`);
const { buildInventorySchema } = await import(`${root}dist/src/inventory/schema-build.js`);
const schema = buildInventorySchema([...Object.values(MODULES).map((m) => m.schema), TRANSPORT_SCHEMA]);
writeFileSync(`${root}schema/inventory.schema.json`, JSON.stringify(schema, null, 2) + '\n');
