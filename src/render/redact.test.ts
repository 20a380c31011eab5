import { describe, expect, it } from 'vitest';
import { redactSecretLine } from './redact.js';

describe('redactSecretLine', () => {
  it('hides the value of every secret key, block or flow style, and nothing else', () => {
    expect(redactSecretLine('      password: hunter2 # old')).toBe('      password: (redacted)');
    expect(redactSecretLine('    - bearer_token: "a b,c"')).toBe('    - bearer_token: (redacted)');
    expect(redactSecretLine("    basic_auth: {username: u, password: 'p,}w', x: 1}")).toBe('    basic_auth: {username: u, password: (redacted), x: 1}');
    expect(redactSecretLine('    authorization: {type: Bearer, credentials: "t\\"k"}')).toBe('    authorization: {type: Bearer, credentials: (redacted)}');
    expect(redactSecretLine('    oauth2: {client_id: a, client_secret: s}')).toBe('    oauth2: {client_id: a, client_secret: (redacted)}');
    for (const kept of ['      password_file: /etc/prometheus/pw', '      username: prom', '    job_name: password', '      credentials_file: /x']) {
      expect(redactSecretLine(kept)).toBe(kept);
    }
  });
});
