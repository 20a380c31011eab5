import { describe, expect, it } from 'vitest';
import { generatedKeyPairLine } from './key-pairs.js';

describe('generatedKeyPairLine', () => {
  const pair = {
    module: 'incus_trust',
    name: 'prom',
    certificateFile: '/inv/pki/m.crt',
    keyFile: '/inv/pki/m.key',
    keyMode: '0600',
    fingerprint: 'ab12',
  } as const;
  it('names the pair, its files, the key mode and the fingerprint', () => {
    expect(generatedKeyPairLine({ ...pair, event: 'generated' })).toBe(
      'generated metrics key pair prom: certificate /inv/pki/m.crt, key /inv/pki/m.key (0600), fingerprint ab12',
    );
    expect(generatedKeyPairLine({ ...pair, event: 'rotation started' })).toBe(
      'generated (rotation) metrics key pair prom: certificate /inv/pki/m.crt, key /inv/pki/m.key (0600), fingerprint ab12',
    );
  });
});
