/**
 * What a ScrapeConfig stands for, as the prometheus.yml job prometheus-operator generates from it
 * (the mapping the README documents), with the Secret's keys written to files as the operator
 * mounts them. Lets a real Prometheus prove that the manifests scrape a real incusd.
 *
 *   spec.jobName                   → job_name
 *   spec.scheme (HTTPS)            → scheme: https
 *   spec.metricsPath               → metrics_path
 *   spec.staticConfigs[]           → static_configs[] (targets, labels)
 *   spec.tlsConfig.cert.secret     → tls_config.cert_file  (the Secret key's content, as a file)
 *   spec.tlsConfig.keySecret       → tls_config.key_file
 *   spec.tlsConfig.ca.secret       → tls_config.ca_file
 *   spec.tlsConfig.serverName      → tls_config.server_name
 *   spec.tlsConfig.insecureSkipVerify → tls_config.insecure_skip_verify
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

interface SecretRef {
  name: string;
  key: string;
}

export async function scrapeConfigAsJob(
  scrapeConfig: { spec: Record<string, any> },
  secret: { metadata: { name: string }; data: Record<string, string> },
  dir: string,
): Promise<Record<string, unknown>> {
  const spec = scrapeConfig.spec;
  const fileOf = async (ref: SecretRef, mode: number): Promise<string> => {
    if (ref.name !== secret.metadata.name) throw new Error(`the ScrapeConfig refers to Secret ${ref.name}, not ${secret.metadata.name}`);
    const data = secret.data[ref.key];
    if (data === undefined) throw new Error(`Secret ${ref.name} has no key ${ref.key}`);
    const path = join(dir, ref.key);
    await writeFile(path, Buffer.from(data, 'base64'), { mode });
    return path;
  };
  const tls = spec.tlsConfig ?? {};
  const tlsConfig: Record<string, unknown> = {
    cert_file: await fileOf(tls.cert.secret, 0o644),
    key_file: await fileOf(tls.keySecret, 0o600),
  };
  if (tls.ca) tlsConfig.ca_file = await fileOf(tls.ca.secret, 0o644);
  if (tls.serverName) tlsConfig.server_name = tls.serverName;
  if (tls.insecureSkipVerify) tlsConfig.insecure_skip_verify = true;
  return {
    job_name: spec.jobName,
    scheme: String(spec.scheme).toLowerCase(),
    metrics_path: spec.metricsPath,
    tls_config: tlsConfig,
    static_configs: spec.staticConfigs,
  };
}
