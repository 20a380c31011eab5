/**
 * `reconcile import -i INVENTORY --out-dir DIR (--names NAME[,NAME…] | --all-unmanaged)
 *  [--write FILE] [--limit PATTERN] [--forks N] [--accept-new-host-keys]`
 *
 * Terraform's import for trust stores: what hosts trust today but the inventory does not name
 * becomes inventory entries. Reads the selected hosts (src/cli/trust-stores.ts), chooses what to
 * import (src/modules/incus-trust/import.ts, pure), writes each public certificate under DIR
 * (never over another file), then prints the entries or inserts them into FILE
 * (src/inventory/insert-entries.ts, every other byte kept).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ansibleSettings, inventoryOf } from '../ansible-config.js';
import { mkdir, readFile, writeFile } from '../../async-fs.js';
import { join, relative, resolve, sep } from 'node:path';
import { stringify } from 'yaml';
import { parseCommandArgs, positiveInt } from '../args.js';
import type { CliIO } from '../io.js';
import { transportOptions } from '../transport-options.js';
import { readTrustStores } from '../trust-stores.js';
import { writeFileAtomic } from '../write-atomic.js';
import { formatProblem, InventoryError, UsageError } from '../../errors.js';
import { insertListItems } from '../../inventory/insert-entries.js';
import { loadInventory, readInventoryFile } from '../../inventory/load.js';
import type { Inventory } from '../../inventory/model.js';
import { selectHosts } from '../../inventory/patterns.js';
import { loadInventoryValidator, validateInventory } from '../../inventory/validate.js';
import { certificateFileName, planImport, type HostTrustRead, type ImportedCertificate } from '../../modules/incus-trust/import.js';
import type { DesiredTrust } from '../../modules/incus-trust/model.js';
import { MODULES } from '../../modules/registry.js';
import { CertificateParseError, parseCertificatePem } from '../../pki/certificate.js';
import { printableField } from '../../render/printable.js';

export const HELP = `Usage: reconcile import -i INVENTORY --out-dir DIR (--names NAME[,NAME…] | --all-unmanaged)
                        [--write FILE] [--limit PATTERN] [--forks N] [--accept-new-host-keys]

Brings the certificates that hosts trust today but the inventory does not name under
management, as terraform import does: reads the trust store of the selected hosts, writes each
public certificate to DIR (named after it; never over another file), and prints the
incus_trusted_clients entries that make the next --check plan nothing for them — or, with
--write FILE, inserts them into FILE's incus_trusted_clients list, keeping every other byte.
A certificate trusted differently on two hosts, or two certificates under one name, is
reported and left out, never guessed.

  -i, --inventory PATH     Ansible YAML inventory (file or folder)
  --out-dir DIR            where the certificate files go (created if missing)
  --names NAME[,NAME…]     import the unmanaged certificates of these names (repeatable)
  --all-unmanaged          import every unmanaged certificate
  --write FILE             insert the entries into FILE, an inventory file or a
                           group_vars/host_vars file of the inventory
  --limit PATTERN          hosts to read (default: every host whose trust store the
                           inventory manages)
  --forks N                hosts read in parallel (default 10)
  --accept-new-host-keys   record host keys never seen before in known_hosts
  -h, --help               this help

Exit codes: 0 everything asked for was imported; 1 a host could not be read, a certificate
was left out, a name was not found, or bad input.
`;

const OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  'out-dir': { type: 'string' },
  names: { type: 'string', multiple: true },
  'all-unmanaged': { type: 'boolean' },
  write: { type: 'string' },
  limit: { type: 'string', short: 'l' },
  forks: { type: 'string', short: 'f' },
  'accept-new-host-keys': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const KEY = 'incus_trusted_clients';

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('import', argv, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const see = "(see 'reconcile import --help')";
  // -i, else ansible.cfg's inventory or ANSIBLE_INVENTORY, as Ansible finds them.
  const ansible = ansibleSettings(io);
  const inventoryArg = values.inventory ?? inventoryOf(undefined, ansible, io, 'import');
  if (positionals.length > 0) throw new UsageError(`import: unexpected argument '${positionals[0]}' ${see}`);
  if (!values['out-dir']) throw new UsageError(`import: --out-dir DIR is required: the certificate files are written there ${see}`);
  const names = values.names?.flatMap((n) => n.split(',')).map((n) => n.trim());
  if ((names === undefined) === !values['all-unmanaged']) throw new UsageError(`import: say what to import: --names NAME[,NAME…] or --all-unmanaged ${see}`);
  if (names?.some((n) => n === '')) throw new UsageError('import: --names has an empty name');
  const forks = positiveInt('import', '--forks', values.forks, 10);
  const now = new Date();

  const inventory = await loadInventory(resolve(io.cwd, inventoryArg));
  await loadInventoryValidator();
  const problems = validateInventory(inventory, now, (rel) => readInventoryFile(inventory, rel), MODULES);
  if (problems.some((p) => p.severity === 'error')) throw new InventoryError(problems);
  for (const p of problems) io.stderr(formatProblem(p) + '\n');
  const writeTo = values.write === undefined ? undefined : resolve(io.cwd, values.write);
  if (writeTo !== undefined && !inventory.files.includes(writeTo)) {
    throw new UsageError(
      `import: --write ${values.write} is not a file of the inventory ${inventoryArg}; give the inventory file or the group_vars/host_vars file the entries belong in`,
    );
  }

  const desiredOf = desiredTrust(inventory, now);
  const hosts = hostsToRead(inventory, values.limit, desiredOf);
  const reads = await readTrustStores(hosts, transportOptions(io, values['accept-new-host-keys'] ?? false, { settings: ansible }), forks);
  let failed = false;
  const readable: HostTrustRead[] = [];
  for (const read of reads) {
    if ('error' in read) {
      failed = true;
      io.stderr(`${read.host.name}: ${read.error.unreachable ? 'unreachable' : 'failed'}: ${printableField(`${read.error.step}: ${read.error.message}`)}\n`);
      continue;
    }
    const desired = desiredOf(read.host.name);
    readable.push({ host: read.host.name, observed: read.observed, ...(desired ? { desired } : {}) });
  }

  const result = planImport(readable, names ? { names } : {}, now);
  for (const line of result.refused) io.stderr(`import: left out: ${printableField(line)}\n`);
  for (const name of result.notFound) io.stderr(`import: no unmanaged certificate named "${printableField(name)}" on the hosts read\n`);
  failed ||= result.refused.length > 0 || result.notFound.length > 0;
  if (result.certificates.length === 0) {
    io.stdout(
      `nothing to import: the hosts read (${readable.map((r) => r.host).join(', ') || 'none'}) trust no unmanaged certificate${names ? ' of those names' : ''}\n`,
    );
    return failed ? 1 : 0;
  }

  const outDir = resolve(io.cwd, values['out-dir']);
  const entries: Record<string, unknown>[] = [];
  for (const c of result.certificates) {
    const file = await writeCertificate(outDir, c);
    io.stdout(
      `${file.written ? 'wrote' : 'kept'} ${shownPath(file.path, io.cwd)}${file.written ? '' : ' (already there: the same certificate)'}: "${printableField(c.entry.name)}" [${c.fingerprint.slice(0, 12)}], trusted on ${c.hosts.join(', ')}\n`,
    );
    entries.push(entryOf(c, relative(inventory.baseDir, file.path).split(sep).join('/')));
  }

  if (writeTo === undefined) {
    io.stdout(
      `\nAdd to the inventory (certificate_file is relative to its folder), or run again with --write FILE:\n${stringify({ [KEY]: entries }, { version: '1.1', lineWidth: 0 })}`,
    );
    return failed ? 1 : 0;
  }
  const before = await readFile(writeTo, 'utf8');
  const kind = /(^|[\\/])(group|host)_vars[\\/]/.test(relative(inventory.baseDir, writeTo)) ? 'vars' : 'inventory';
  const inserted = insertListItems(before, KEY, entries, kind);
  if ('error' in inserted) {
    io.stdout(`\nThese entries belong in ${KEY}:\n${stringify({ [KEY]: entries }, { version: '1.1', lineWidth: 0 })}`);
    throw new UsageError(`import: cannot insert into ${values.write}: ${inserted.error}; the certificate files are written, paste the entries above by hand`);
  }
  const mode = statSync(writeTo).mode & 0o777;
  await writeFileAtomic(writeTo, inserted.text, { mode });
  let after: (host: string) => DesiredTrust | undefined;
  let hidden: string[];
  try {
    after = desiredTrust(await loadInventory(resolve(io.cwd, inventoryArg)), now);
    hidden = hiddenEntries(inventory, desiredOf, after);
  } catch (e) {
    // The inventory as written cannot be read back: the file goes back to what it was.
    await writeFileAtomic(writeTo, before, { mode });
    throw e;
  }
  if (hidden.length > 0) {
    // Ansible does not merge lists: a host's own incus_trusted_clients replaces its groups'.
    await writeFileAtomic(writeTo, before, { mode });
    throw new UsageError(
      `import: writing into ${values.write} would replace the ${KEY} that ${hidden.join('; ')}: Ansible does not merge lists, the nearer definition wins. ${values.write} is left as it was; write into the file that defines the list those hosts get`,
    );
  }
  io.stdout(`added ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} to ${KEY} in ${values.write} (from line ${inserted.line})\n`);
  reportNewReach(
    inventory,
    after,
    result.certificates,
    hosts.map((h) => h.name),
    io,
  );
  return failed ? 1 : 0;
}

/** Hosts that would lose entries they had, each as "h1 gets from hosts.yaml:12 ("alice")". */
function hiddenEntries(inventory: Inventory, before: (host: string) => DesiredTrust | undefined, after: (host: string) => DesiredTrust | undefined): string[] {
  const out: string[] = [];
  for (const host of inventory.hosts.keys()) {
    const has = new Set(after(host)?.certificates.map((c) => c.name) ?? []);
    const lost = (before(host)?.certificates ?? []).filter((c) => !has.has(c.name));
    if (lost.length === 0) continue;
    const at = lost[0]!.location;
    out.push(`${host} gets from ${at.file}:${at.line} (${lost.map((c) => `"${printableField(c.name)}"`).join(', ')})`);
  }
  return out;
}

