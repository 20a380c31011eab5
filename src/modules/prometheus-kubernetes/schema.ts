/**
 * The inventory variables prometheus_kubernetes reads, as a fragment of schema/inventory.schema.json (JSON Schema
 * 2020-12). The whole schema is built from the modules' fragments and the transport's
 * (src/inventory/schema-build.ts); a test keeps the checked-in file equal to it (npm run schema).
 */
import type { SchemaFragment } from '../../inventory/schema-build.js';

export const PROMETHEUS_KUBERNETES_SCHEMA: SchemaFragment = {
  properties: {
    prometheus_kubernetes: {
      description:
        'Manifests for a Prometheus run by prometheus-operator, written on the controller by a normal run: out_dir (required), format (prometheus-operator or servicemonitor), namespace, labels, secret_name, name, certificate. The prometheus_kubernetes module checks the details.',
      type: 'object',
    },
  },
};
