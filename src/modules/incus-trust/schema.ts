/**
 * The inventory variables incus_trust reads, as a fragment of schema/inventory.schema.json (JSON Schema
 * 2020-12). The whole schema is built from the modules' fragments and the transport's
 * (src/inventory/schema-build.ts); a test keeps the checked-in file equal to it (npm run schema).
 */
import type { SchemaFragment } from '../../inventory/schema-build.js';

export const INCUS_TRUST_SCHEMA: SchemaFragment = {
  properties: {
    incus_trusted_clients: {
      description: "Client certificates trusted by the host's Incus (type client).",
      type: 'array',
      items: {
        $ref: '#/$defs/trustedClient',
      },
    },
    incus_metrics_certificates: {
      description: 'Certificates of Incus type metrics, for Prometheus to scrape /1.0/metrics. The key pair is generated when missing (apply mode).',
      type: 'array',
      items: {
        $ref: '#/$defs/metricsCertificate',
      },
    },
    incus_trust_prune: {
      description: 'Remove trusted certificates the inventory does not name (never type server, never protected ones).',
      type: 'boolean',
    },
    incus_trust_protected: {
      description: 'Names or fingerprints of certificates never removed.',
      type: 'array',
      items: {
        type: 'string',
        minLength: 1,
      },
    },
    incus_trust_group: {
      description:
        'The inventory group whose hosts are Incus servers (default incus): where the group exists, a host outside it is never reconciled for trust.',
      type: 'string',
      minLength: 1,
    },
    incus_socket: {
      type: 'string',
      minLength: 1,
    },
    incus_server_name: {
      type: 'string',
      minLength: 1,
    },
  },
  $defs: {
    certificateName: {
      type: 'string',
      minLength: 1,
      maxLength: 255,
      pattern: '^(?!\\s)[^/\\u0000-\\u001f\\u007f]*$',
    },
    /** Incus cuts a text at a NUL: the entry would drift on every run and fail every apply. */
    text: {
      type: 'string',
      pattern: '^[^\\u0000]*$',
    },
    projects: {
      type: 'array',
      items: {
        type: 'string',
        minLength: 1,
      },
    },
    trustedClient: {
      type: 'object',
      properties: {
        name: {
          $ref: '#/$defs/certificateName',
        },
        type: {
          description: 'The Incus certificate type (default client).',
          enum: ['client', 'metrics'],
        },
        description: {
          $ref: '#/$defs/text',
        },
        certificate_file: {
          description: 'The public certificate, relative to the inventory folder. Required unless state: absent.',
          type: 'string',
          minLength: 1,
        },
        fingerprint: {
          description: 'With state: absent: the certificate to revoke, by its SHA-256 fingerprint or a prefix of at least 12 hex digits.',
          type: 'string',
          pattern: '^[0-9a-fA-F]{12,64}$',
        },
        previous_certificate_file: {
          description: 'The certificate this entry replaced: it stays trusted until previous_until, then is removed.',
          type: 'string',
          minLength: 1,
        },
        previous_until: {
          description: 'YYYY-MM-DD (through that day, UTC) or an ISO 8601 time.',
          type: 'string',
          minLength: 1,
        },
        restricted: {
          type: 'boolean',
        },
        projects: {
          $ref: '#/$defs/projects',
        },
        state: {
          enum: ['present', 'absent'],
        },
      },
      required: ['name'],
      additionalProperties: false,
    },
    metricsCertificate: {
      type: 'object',
      properties: {
        name: {
          $ref: '#/$defs/certificateName',
        },
        description: {
          $ref: '#/$defs/text',
        },
        certificate_file: {
          type: 'string',
          minLength: 1,
        },
        key_file: {
          type: 'string',
          minLength: 1,
        },
        common_name: {
          type: 'string',
          minLength: 1,
        },
        validity_days: {
          type: 'integer',
          minimum: 1,
        },
        rotate_before_days: {
          type: 'integer',
          minimum: 0,
        },
        restricted: {
          type: 'boolean',
        },
        projects: {
          $ref: '#/$defs/projects',
        },
      },
      required: ['name', 'certificate_file', 'key_file'],
      additionalProperties: false,
    },
  },
};
