/**
 * Certificates as reconcile sees them: parsed from PEM, identified by the SHA-256 of their
 * DER bytes (as Incus does: lowercase hex, no colons), with their validity window.
 * Pure apart from the crypto provider; generation is in generate.ts.
 */
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** SHA-256 of the DER encoding, lowercase hex without colons — Incus's fingerprint. */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  publicKeyAlgorithm: string;
  /** The certificate as a normalized PEM block (one certificate). */
  pem: string;
  /** DER bytes, base64 (what the Incus API takes in POST /1.0/certificates). */
  derBase64: string;
}

const PRIVATE_KEY_MARKER = /-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/;

/** True when the text holds private key material (of any PEM flavour). */
export function containsPrivateKey(text: string): boolean {
  return PRIVATE_KEY_MARKER.test(text) || /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text);
}

export class CertificateParseError extends Error {
  override readonly name = 'CertificateParseError';
}

/** Fingerprint of DER bytes as Incus shows it. */
export function fingerprintOfDer(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * Parses the first certificate of a PEM text. Throws CertificateParseError with a reason
 * a user can act on (never the key bytes: the text is not echoed).
 */
export function parseCertificatePem(text: string): CertificateInfo {
  if (containsPrivateKey(text)) {
    throw new CertificateParseError('holds a private key; only the public certificate belongs in the inventory');
  }
  const m = CERT_BLOCK.exec(text);
  if (!m) throw new CertificateParseError('no PEM certificate block (-----BEGIN CERTIFICATE-----) found');
  const base64 = (m[1] ?? '').replace(/\s+/g, '');
  const der = Buffer.from(base64, 'base64');
  if (der.length === 0) throw new CertificateParseError('empty certificate block');
  return parseCertificateDer(der);
}

export function parseCertificateDer(der: Uint8Array): CertificateInfo {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch (e) {
    throw new CertificateParseError(`not a valid X.509 certificate (${(e as Error).message})`);
  }
  const derBase64 = Buffer.from(der).toString('base64');
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    fingerprint: fingerprintOfDer(der),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialNumber: cert.serialNumber,
    publicKeyAlgorithm: describeAlgorithm(cert.publicKey.algorithm),
    pem: toPem(derBase64),
    derBase64,
  };
}

function describeAlgorithm(alg: { name: string; namedCurve?: string; modulusLength?: number }): string {
  if (alg.namedCurve) return `${alg.name} ${alg.namedCurve}`;
  if (alg.modulusLength) return `${alg.name} ${alg.modulusLength}`;
  return alg.name;
}

function toPem(base64: string): string {
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** Whole days from `now` until the certificate expires (negative once expired). */
export function daysLeft(info: Pick<CertificateInfo, 'notAfter'>, now: Date): number {
  return Math.floor((info.notAfter.getTime() - now.getTime()) / 86_400_000);
}

/** 'valid', 'expired' or 'not-yet-valid' at `now`. */
export function validityAt(info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>, now: Date): 'valid' | 'expired' | 'not-yet-valid' {
  if (now.getTime() < info.notBefore.getTime()) return 'not-yet-valid';
  if (now.getTime() > info.notAfter.getTime()) return 'expired';
  return 'valid';
}
