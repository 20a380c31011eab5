/**
 * `reconcile cert generate NAME [--type client|metrics] [--days N] [--cn CN] [--out-dir DIR]
 *  [--key-out PATH] [--cert-out PATH] [--force] [--allow-key-in-repo]` and `reconcile cert info FILE`.
 *
 * generate: an ECDSA P-384 self-signed certificate (src/pki/generate.ts) as NAME.crt and its key
 * as NAME.key, written atomically, the key with mode 0600; the key is never printed. A key that
 * would land in a Git work tree without an ignore rule is refused (one `git add` from a leak);
 * --force keeps the pair it replaces beside it (key 0600) for previous_certificate_file. The
 * output ends with the inventory entry to paste and the `incus remote add` of the seed's guide.
 * info: subject, issuer, SHA-256 fingerprint as Incus shows it (lowercase hex, no colons),
 * validity and days left. A file holding a private key is refused, not shown.
 *
 * Exports: HELP, run(argv: string[], io: CliIO): Promise<number>
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile } from '../../async-fs.js';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { parseCommandArgs, positiveInt } from '../args.js';
import { expandHome } from '../ansible-config.js';
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

export const HELP = `Usage: reconcile cert generate NAME [--type client|metrics] [--days N] [--cn CN] [--out-dir DIR]
                              [--key-out PATH] [--cert-out PATH] [--force] [--allow-key-in-repo]
       reconcile cert info FILE

generate   makes an ECDSA P-384 key pair and a self-signed certificate for Incus:
           DIR/NAME.crt (public: commit it, reference it as certificate_file) and
           DIR/NAME.key (private: mode 0600, never printed; keep it out of Git).
  --type client|metrics   what the certificate is for (default client)
  --days N                validity in days (default 3650)
  --cn CN                 common name (default NAME; metrics.local for --type metrics)
  --out-dir DIR           where to write (default the current folder; created if missing)
  --key-out PATH          write the key there instead (e.g. ~/.config/incus/client.key,
                          where the incus client looks for it)
  --cert-out PATH         write the certificate there instead
  --force                 replace an existing pair; the old one is kept beside it as
                          NAME.previous-DATE.crt / .key (key 0600), for previous_certificate_file
  --allow-key-in-repo     write the key into a Git work tree even where no ignore rule covers it
                          (refused by default: one 'git add' from a leaked key)

info       shows a certificate (PEM or DER): subject, issuer, SHA-256 fingerprint as Incus
           shows it (lowercase hex, no colons), validity and days left.

  -h, --help              this help
`;

const GENERATE_OPTIONS = {
  type: { type: 'string' },
  days: { type: 'string' },
  cn: { type: 'string' },
  'out-dir': { type: 'string' },
  'key-out': { type: 'string' },
  'cert-out': { type: 'string' },
  force: { type: 'boolean' },
  'allow-key-in-repo': { type: 'boolean' },
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
  const dir = values['out-dir'] ?? '.';
  const crtPath = values['cert-out'] !== undefined ? expandHome(values['cert-out'], io.env) : join(dir, `${name}.crt`);
  const keyPath = values['key-out'] !== undefined ? expandHome(values['key-out'], io.env) : join(dir, `${name}.key`);
  if (resolve(io.cwd, crtPath) === resolve(io.cwd, keyPath)) throw new UsageError(`cert generate: the certificate and the key cannot both be ${keyPath}`);
  const now = new Date();
  const replaced = [crtPath, keyPath].filter((p) => existsSync(resolve(io.cwd, p)));
  if (replaced.length > 0 && !values.force) throw new UsageError(`cert generate: ${replaced[0]} already exists; use --force to replace it`);
  const backups = replaced.map((p) => ({ from: p, to: previousName(p, now) }));
  for (const b of backups)
    if (existsSync(resolve(io.cwd, b.to))) throw new UsageError(`cert generate: ${b.to} already exists (a replacement in the same second); try again`);
  if (!values['allow-key-in-repo']) {
    for (const key of [keyPath, ...backups.filter((b) => b.from === keyPath).map((b) => b.to)]) await refuseUnignoredKey(key, io);
  }
  const pair = await generateSelfSigned({ commonName, validityDays: days, now, type });
  for (const path of [crtPath, keyPath]) await mkdir(dirname(resolve(io.cwd, path)), { recursive: true });
  // The pair being replaced is kept, never lost: copied (the key keeps 0600) before anything is written.
  for (const b of backups) await copyFile(resolve(io.cwd, b.from), resolve(io.cwd, b.to), constants.COPYFILE_EXCL);
  for (const b of backups.filter((x) => x.from === keyPath)) await chmod(resolve(io.cwd, b.to), 0o600);
  // Key first: a certificate on disk without its key would be useless to register.
  await writeFileAtomic(resolve(io.cwd, keyPath), pair.privateKeyPem, { mode: 0o600 });
  await writeFileAtomic(resolve(io.cwd, crtPath), pair.certificatePem, { mode: 0o644 });
  const kept = backups
    .map((b) => `kept the replaced ${b.from === keyPath ? 'key' : 'certificate'} as ${b.to}${b.from === keyPath ? ' (mode 0600)' : ''}\n`)
    .join('');
  io.stdout(
    `wrote ${crtPath} (certificate, ${type}) and ${keyPath} (private key, mode 0600: keep it out of Git)\n` +
      kept +
      describe(pair.info, now, crtPath) +
      nextSteps({ name, type, crtPath, keyPath, previousCrt: backups.find((b) => b.from === crtPath)?.to, days }),
  );
  return 0;
}

/** NAME.crt → NAME.previous-20261129T043000Z.crt: still matched by a `*.key` / `*.crt` rule. */
function previousName(path: string, now: Date): string {
  const stamp = `${now.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}.previous-${stamp}${ext}`;
}

