import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { CertificateParseError, parseCertificateDer, parseCertificatePem } from './certificate.js';
import { generateSelfSigned } from './generate.js';

const now = new Date('2026-01-02T03:04:05Z');

describe('parseCertificatePem (node:crypto X509Certificate)', () => {
  it('reads what reconcile needs from a generated ECDSA P-384 certificate', async () => {
    const pair = await generateSelfSigned({ commonName: 'metrics.local', validityDays: 10, now, type: 'metrics' });
    const info = parseCertificatePem(pair.certificatePem);
    const der = Buffer.from(info.derBase64, 'base64');
    expect(info).toMatchObject({
      subject: 'CN=metrics.local',
      issuer: 'CN=metrics.local',
      fingerprint: createHash('sha256').update(der).digest('hex'),
      publicKeyAlgorithm: 'ECDSA P-384',
      pem: pair.certificatePem,
    });
    expect(info.serialNumber).toMatch(/^[0-9a-f]+$/);
    // Generation backdates by one minute; X.509 times have whole seconds.
    expect(info.notBefore.toISOString()).toBe('2026-01-02T03:03:05.000Z');
    expect(info.notAfter.toISOString()).toBe('2026-01-12T03:04:05.000Z');
  });

  it('parses a certificate once per process: the same DER gives the same object', async () => {
    const pair = await generateSelfSigned({ commonName: 'once', validityDays: 1, now, type: 'client' });
    const a = parseCertificatePem(pair.certificatePem);
    const b = parseCertificateDer(Buffer.from(a.derBase64, 'base64'));
    expect(b).toBe(a);
  });

  it('refuses bytes that are not a certificate, without echoing OpenSSL internals', () => {
    expect(() => parseCertificatePem('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')).toThrow(
      new CertificateParseError('not a valid X.509 certificate (its DER bytes do not decode)'),
    );
  });
});
