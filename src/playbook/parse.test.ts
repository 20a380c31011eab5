import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../errors.js';
import { loadPlaybook } from './load.js';
import { parsePlaybook } from './parse.js';

const shown = (text: string) => parsePlaybook('site.yaml', text).problems.map(formatProblem);

describe('playbooks', () => {
  it('reads the shipped playbook', async () => {
    const path = new URL('../../playbooks/site.yaml', import.meta.url).pathname;
    const { plays, problems } = await loadPlaybook(path);
    expect(problems).toEqual([]);
    expect(plays.length).toBeGreaterThan(0);
    expect(plays[0]).toEqual({ name: 'Incus trust stores', hosts: 'all', reconcile: ['incus_trust'] });
    expect(readFileSync(path, 'utf8')).toContain('reconcile:');
  });

  it('takes a list of host patterns as a union', () => {
    expect(parsePlaybook('p.yaml', '- hosts: [incus, "prom*"]\n  reconcile: [incus_trust]\n').plays).toEqual([
      { name: 'play 1', hosts: 'incus,prom*', reconcile: ['incus_trust'] },
    ]);
  });

  it('reports every problem with its place', () => {
    expect(
      shown(
        [
          '- name: trust',
          '  hosts: "incus:&"',
          '  reconcile: [incus_trust, incus_trust]',
          '- name: 7',
          '  reconcile: firewall',
          '  become: true',
          '- just a string',
          '',
        ].join('\n'),
      ),
    ).toEqual([
      'site.yaml:2:10: error: [0].hosts: bad host pattern "&": nothing after "&"\n      hosts: "incus:&"\n             ^',
      'site.yaml:3:28: error: [0].reconcile[1]: "incus_trust" is listed twice\n      reconcile: [incus_trust, incus_trust]\n                               ^',
      'site.yaml:6:3: error: [1].become: unknown key "become" in a play (allowed: name, hosts, reconcile)\n      become: true\n      ^',
      'site.yaml:4:9: error: [1].name: must be a string\n    - name: 7\n            ^',
      'site.yaml:4:3: error: [1]: is missing the required key "hosts" (a host pattern such as all or incus:!staging)\n    - name: 7\n      ^',
      'site.yaml:5:14: error: [1].reconcile: must be a non-empty list of: incus_trust, qubes_prometheus_proxy, prometheus_scrape, prometheus_kubernetes\n      reconcile: firewall\n                 ^',
      'site.yaml:7:3: error: [2]: a play must be a mapping with name, hosts and reconcile\n    - just a string\n      ^',
    ]);
  });

  it('reports YAML syntax errors and a root that is not a list', () => {
    expect(shown('hosts: all\n')).toEqual(['site.yaml:1:1: error: a playbook is a list of plays (- name: …, hosts: …, reconcile: […])\n    hosts: all\n    ^']);
    expect(shown('- hosts: [all\n')[0]).toMatch(/^site\.yaml:\d+:\d+: error: YAML syntax error: /);
  });

  it('names a missing playbook', async () => {
    expect((await loadPlaybook('/nonexistent/site.yaml')).problems.map(formatProblem)).toEqual(['error: playbook /nonexistent/site.yaml does not exist']);
  });
});
