/**
 * `reconcile cert generate NAME [--type client|metrics] [--days N] [--cn CN] [--out-dir DIR] [--force]`
 * and `reconcile cert info FILE`.
 *
 * generate: an ECDSA P-384 self-signed certificate (src/pki/generate.ts) as NAME.crt and its key
 * as NAME.key, written atomically, the key with mode 0600; the key is never printed.
 * info: subject, issuer, SHA-256 fingerprint as Incus shows it (lowercase hex, no colons),
 * validity and days left. A file holding a private key is refused, not shown.
 *
 * Exports: HELP, run(argv: string[], io: CliIO): Promise<number>
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { UsageError } from '../../errors.js';
import { generateSelfSigned } from '../../pki/generate.js';
import {
  CertificateParseError,
  containsPrivateKey,
  daysLeft,
  parseCertificateDer,
  parseCertificatePem,
  validityAt,
  type CertificateInfo,
} from '../../pki/certificate.js';
import { writeFileAtomic } from '../write-atomic.js';

const MAX_VALIDITY_DAYS = 36_500;

export const HELP = `Usage: reconcile cert generate NAME [--type client|metrics] [--days N] [--cn CN] [--out-dir DIR] [--force]
       reconcile cert info FILE

generate   makes an ECDSA P-384 key pair and a self-signed certificate for Incus:
           DIR/NAME.crt (public: commit it, reference it as certificate_file) and
           DIR/NAME.key (private: mode 0600, never printed; keep it out of Git).
  --type client|metrics   what the certificate is for (default client)
  --days N                validity in days (default 3650)
  --cn CN                 common name (default NAME; metrics.local for --type metrics)
  --out-dir DIR           where to write (default the current folder; created if missing)
  --force                 replace existing NAME.crt / NAME.key

info       shows a certificate (PEM or DER): subject, issuer, SHA-256 fingerprint as Incus
           shows it (lowercase hex, no colons), validity and days left.

  -h, --help              this help
`;

const GENERATE_OPTIONS = {
  type: { type: 'string' },
  days: { type: 'string' },
  cn: { type: 'string' },
  'out-dir': { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const INFO_OPTIONS = { help: { type: 'boolean', short: 'h' } } as const;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout(HELP);
    return sub === undefined ? 1 : 0;
  }
  if (sub === 'generate') return generate(rest, io);
  if (sub === 'info') return info(rest, io);
  throw new UsageError(`cert: unknown sub-command '${sub}' (generate or info; see 'reconcile cert --help')`);
}

async function generate(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('cert', argv, GENERATE_OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("cert generate: give exactly one NAME (see 'reconcile cert --help')");
  const name = positionals[0]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UsageError(`cert generate: NAME '${name}' must be letters, digits, '.', '_' or '-' (it names the files NAME.crt and NAME.key)`);
  }
  const type = values.type ?? 'client';
  if (type !== 'client' && type !== 'metrics') throw new UsageError(`cert generate: --type is client or metrics, not '${type}'`);
  const days = positiveInt('cert generate', '--days', values.days, 3650);
  // X.509 validity ends at year 9999 (GeneralizedTime); a hundred years is more than any use.
  if (days > MAX_VALIDITY_DAYS) throw new UsageError(`cert generate: --days takes at most ${MAX_VALIDITY_DAYS} (100 years), not '${values.days}'`);
  const commonName = values.cn ?? (type === 'metrics' ? 'metrics.local' : name);
  if (commonName === '') throw new UsageError('cert generate: --cn must not be empty');
  const dir = values['out-dir'] ?? io.cwd;
  const crtPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  if (!values.force) {
    for (const p of [crtPath, keyPath]) {
      if (existsSync(p)) throw new UsageError(`cert generate: ${p} already exists; use --force to replace it`);
    }
  }
  const pair = await generateSelfSigned({ commonName, validityDays: days, now: new Date(), type });
  await mkdir(dir, { recursive: true });
  // Key first: a certificate on disk without its key would be useless to register.
  await writeFileAtomic(keyPath, pair.privateKeyPem, { mode: 0o600 });
  await writeFileAtomic(crtPath, pair.certificatePem, { mode: 0o644 });
  io.stdout(`wrote ${crtPath} (certificate, ${type}) and ${keyPath} (private key, mode 0600: keep it out of Git)\n` + describe(pair.info, new Date(), crtPath));
  return 0;
}

async function info(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('cert', argv, INFO_OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("cert info: give exactly one FILE (see 'reconcile cert --help')");
  const file = positionals[0]!;
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cert info: cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`);
  }
  const text = bytes.toString('utf8');
  if (containsPrivateKey(text)) {
    throw new UsageError(`cert info: ${file} holds a private key; it is not shown (give the certificate file)`);
  }
  let cert: CertificateInfo;
  try {
    // PEM, or DER as some tools export it (a DER certificate starts with a SEQUENCE, 0x30).
    cert = !text.includes('-----BEGIN') && bytes[0] === 0x30 ? parseCertificateDer(bytes) : parseCertificatePem(text);
  } catch (e) {
    if (e instanceof CertificateParseError) throw new UsageError(`cert info: ${file}: ${e.message}`);
    throw e;
  }
  io.stdout(describe(cert, new Date(), file));
  return 0;
}

function describe(cert: CertificateInfo, now: Date, file: string): string {
  const validity = validityAt(cert, now);
  const left = daysLeft(cert, now);
  const status = validity === 'valid' ? 'valid' : validity === 'expired' ? `EXPIRED ${-left} days ago` : 'NOT YET VALID';
  return (
    [
      `File:         ${file}`,
      `Subject:      ${cert.subject}`,
      `Issuer:       ${cert.issuer}`,
      `Fingerprint:  ${cert.fingerprint}`,
      `Key:          ${cert.publicKeyAlgorithm}`,
      `Serial:       ${cert.serialNumber}`,
      `Not before:   ${cert.notBefore.toISOString()}`,
      `Not after:    ${cert.notAfter.toISOString()}`,
      `Days left:    ${left}`,
      `Status:       ${status}`,
    ].join('\n') + '\n'
  );
}
