/**
 * The inventory variables transport reads, as a fragment of schema/inventory.schema.json (JSON Schema
 * 2020-12). The whole schema is built from the modules' fragments and the transport's
 * (src/inventory/schema-build.ts); a test keeps the checked-in file equal to it (npm run schema).
 */
import type { SchemaFragment } from '../inventory/schema-build.js';

/** A port as a number, or as Ansible's inventories often write it, a string of digits. */
const PORT = {
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 65535 },
    { type: 'string', pattern: '^[0-9]{1,5}$' },
  ],
};

export const TRANSPORT_SCHEMA: SchemaFragment = {
  properties: {
    ansible_host: {
      type: 'string',
      minLength: 1,
    },
    ansible_port: PORT,
    ansible_user: {
      type: 'string',
      minLength: 1,
    },
    ansible_ssh_private_key_file: {
      type: 'string',
      minLength: 1,
    },
    ansible_connection: {
      description: 'ssh (smart and paramiko are read as ssh) or local.',
      enum: ['ssh', 'smart', 'paramiko', 'local'],
    },
    ansible_become: {
      description: "Run privileged commands through sudo -n. Ansible's boolean words are accepted, in any case.",
      anyOf: [
        {
          type: 'boolean',
        },
        {
          type: 'string',
          pattern: '^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|[Oo][Nn]|[Oo][Ff][Ff]|[YyNn01]|)$',
        },
      ],
    },
    ansible_ssh_common_args: {
      type: 'string',
    },
    ansible_ssh_host: {
      type: 'string',
      minLength: 1,
    },
    ansible_ssh_port: PORT,
    ansible_ssh_user: {
      type: 'string',
      minLength: 1,
    },
    incus_api_url: {
      description: 'Reach the host through its REST API only (no SSH): https://HOST[:PORT], port 8443 by default.',
      type: 'string',
      pattern: '^https://',
    },
    incus_remote: {
      description: "A remote of the incus (or lxc) client's config.yml: its address, client pair and pinned server certificate.",
      type: 'string',
      minLength: 1,
    },
    incus_client_cert_file: {
      description: "Client certificate for HTTPS (default the incus client's client.crt).",
      type: 'string',
      minLength: 1,
    },
    incus_client_key_file: {
      description: "Its private key (default the incus client's client.key).",
      type: 'string',
      minLength: 1,
    },
    incus_server_cert_file: {
      description: "The server's own certificate: only that one is accepted over HTTPS (as incus remote add pins it under servercerts/).",
      type: 'string',
      minLength: 1,
    },
    incus_server_ca_file: {
      description: 'A CA that signed the server certificate, checked with incus_server_name (over HTTPS, and by Prometheus scraping it).',
      type: 'string',
      minLength: 1,
    },
    incus_server: {
      description: 'The daemon: incus (default) or lxd (its sockets, and lxc query under become).',
      enum: ['incus', 'lxd'],
    },
  },
};
