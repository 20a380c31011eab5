/**
 * Key pair and self-signed certificate generation (ECDSA P-384, as Incus recommends and
 * the Terraform metrics module users know does). The clock is a parameter.
 */
import { KeyObject, webcrypto, randomBytes } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { loadModule } from '../embedded.js';
import { parseCertificatePem, type CertificateInfo } from './certificate.js';

/** @peculiar/x509 takes ~120 ms to import: loaded only when a key pair is really generated. */
function loadX509(): typeof X509 {
  const x509 = loadModule<typeof X509>('@peculiar/x509', import.meta.url);
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return x509;
}

export interface GenerateOptions {
  commonName: string;
  validityDays: number;
  now: Date;
  /** 'client' and 'metrics' certificates both need clientAuth; metrics is only an Incus trust type. */
  type: 'client' | 'metrics';
}

export interface GeneratedPair {
  certificatePem: string;
  /** PKCS#8 PEM. Never print or log it. */
  privateKeyPem: string;
  info: CertificateInfo;
}

export async function generateSelfSigned(options: GenerateOptions): Promise<GeneratedPair> {
  const x509 = loadX509();
  const alg = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(options.now.getTime() - 60_000); // tolerate small clock skew
  const notAfter = new Date(options.now.getTime() + options.validityDays * 86_400_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${escapeDnValue(options.commonName)}`,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
    ],
  });
  const privateKeyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  const certificatePem = cert.toString('pem') + '\n';
  return { certificatePem, privateKeyPem, info: parseCertificatePem(certificatePem) };
}

function escapeDnValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1');
}