/** Relative to the working folder when inside it, else absolute (never a run of ../..). */
function shownPath(path: string, cwd: string): string {
  const r = relative(cwd, path);
  return r === '' || r.startsWith('..') ? path : r;
}

/** Each host's desired trust, or undefined where the inventory does not manage its store. */
function desiredTrust(inventory: Inventory, now: Date): (host: string) => DesiredTrust | undefined {
  const ctx = { inventory, readInventoryFile: (rel: string) => readInventoryFile(inventory, rel), now };
  return (name) => MODULES.incus_trust.desired(inventory.hosts.get(name)!, ctx).desired as DesiredTrust | undefined;
}

function hostsToRead(inventory: Inventory, limit: string | undefined, desiredOf: (host: string) => DesiredTrust | undefined) {
  if (limit !== undefined) {
    const selection = selectHosts(inventory, limit);
    if (selection.hosts.length === 0) throw new UsageError(`import: --limit "${limit}" leaves no host to read`);
    return selection.hosts.map((n) => inventory.hosts.get(n)!);
  }
  const managed = [...inventory.hosts.values()].filter((h) => desiredOf(h.name) !== undefined);
  if (managed.length === 0) {
    throw new UsageError("import: no host of the inventory manages an Incus trust store yet: say which to read with --limit (a group such as 'incus')");
  }
  return managed;
}