/**
 * A key inside a Git work tree must be ignored there. Fails closed: a work tree where git cannot
 * say (git missing) is treated as not ignoring it.
 */
async function refuseUnignoredKey(keyPath: string, io: CliIO): Promise<void> {
  const absolute = resolve(io.cwd, keyPath);
  const root = workTreeOf(dirname(absolute));
  if (root === undefined) return;
  const ignored = await new Promise<boolean | undefined>((done) => {
    execFile('git', ['check-ignore', '-q', '--', relative(root, absolute)], { cwd: root }, (error) => {
      if (!error) return done(true);
      const code = (error as { code?: unknown }).code;
      done(code === 1 ? false : undefined);
    });
  });
  if (ignored) return;
  const ignoreFile = join(relative(io.cwd, dirname(absolute)) || '.', '.gitignore');
  const why = ignored === false ? 'no ignore rule covers it' : 'git could not say whether it is ignored';
  throw new UsageError(
    `cert generate: ${keyPath} would be inside the Git work tree ${root} and ${why}: one 'git add' from a leaked key.\n` +
      `  Keep the key out of the repository (--key-out ~/.config/incus/client.key), or ignore it: echo '*.key' >> ${ignoreFile}\n` +
      `  (--allow-key-in-repo writes it anyway)`,
  );
}

/** The folder holding `.git` (a folder, or a file for worktrees and submodules) at or above `dir`. */
function workTreeOf(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, '.git'))) return d;
    if (dirname(d) === d) return undefined;
  }
}

/** The seed guide's next steps: the inventory entry to paste, and how the client uses the pair. */
function nextSteps(p: { name: string; type: 'client' | 'metrics'; crtPath: string; keyPath: string; previousCrt?: string; days: number }): string {
  const entry =
    p.type === 'client'
      ? [
          'incus_trusted_clients:',
          `  - name: ${p.name}`,
          `    description: "${p.name}"`,
          `    certificate_file: ${p.crtPath}`,
          '    restricted: true',
          '    projects: [default]',
          ...(p.previousCrt ? [`    previous_certificate_file: ${p.previousCrt}`, `    previous_until: YYYY-MM-DD   # the old key works until then`] : []),
        ]
      : [
          'incus_metrics_certificates:',
          `  - name: ${p.name}`,
          `    certificate_file: ${p.crtPath}`,
          `    key_file: ${p.keyPath}`,
          `    validity_days: ${p.days}`,
        ];
  const lines = [
    '',
    'Next steps:',
    '  1. Add it to the inventory (paths are relative to the inventory folder: adjust them if it is not this one):',
    ...entry.map((l) => `       ${l}`),
    '  2. Deploy it: reconcile -i INVENTORY',
  ];
  if (p.type === 'client') {
    const standard = /(^|\/)\.config\/incus\/client\.key$/.test(p.keyPath);
    lines.push(
      standard
        ? '  3. On this client, add each server as a remote:'
        : `  3. On the client, the incus client reads ~/.config/incus/client.crt and client.key: put ${p.crtPath} and ${p.keyPath} there, then add each server:`,
      '       incus remote add REMOTE SERVER:8443 --accept-certificate',
    );
  }
  return lines.join('\n') + '\n';
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
