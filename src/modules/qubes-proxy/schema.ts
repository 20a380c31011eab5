/**
 * The inventory variables qubes_prometheus_proxy reads, as a fragment of schema/inventory.schema.json (JSON Schema
 * 2020-12). The whole schema is built from the modules' fragments and the transport's
 * (src/inventory/schema-build.ts); a test keeps the checked-in file equal to it (npm run schema).
 */
import type { SchemaFragment } from '../../inventory/schema-build.js';

export const QUBES_PROMETHEUS_PROXY_SCHEMA: SchemaFragment = {
  properties: {
    qubes_prometheus_proxy: {
      description: 'dom0: proxy VMs and the VMs they may reach; the qubes_prometheus_proxy module checks the details.',
      type: 'object',
    },
    qubes_policy_dir: {
      type: 'string',
      minLength: 1,
    },
  },
};
