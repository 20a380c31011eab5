/**
 * The Incus trust store: what the inventory wants (desired) and what a host has (observed).
 * Shared by desired.ts (inventory → DesiredTrust), observe.ts (host → ObservedTrust),
 * plan.ts (pure diff) and apply.ts. Both `incus_trusted_clients` (type client) and
 * `incus_metrics_certificates` (type metrics) end up as DesiredCertificate entries here,
 * so one plan sees the whole store and "unmanaged" means: named by neither list.
 */
import type { SourceLocation } from '../../errors.js';
import type { CertificateInfo } from '../../pki/certificate.js';

export type TrustType = 'client' | 'metrics';

export interface DesiredCertificate {
  name: string;
  type: TrustType;
  description: string;
  /** Default false. */
  restricted: boolean;
  /** Default []; compared as a set. Without restricted: true it has no effect (warned). */
  projects: string[];
  state: 'present' | 'absent';
  /**
   * The certificate from certificate_file. Undefined only for a metrics certificate whose key
   * pair is still to be generated (check mode): the plan shows its fingerprint as
   * "(known after apply)", as Terraform does.
   */
  certificate?: CertificateInfo;
  /** certificate_file as written in the inventory, for messages. */
  certificateFile: string;
  /** Absolute path of certificate_file on the controller, while its pair is still to be generated. */
  pendingCertificatePath?: string;
  /** Where the entry is defined, for messages. */
  location: SourceLocation;
  valuePath: string;
  /** Optional: why the entry is there beyond the inventory (a metrics rotation), appended to an add's reason. */
  planNote?: string;
  /**
   * state: absent only: the certificate to revoke, by fingerprint (lowercase hex, 12 to 64
   * digits: a prefix as `incus config trust list` shows it). Without it and without a
   * readable certificate_file, the entry revokes by name, when the name is unique on the host.
   */
  fingerprint?: string;
  /** A client rotation with an overlap: the certificate the entry replaced stays trusted until `until`. */
  previous?: PreviousCertificate;
}

/** previous_certificate_file + previous_until of an incus_trusted_clients entry. */
export interface PreviousCertificate {
  /** Undefined when the file is gone once the date has passed (nothing left to keep). */
  certificate?: CertificateInfo;
  /** previous_until as written (the plan shows it). */
  until: string;
  /** Whether `until` is still ahead (decided where the clock is: desired()). */
  kept: boolean;
}

export interface DesiredTrust {
  certificates: DesiredCertificate[];
  /** incus_trust_prune: remove unmanaged certificates (also --prune). */
  prune: boolean;
  /** incus_trust_protected: names or fingerprints never removed. */
  protected: string[];
}

/** One entry of GET /1.0/certificates?recursion=1. */
export interface LiveCertificate {
  name: string;
  /** 'client', 'metrics' or 'server' (cluster members: never removed). */
  type: string;
  restricted: boolean;
  projects: string[];
  description: string;
  fingerprint: string;
  /** PEM as Incus returns it (compare fingerprints, never this text). */
  certificate: string;
  /** From parsing `certificate`; undefined if Incus returned something unparsable. */
  notBefore?: Date;
  notAfter?: Date;
}

/** The API extensions plan.ts asks a server about: LXD 5.0 lacks some that Incus has. */
export const TRUST_API_EXTENSIONS = ['certificate_update', 'metrics', 'certificate_project', 'certificate_description'] as const;
export type TrustApiExtension = (typeof TRUST_API_EXTENSIONS)[number];

export interface IncusServerInfo {
  clustered: boolean;
  /**
   * Identity of the shared trust store: for a cluster, the cluster certificate's fingerprint
   * (the same on every member); undefined for a standalone server.
   */
  clusterId?: string;
  /** Cluster members with their API URL (standalone: empty). */
  members: { name: string; url: string }[];
  /**
   * What the daemon says of itself (GET /1.0), read when a plan can depend on it: always for a
   * cluster (its identity) and for audit; for a standalone server only when its trust store
   * needs a change, since only a change asks which API extensions the server has. A server
   * already in sync is not asked: GET /1.0 costs its daemon about as much as the trust store.
   */
  daemon?: IncusDaemonInfo;
}

/** GET /1.0: the daemon, its version, its API extensions and addresses. */
export interface IncusDaemonInfo {
  serverName: string;
  /** The daemon (GET /1.0 environment.server): incus or lxd. */
  kind: string;
  version: string;
  /**
   * The API extensions it has of those a trust plan asks about (TRUST_API_EXTENSIONS; GET /1.0
   * lists ~400): a feature it lacks is planned as an error. Undefined: not said.
   */
  extensions?: string[];
  /** core.https_address / core.metrics_address as configured (may be empty). */
  httpsAddress?: string;
  metricsAddress?: string;
}

export interface ObservedTrust {
  server: IncusServerInfo;
  /** Project names that exist on the host. */
  projects: string[];
  certificates: LiveCertificate[];
  /**
   * Fingerprint of the certificate this run authenticates with (over HTTPS): no plan may remove,
   * restrict or retype it, or the tool would lock itself out.
   */
  self?: string;
}
