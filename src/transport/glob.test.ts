import { describe, expect, it } from 'vitest';
import { globMatch } from './glob.js';

describe('globMatch (OpenSSH host patterns)', () => {
  it('matches a name without wildcards whole and case-insensitively', () => {
    expect(globMatch('Web1.Example.org', 'web1.example.ORG')).toBe(true);
    expect(globMatch('web1', 'web10')).toBe(false);
    expect(globMatch('web10', 'web1')).toBe(false);
    expect(globMatch('[10.0.0.1]:2222', '[10.0.0.1]:2222')).toBe(true);
    expect(globMatch('[10.0.0.1]:2222', '10.0.0.1')).toBe(false);
    expect(globMatch('10.0.0.1', '10a0b0c1')).toBe(false); // a dot is a dot
  });

  it('* matches any run of characters and ? exactly one, the rest as written', () => {
    expect(globMatch('*.example.org', 'web1.example.org')).toBe(true);
    expect(globMatch('*.example.org', 'example.org')).toBe(false);
    expect(globMatch('web?', 'web1')).toBe(true);
    expect(globMatch('web?', 'web12')).toBe(false);
    expect(globMatch('10.0.0.*', '10.0.0.17')).toBe(true);
    expect(globMatch('10.0.0.*', '10a0b0c17')).toBe(false);
    expect(globMatch('[10.0.0.?]:22*', '[10.0.0.5]:2222')).toBe(true);
    expect(globMatch('WEB*', 'web3')).toBe(true);
  });
});
