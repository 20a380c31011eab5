import { describe, expect, it } from 'vitest';
import { READ_VARIABLES } from './validate.js';
import { intendedVariable } from './near-miss.js';

describe('near misses of the variables reconcile reads', () => {
  it('names the variable meant: singular/plural and one or two edits; leaves unrelated names alone', () => {
    expect(intendedVariable('incus_trusted_client', READ_VARIABLES)).toBe('incus_trusted_clients');
    expect(intendedVariable('incus_trust_protect', READ_VARIABLES)).toBe('incus_trust_protected');
    expect(intendedVariable('incus_metric_certificates', READ_VARIABLES)).toBe('incus_metrics_certificates');
    expect(intendedVariable('incus_trusted_clinets', READ_VARIABLES)).toBe('incus_trusted_clients');
    expect(intendedVariable('ansible_hosts', READ_VARIABLES)).toBe('ansible_host');
    expect(intendedVariable('incus_trusted_clients', READ_VARIABLES)).toBeUndefined();
    expect(intendedVariable('ansible_python_interpreter', READ_VARIABLES)).toBeUndefined();
    expect(intendedVariable('ntp_servers', READ_VARIABLES)).toBeUndefined();
  });
});
