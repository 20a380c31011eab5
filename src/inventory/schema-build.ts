/**
 * schema/inventory.schema.json, built from its parts (pure): each module owns the variables it
 * reads (src/modules/NAME/schema.ts), the transport owns the connection variables
 * (src/transport/schema.ts). `npm run schema` writes the file; a test keeps it equal to this, so a
 * new kind of thing brings its variables with it and the checked-in schema never drifts.
 */
export interface SchemaFragment {
  properties: Record<string, unknown>;
  $defs?: Record<string, unknown>;
}

export function buildInventorySchema(fragments: SchemaFragment[]): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const defs: Record<string, unknown> = {};
  for (const f of fragments) {
    for (const [k, v] of Object.entries(f.properties)) {
      if (k in properties) throw new Error(`inventory schema: variable ${k} is declared twice`);
      properties[k] = v;
    }
    for (const [k, v] of Object.entries(f.$defs ?? {})) {
      if (k in defs) throw new Error(`inventory schema: definition ${k} is declared twice`);
      defs[k] = v;
    }
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://reconcile.invalid/schema/inventory.schema.json',
    title: 'Variables of one inventory host that reconcile reads',
    description: "Checked against each host's merged variables (Ansible precedence). Variables not listed here are Ansible's business and are not checked.",
    type: 'object',
    properties,
    $defs: defs,
  };
}
