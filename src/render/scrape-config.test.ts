import { describe, expect, it } from 'vitest';
import { incusScrapeConfigs, metricsTargets, renderPrometheusConfig, renderScrapeConfigs, targetAddress } from './scrape-config.js';

describe('metricsTargets', () => {
  it('uses core.metrics_address before core.https_address, replaces wildcards, lists a cluster once per member', () => {
    const { targets, warnings } = metricsTargets([
      { host: 'a', reachedAt: '10.0.0.1', serverName: 'a', httpsAddress: '[::]:8443', metricsAddress: ':9100', members: [] },
      { host: 'b', reachedAt: '10.0.0.2', serverName: 'b', httpsAddress: '10.0.0.2', members: [] },
      {
        host: 'c1',
        reachedAt: '10.0.1.1',
        serverName: 'c1',
        clusterId: 'X',
        members: [
          { name: 'c1', url: 'https://10.0.1.1:8443' },
          { name: 'c2', url: 'https://10.0.1.2:8443' },
        ],
      },
      {
        host: 'c2',
        reachedAt: '10.0.1.2',
        serverName: 'c2',
        clusterId: 'X',
        members: [
          { name: 'c1', url: 'https://10.0.1.1:8443' },
          { name: 'c2', url: 'https://10.0.1.2:8443' },
        ],
      },
      { host: 'd', reachedAt: '10.0.0.4', serverName: 'd', httpsAddress: '', members: [] },
    ]);
    expect(targets.map((t) => `${t.host}/${t.member} ${t.address}`)).toEqual([
      'a/a 10.0.0.1:9100',
      'b/b 10.0.0.2:8443',
      'c1/c1 10.0.1.1:8443',
      'c1/c2 10.0.1.2:8443',
    ]);
    expect(warnings).toEqual(['d: neither core.metrics_address nor core.https_address is set, so Incus serves no metrics over the network; it is not scraped']);
  });

  it('targetAddress keeps IPv6 bracketed', () => {
    expect(targetAddress('[fd00::1]:8443', 'x')).toBe('[fd00::1]:8443');
    expect(targetAddress('0.0.0.0:8444', 'fd00::2')).toBe('[fd00::2]:8444');
  });
});

describe('incusScrapeConfigs', () => {
  it('without incus_server_name: insecure_skip_verify and a warning naming the MITM risk', () => {
    const { configs, warnings } = incusScrapeConfigs([{ address: '127.0.0.5:8443', host: 'h1', member: 'h1' }], {
      jobName: 'incus',
      certFile: '/etc/p/m.crt',
      keyFile: '/etc/p/m.key',
    });
    expect(renderScrapeConfigs(configs, ['header'])).toBe(`# header
scrape_configs:
  - job_name: incus
    scheme: https
    metrics_path: /1.0/metrics
    tls_config:
      cert_file: /etc/p/m.crt
      key_file: /etc/p/m.key
      insecure_skip_verify: true
    static_configs:
      - targets:
          - 127.0.0.5:8443
        labels:
          incus_host: h1
          incus_member: h1
`);
    expect(warnings).toEqual([
      'h1: incus_server_name is not set, so Prometheus does not verify the Incus server certificate (insecure_skip_verify: true): anyone who can intercept the traffic can impersonate the server (MITM risk); the client certificate is still checked. Set incus_server_name (and incus_server_ca_file) to verify it.',
    ]);
  });

  it('with incus_server_name: server_name and ca_file, no warning; one job per TLS setting', () => {
    const { configs, warnings } = incusScrapeConfigs(
      [
        { address: 'a:8443', host: 'a', member: 'a', tlsServerName: 'incus.example.com', tlsCaFile: '/etc/ssl/certs/ca-certificates.crt' },
        { address: 'b:8443', host: 'b', member: 'b', tlsServerName: 'b.example.com', tlsCaFile: '/etc/p/b-ca.crt' },
      ],
      { jobName: 'incus', certFile: 'c', keyFile: 'k', scrapeInterval: '15s' },
    );
    expect(warnings).toEqual([]);
    expect(configs.map((c) => [c.job_name, c.scrape_interval, c.tls_config])).toEqual([
      ['incus', '15s', { cert_file: 'c', key_file: 'k', server_name: 'incus.example.com', ca_file: '/etc/ssl/certs/ca-certificates.crt' }],
      ['incus-2', '15s', { cert_file: 'c', key_file: 'k', server_name: 'b.example.com', ca_file: '/etc/p/b-ca.crt' }],
    ]);
  });
});

describe('renderPrometheusConfig', () => {
  it('a whole prometheus.yml: global, other keys, own jobs then the extra ones', () => {
    expect(
      renderPrometheusConfig(
        {
          global: { scrape_interval: '15s' },
          otherTopLevel: { rule_files: ['/etc/prometheus/rules.yml'], scrape_configs: 'ignored' },
          configs: [{ job_name: 'incus' }],
          extra: [{ job_name: 'node', static_configs: [{ targets: ['localhost:9100'] }] }],
        },
        ['Managed by reconcile'],
      ),
    ).toBe(`# Managed by reconcile
global:
  scrape_interval: 15s
rule_files:
  - /etc/prometheus/rules.yml
scrape_configs:
  - job_name: incus
  - job_name: node
    static_configs:
      - targets:
          - localhost:9100
`);
  });
});
