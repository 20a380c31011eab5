import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../inventory/model.js';
import { MODULES } from './registry.js';
import { shellMismatch } from './reach.js';

function host(vars: Record<string, unknown>): InventoryHost {
  return {
    name: 'os1',
    groups: ['all'],
    vars: Object.fromEntries(
      Object.entries(vars).map(([k, value], i) => [
        k,
        { value, location: { file: 'hosts.yaml', line: i + 4, column: 5 }, valuePath: `all.hosts.os1.${k}`, nested: new Map() },
      ]),
    ),
  };
}

describe('shellMismatch', () => {
  it('a module that needs a shell, given something on an HTTPS-only host, is refused naming the variable and where it is set', () => {
    const h = host({ incus_api_url: 'https://os1:8443', qubes_prometheus_proxy: { source: 'x' } });
    expect(shellMismatch(h, MODULES.qubes_prometheus_proxy)).toBe(
      'qubes_prometheus_proxy needs a shell on os1 (files, commands), but os1 is reached over HTTPS only (incus_api_url at hosts.yaml:4); to reach it over SSH instead, drop incus_api_url there (an HTTPS host is never reached over SSH, even with ansible_host), or leave it out of that play',
    );
    // incus_trust works over the API; a module the host gives nothing is not in the way.
    expect(shellMismatch(h, MODULES.incus_trust)).toBeUndefined();
    expect(shellMismatch(h, MODULES.prometheus_scrape)).toBeUndefined();
    expect(shellMismatch(host({ ansible_host: 'os1', qubes_prometheus_proxy: {} }), MODULES.qubes_prometheus_proxy)).toBeUndefined();
  });
});
