import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../errors.js';
import { loadInventory } from './load.js';
import type { Inventory } from './model.js';
import { hostPatternError, selectHosts } from './patterns.js';

const NESTED = join(new URL('../../test/fixtures/', import.meta.url).pathname, 'nested-inventory');
let inventory: Inventory;
beforeAll(async () => {
  inventory = await loadInventory(NESTED);
});
const hosts = (pattern: string) => selectHosts(inventory, pattern).hosts;

describe('Ansible host patterns', () => {
  it('selects names, groups with their descendants, all and *', () => {
    expect(hosts('prom.example')).toEqual(['prom.example']);
    expect(hosts('incus')).toEqual(['incus-a.example', 'incus-b.example']);
    expect(hosts('infra')).toEqual(['incus-a.example', 'incus-b.example', 'prom.example']);
    expect(hosts('all')).toHaveLength(7);
    expect(hosts('*')).toHaveLength(7);
    expect(hosts('ungrouped')).toEqual(['lonely.example']);
  });

  it('unions with : and , and applies & then ! whatever their order', () => {
    expect(hosts('web:prom.example')).toEqual(['prom.example', 'web01.example', 'web02.example', 'web03.example']);
    expect(hosts('web,lonely.example')).toEqual(['lonely.example', 'web01.example', 'web02.example', 'web03.example']);
    expect(hosts('infra:&prod')).toEqual(['incus-b.example', 'prom.example']);
    expect(hosts('infra:!prod')).toEqual(['incus-a.example']);
    expect(hosts('!prod:infra')).toEqual(['incus-a.example']);
    expect(hosts('&prod:infra:!incus')).toEqual(['prom.example']);
    expect(hosts('!web')).toEqual(['lonely.example', 'incus-a.example', 'incus-b.example', 'prom.example']);
  });

  it('matches globs on the whole name and ~regex from the start', () => {
    expect(hosts('web0[13].example')).toEqual(['web01.example', 'web03.example']);
    expect(hosts('incus*')).toEqual(['incus-a.example', 'incus-b.example']);
    expect(hosts('*.example:!web*')).toEqual(['lonely.example', 'incus-a.example', 'incus-b.example', 'prom.example']);
    expect(hosts('~(web|prom)')).toEqual(['prom.example', 'web01.example', 'web02.example', 'web03.example']);
    expect(hosts('~example')).toEqual([]);
  });

  it('selects by position with subscripts', () => {
    expect(hosts('web[0]')).toEqual(['web01.example']);
    expect(hosts('web[-1]')).toEqual(['web03.example']);
    expect(hosts('web[1:2]')).toEqual(['web02.example', 'web03.example']);
    expect(hosts('web[1:]')).toEqual(['web02.example', 'web03.example']);
  });

  it('warns about each term that matches nothing, as Ansible does', () => {
    expect(selectHosts(inventory, 'incus:nothere:!gone')).toEqual({
      hosts: ['incus-a.example', 'incus-b.example'],
      warnings: [
        'could not match host pattern "nothere": it names no host or group in the inventory; ignoring it',
        'could not match host pattern "!gone": it names no host or group in the inventory; ignoring it',
      ],
    });
  });

  it('refuses malformed patterns with a one-line reason', () => {
    expect(() => selectHosts(inventory, '~web(')).toThrow(UsageError);
    expect(hostPatternError('~web(')).toBe('bad host pattern "~web(": invalid regular expression (/^(?:web()/: Unterminated group)');
    expect(hostPatternError('')).toBe('empty host pattern');
    expect(hostPatternError('web,,db')).toBe('bad host pattern "web,,db": an empty term between separators');
    expect(hostPatternError('web:!')).toBe('bad host pattern "!": nothing after "!"');
    expect(hostPatternError('incus:&prod')).toBeUndefined();
  });
});
