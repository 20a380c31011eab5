/**
 * The Prometheus jobs that reach Qubes VMs through prometheus-qubes-proxy: their exact shape,
 * `promtool check config` on them, and a real Prometheus scraping them through a small HTTP
 * server standing in for the proxy (which needs Qubes' qrexec and cannot run here) — to see
 * that the per-target `__param_*` labels really become `/forward?target=VM&port=PORT`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { renderScrapeConfigs } from '../../render/scrape-config.js';
import type { DesiredQubesProxy } from './model.js';
import { qubesProxyScrapeJobs } from './scrape.js';

const run = promisify(execFile);

const desired = (over: Partial<DesiredQubesProxy> = {}): DesiredQubesProxy => ({
  proxies: ['sys-net'],
  targets: [
    { target: '@tag:monitored', ports: [9100] },
    { target: 'vault', ports: [9101] },
    { target: 'work', ports: [9100] },
  ],
  autostart: false,
  proxyAddresses: {},
  policyDir: '/etc/qubes/policy.d',
  policyFile: '30-prometheus-proxy.policy',
  policyPath: '/etc/qubes/policy.d/30-prometheus-proxy.policy',
  ...over,
});

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('qubesProxyScrapeJobs', () => {
  test('one job per dom0, one target per proxy × VM × port; a tag not listed in dom0 is not scraped (warning)', () => {
    const { jobs, warnings } = qubesProxyScrapeJobs([{ host: 'dom0', desired: desired({ proxyAddresses: { 'sys-net': '192.168.1.20' } }) }]);
    expect(jobs).toEqual([
      {
        job_name: 'qubes-proxy-dom0',
        metrics_path: '/forward',
        static_configs: [
          {
            targets: ['192.168.1.20:8199'],
            labels: { __param_target: 'vault', __param_port: '9101', instance: 'vault:9101', vm: 'vault', port: '9101', proxy: 'sys-net', dom0: 'dom0' },
          },
          {
            targets: ['192.168.1.20:8199'],
            labels: { __param_target: 'work', __param_port: '9100', instance: 'work:9100', vm: 'work', port: '9100', proxy: 'sys-net', dom0: 'dom0' },
          },
        ],
      },
    ]);
    expect(warnings).toEqual([
      'dom0: qubes_prometheus_proxy target @tag:monitored is allowed by the policy but not scraped: its VMs are listed in dom0 only when a Prometheus host is reconciled in the same run',
    ]);
  });

  test('a tag listed in dom0 becomes one target per VM with that tag, labelled with the tag', () => {
    const { jobs, warnings } = qubesProxyScrapeJobs([{ host: 'dom0', desired: desired() }], { dom0: { monitored: ['personal', 'untrusted'] } });
    expect(warnings).toEqual([]);
    expect(jobs[0]!.static_configs.map((c) => `${c.labels.vm}:${c.labels.port}${c.labels.tag ? ` tag=${c.labels.tag}` : ''}`)).toEqual([
      'personal:9100 tag=monitored',
      'untrusted:9100 tag=monitored',
      'vault:9101',
      'work:9100',
    ]);
    // No VM has the tag (yet): nothing to scrape for it, and nothing to warn about.
    expect(qubesProxyScrapeJobs([{ host: 'dom0', desired: desired() }], { dom0: { monitored: [] } }).jobs[0]!.static_configs).toHaveLength(2);
  });

  test('the generated jobs pass promtool check config', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-qubes-scrape-'));
    dirs.push(dir);
    const { jobs } = qubesProxyScrapeJobs([
      { host: 'dom0', desired: desired() },
      { host: 'dom0-laptop', desired: desired({ proxies: ['sys-net', 'sys-firewall'] }) },
    ]);
    const file = path.join(dir, 'prometheus.yml');
    await writeFile(file, renderScrapeConfigs(jobs, ['Qubes proxy jobs']));
    const { stdout, stderr } = await run('promtool', ['check', 'config', file]);
    expect(stdout + stderr).toContain('SUCCESS');
  });

  test('a real Prometheus asks the proxy for /forward?target=VM&port=PORT and labels series with vm and port', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reconcile-qubes-prom-'));
    dirs.push(dir);
    // A loopback address of its own, so that port 8199 (fixed by the proxy) is free.
    const address = `127.99.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    const seen = new Set<string>();
    const proxy: Server = createServer((req, res) => {
      seen.add(req.url ?? '');
      const url = new URL(req.url ?? '/', 'http://x');
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end(`# TYPE fake_exporter_up gauge\nfake_exporter_up{from_vm="${url.searchParams.get('target')}"} 1\n`);
    });
    await new Promise<void>((resolve, reject) => {
      proxy.once('error', reject);
      proxy.listen(8199, address, resolve);
    });
    let prometheus: ChildProcess | undefined;
    try {
      const { jobs } = qubesProxyScrapeJobs([{ host: 'dom0', desired: desired({ proxyAddresses: { 'sys-net': address } }) }]);
      const config = path.join(dir, 'prometheus.yml');
      await writeFile(config, `global:\n  scrape_interval: 1s\n${renderScrapeConfigs(jobs)}`);
      const webPort = 20000 + Math.floor(Math.random() * 20000);
      prometheus = spawn(
        'prometheus',
        [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=${address}:${webPort}`],
        {
          stdio: 'ignore',
        },
      );
      const deadline = Date.now() + 30_000;
      let series: { metric: Record<string, string> }[] = [];
      while (Date.now() < deadline) {
        try {
          const r = await fetch(`http://${address}:${webPort}/api/v1/query?query=${encodeURIComponent('fake_exporter_up')}`);
          series = ((await r.json()) as { data: { result: { metric: Record<string, string> }[] } }).data.result;
          if (series.length === 2) break;
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      expect([...seen].sort()).toEqual(['/forward?port=9100&target=work', '/forward?port=9101&target=vault']);
      const labels = series.map((s) => `${s.metric.vm} ${s.metric.port} ${s.metric.instance} ${s.metric.from_vm} ${s.metric.job}`).sort();
      expect(labels).toEqual(['vault 9101 vault:9101 vault qubes-proxy-dom0', 'work 9100 work:9100 work qubes-proxy-dom0']);
    } finally {
      if (prometheus?.pid) {
        const exited = new Promise((r) => prometheus!.once('exit', r));
        process.kill(prometheus.pid, 'SIGTERM');
        await exited;
      }
      await new Promise((r) => proxy.close(r));
    }
  }, 45_000);
});