/** DIR/NAME.crt, or the existing file when it holds the same certificate; never over another one. */
async function writeCertificate(outDir: string, c: ImportedCertificate): Promise<{ path: string; written: boolean }> {
  let parsedFingerprint: string;
  try {
    parsedFingerprint = parseCertificatePem(c.pem).fingerprint;
  } catch (e) {
    if (!(e instanceof CertificateParseError)) throw e;
    throw new UsageError(`import: the host returned a certificate for "${c.entry.name}" that does not parse (${e.message}); nothing was written for it`);
  }
  if (parsedFingerprint !== c.fingerprint.toLowerCase()) {
    throw new UsageError(
      `import: the PEM the host returned for "${c.entry.name}" has fingerprint ${parsedFingerprint}, not ${c.fingerprint}; nothing was written for it`,
    );
  }
  await mkdir(outDir, { recursive: true });
  const holds = (fileName: string): 'free' | 'same' | 'other' => {
    const path = join(outDir, fileName);
    if (!existsSync(path)) return 'free';
    try {
      return parseCertificatePem(readSmallText(path)).fingerprint === parsedFingerprint ? 'same' : 'other';
    } catch {
      return 'other';
    }
  };
  const name = certificateFileName(c.entry.name, c.fingerprint, holds);
  const path = join(outDir, name);
  if (holds(name) === 'same') return { path, written: false };
  const pem = c.pem.endsWith('\n') ? c.pem : `${c.pem}\n`;
  try {
    await writeFile(path, pem, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`import: ${path} exists and holds another certificate; it is left as it is`);
    throw e;
  }
  return { path, written: true };
}

/** A certificate file as text; anything larger than a certificate could be is not one. */
function readSmallText(path: string): string {
  return statSync(path).size > 1_000_000 ? '' : readFileSync(path, 'utf8');
}

/** The entry the next --check reads back as exactly what the hosts trust. */
function entryOf(c: ImportedCertificate, certificateFile: string): Record<string, unknown> {
  const e = c.entry;
  return {
    name: e.name,
    ...(e.type !== 'client' ? { type: e.type } : {}),
    ...(e.description !== '' ? { description: e.description } : {}),
    certificate_file: certificateFile,
    ...(e.restricted ? { restricted: true } : {}),
    ...(e.projects.length > 0 ? { projects: e.projects } : {}),
  };
}

/**
 * After --write: the hosts the new entries now reach but that did not trust the certificate
 * (a list under all.vars reaches every host): the next apply adds it there, which the user
 * should know before running it.
 */
function reportNewReach(
  inventory: Inventory,
  desiredOf: (host: string) => DesiredTrust | undefined,
  imported: ImportedCertificate[],
  read: string[],
  io: CliIO,
): void {
  for (const c of imported) {
    const reached = [...inventory.hosts.keys()].filter((h) => desiredOf(h)?.certificates.some((d) => d.certificate?.fingerprint === c.fingerprint));
    const added = reached.filter((h) => !c.hosts.includes(h));
    if (added.length === 0) continue;
    const unread = added.filter((h) => !read.includes(h));
    const known = added.filter((h) => read.includes(h));
    const parts = [
      ...(known.length ? [`${known.join(', ')}, which do${known.length === 1 ? 'es' : ''} not trust it today`] : []),
      ...(unread.length ? [`${unread.join(', ')}, which ${unread.length === 1 ? 'was' : 'were'} not read`] : []),
    ];
    io.stderr(
      `import: warning: the entry "${printableField(c.entry.name)}" now also reaches ${parts.join(', and ')}: the next apply adds it there (see --check)\n`,
    );
  }
}
