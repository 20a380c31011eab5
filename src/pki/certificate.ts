/**
 * Certificates as reconcile sees them: parsed from PEM, identified by the SHA-256 of their
 * DER bytes (as Incus does: lowercase hex, no colons), with their validity window.
 * Parsing uses Node's built-in X509Certificate (OpenSSL): @peculiar/x509 costs ~120 ms to import
 * and ~0.5 ms per parse in JavaScript, which every run paid for once per host and certificate
 * (BENCHMARKS.md). Generation, which needs it, is in generate.ts.
 */
import { createHash, X509Certificate } from 'node:crypto';

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
  return PRIVATE_KEY_MARKER.test(text); // every flavour: PRIVATE, EC/RSA PRIVATE, ENCRYPTED PRIVATE
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

/**
 * Parses DER bytes. The same certificate is parsed once per process (it is usually named for
 * many hosts and trusted by all of them): the returned object is shared, never mutate it.
 */
export function parseCertificateDer(der: Uint8Array): CertificateInfo {
  const derBase64 = Buffer.from(der).toString('base64');
  const known = parsed.get(derBase64);
  if (known) return known;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(der));
  } catch {
    // OpenSSL's own message ("PEM routines::no start line") would only confuse here.
    throw new CertificateParseError('not a valid X.509 certificate (its DER bytes do not decode)');
  }
  // What only `cert info` shows is worked out when first read (the public key's description
  // alone makes a key object): a run parses every certificate of the inventory at start.
  const info = {} as CertificateInfo;
  whenRead(info, 'subject', () => distinguishedName(cert.subject));
  whenRead(info, 'issuer', () => distinguishedName(cert.issuer));
  info.fingerprint = fingerprintOfDer(der);
  info.notBefore = new Date(cert.validFrom);
  info.notAfter = new Date(cert.validTo);
  whenRead(info, 'serialNumber', () => cert.serialNumber.toLowerCase());
  whenRead(info, 'publicKeyAlgorithm', () => describeKey(cert));
  info.pem = toPem(derBase64);
  info.derBase64 = derBase64;
  if (parsed.size >= PARSED_LIMIT) parsed.clear();
  parsed.set(derBase64, info);
  return info;
}

/** A property computed on first read, then kept (enumerable: JSON and comparisons see it). */
function whenRead<K extends keyof CertificateInfo>(info: CertificateInfo, key: K, compute: () => CertificateInfo[K]): void {
  Object.defineProperty(info, key, {
    enumerable: true,
    configurable: true,
    get() {
      const value = compute();
      Object.defineProperty(info, key, { value, enumerable: true, writable: false });
      return value;
    },
  });
}

/** Parsed certificates by DER (base64); bounded so a huge run cannot grow it without end. */
const parsed = new Map<string, CertificateInfo>();
const PARSED_LIMIT = 4096;

/** OpenSSL's one-RDN-per-line form (values already escaped) as `CN=a, O=b`, multi-valued RDNs as `OU=a+OU=b`. */
function distinguishedName(openssl: string): string {
  return openssl.split('\n').join(', ').replace(/ \+ /g, '+');
}

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** As WebCrypto names them: `ECDSA P-384`, `RSASSA-PKCS1-v1_5 2048`, `Ed25519`. */
function describeKey(cert: X509Certificate): string {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `ECDSA ${CURVE_NAMES[details.namedCurve ?? ''] ?? details.namedCurve ?? ''}`.trim();
    case 'rsa':
      return `RSASSA-PKCS1-v1_5 ${details.modulusLength ?? ''}`.trim();
    case 'rsa-pss':
      return `RSA-PSS ${details.modulusLength ?? ''}`.trim();
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    default:
      return key.asymmetricKeyType ?? 'unknown';
  }
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
