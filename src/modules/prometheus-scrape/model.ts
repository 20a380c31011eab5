/**
 * The prometheus_scrape module's desired and observed state for one Prometheus host.
 *
 * On the host: the metrics client pair under a versioned name (`DIR/NAME-FP12.crt` / `.key`,
 * FP12 = the certificate's fingerprint prefix) and a whole prometheus.yml that points at it.
 * A new pair is therefore written beside the old one and the configuration switches to it in
 * one atomic rename + reload: Prometheus never sees a half-replaced pair. Older pair files are
 * removed only after the reload succeeded.
 */
import type { MetricsEndpointObservation } from '../../render/scrape-config.js';

export interface DesiredMetricsPair {
  /** The incus_metrics_certificates entry name. */
  name: string;
  /** Pair files on the host are named FILEPREFIX-FP12.crt / .key. */
  filePrefix: string;
  /** Undefined while the pair is still to be generated (check mode). */
  fingerprint?: string;
  /** Public certificate PEM (undefined with fingerprint). */
  certificatePem?: string;
  /** Paths on the Prometheus host. */
  certPath: string;
  keyPath: string;
  /** Absolute paths on the controller: apply reads the key there (never put in a plan). */
  localCertificateFile: string;
  localKeyFile: string;
  /** CERT.deployed already says this host runs with `fingerprint`. */
  recorded: boolean;
}

export interface DesiredScrape {
  host: string;
  configFile: string;
  /** The whole prometheus.yml (no key material). */
  configText: string;
  /** Undefined when no incus_metrics_certificates entry exists (nothing to scrape Incus with). */
  pair?: DesiredMetricsPair;
  /** Folder of the pair files on the host. */
  certDir: string;
  keyOwner: string;
  keyGroup: string;
  /** argv run on the host to reload Prometheus; undefined: POST reloadUrl from the host. */
  reloadCommand?: string[];
  reloadUrl: string;
  promtool: string;
  /** Before switching to a new pair, wait up to this long until every target accepts it (0: don't). */
  trustWaitSeconds: number;
  /** host:port of every Incus metrics endpoint in the configuration. */
  targets: string[];
  /** Why this host must not be applied (an Incus host whose endpoint could not be read …). */
  errors: string[];
  warnings: string[];
}

export interface ObservedScrape {
  /** The current prometheus.yml, undefined when missing. */
  configText?: string;
  /** Fingerprint of the certificate at the desired certPath, when there is one. */
  certificateFingerprint?: string;
  /** prometheus.yml's mode (octal, e.g. "640"), owner and group, when it exists: kept when it is replaced. */
  configAttributes?: { mode: string; owner: string; group: string };
  /** The desired key file's mode (octal, e.g. "600"), owner and group, when it exists. */
  key?: { mode: string; owner: string; group: string };
  /** Pair files of the same entry in certDir (every version), full paths. */
  pairFiles: string[];
  /** promtool found on the host. */
  promtool: boolean;
  /**
   * Prometheus's own word on its last reload (GET /api/v1/status/runtimeinfo from the host):
   * false when it refused the configuration on disk; undefined when it could not be asked.
   */
  reloadConfigSuccess?: boolean;
  /** The configuration Prometheus runs (GET /api/v1/status/config from the host); undefined when it could not be asked. */
  loadedConfig?: string;
}

/** What prometheus_scrape's observeRun step hands to desired(). */
export interface ScrapeFacts {
  endpoints: MetricsEndpointObservation[];
  /** The VMs each dom0 gives the tags of its @tag: targets (dom0 host → tag → VMs). */
  qubesTags?: Record<string, Record<string, string[]>>;
  /** dom0s whose tagged VMs could not be listed: the Prometheus hosts are not applied (their targets would be dropped). */
  qubesFailures?: { host: string; message: string }[];
  /** Incus hosts whose endpoint could not be read: the Prometheus hosts are not applied. */
  failures: { host: string; message: string }[];
}

/** How Prometheus is reloaded on the host. */
export interface ReloadSpec {
  command?: string[];
  url: string;
}

/**
 * A pair still to be generated when the plan was made: apply takes the certificate from the
 * controller action that makes it, and writes its fingerprint where the plan says
 * "(known after apply)" (file names FILEPREFIX-FP12, the configuration's header).
 */
export interface PendingPair {
  /** Absolute path of the certificate on the controller. */
  certificatePath: string;
  filePrefix: string;
}

/** What apply needs per action: the plan is the whole truth for apply (never key material). */
export type ScrapePayload =
  | {
      op: 'pair';
      rotating: boolean;
      certDir: string;
      certPath: string;
      keyPath: string;
      /** Public certificate; undefined while pending. */
      certificatePem?: string;
      pending?: PendingPair;
      /** Controller path of the key: read at apply time, written to the host, never logged. */
      localKeyFile: string;
      owner: string;
      group: string;
      trustWaitSeconds: number;
      targets: string[];
    }
  | { op: 'key-attributes'; keyPath: string; owner: string; group: string }
  | {
      op: 'config';
      configFile: string;
      configText: string;
      /** The mode and owner the file is written with: the current file's, else 0644 (root). */
      mode: number;
      owner?: string;
      group?: string;
      pending?: PendingPair;
      promtool?: string;
      reload: ReloadSpec;
    }
  | { op: 'remove-file'; path: string }
  | { op: 'record'; localCertificateFile: string; host: string; fingerprint?: string; pending?: PendingPair };
