/**
 * The inventory variables prometheus_scrape reads, as a fragment of schema/inventory.schema.json (JSON Schema
 * 2020-12). The whole schema is built from the modules' fragments and the transport's
 * (src/inventory/schema-build.ts); a test keeps the checked-in file equal to it (npm run schema).
 */
import type { SchemaFragment } from '../../inventory/schema-build.js';

export const PROMETHEUS_SCRAPE_SCHEMA: SchemaFragment = {
  properties: {
    prometheus_scrape_group: {
      type: 'string',
      minLength: 1,
      description: 'Inventory group of the Prometheus hosts (default prometheus).',
    },
    prometheus_incus_group: {
      type: 'string',
      minLength: 1,
      description: 'Inventory group of the Incus hosts a Prometheus host scrapes (default incus).',
    },
    prometheus_config_file: {
      type: 'string',
      minLength: 1,
    },
    prometheus_metrics_cert_dir: {
      type: 'string',
      minLength: 1,
    },
    prometheus_key_owner: {
      type: 'string',
      minLength: 1,
    },
    prometheus_key_group: {
      type: 'string',
      minLength: 1,
    },
    prometheus_reload_url: {
      type: 'string',
      minLength: 1,
    },
    prometheus_promtool: {
      type: 'string',
      minLength: 1,
    },
    prometheus_incus_job_name: {
      type: 'string',
      minLength: 1,
    },
    prometheus_incus_scrape_interval: {
      type: 'string',
      minLength: 1,
    },
    prometheus_metrics_certificate: {
      type: 'string',
      minLength: 1,
    },
    prometheus_reload_command: {
      description: 'Command run on the Prometheus host to reload it, as a list of words.',
      type: 'array',
      minItems: 1,
      items: {
        type: 'string',
      },
    },
    prometheus_trust_wait_seconds: {
      type: 'integer',
      minimum: 0,
    },
    prometheus_global: {
      type: 'object',
    },
    prometheus_extra_scrape_configs: {
      type: 'array',
      items: {
        type: 'object',
      },
    },
    prometheus_config_extra: {
      type: 'object',
    },
  },
};
