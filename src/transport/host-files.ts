/**
 * Files on a host, over exec channels only (so they work the same over SSH, through sudo, and
 * locally). Content travels on the command's standard input, never in its argv. A write is
 * atomic: temporary file in the target's folder, optional check, backup of the old file (a
 * hard link, so the old inode is kept as it was), then rename. Nothing is ever written through a
 * symbolic link: the temporary file is created fresh, and the target and its backup are replaced
 * by rename, which replaces a link itself.
 */
import { randomBytes } from 'node:crypto';
import { TransportError } from '../errors.js';
import type { ExecOptions, ExecResult, WriteFileOptions } from './types.js';

type Exec = (argv: string[], step: string, options?: ExecOptions) => Promise<ExecResult>;

const MISSING = 3;
const CHECK_FAILED = 4;

// Constant scripts; every value reaches them as a positional parameter ("$1" …).
// "Missing" must not be confused with "not allowed" (a folder on the way that cannot be searched
// also makes `test -e` false): ask cat, in the C locale, and tell the two apart by its message.
const READ_SCRIPT = [
  'exec 3>&1',
  'if err=$(LC_ALL=C cat -- "$1" 2>&1 >&3); then exit 0; fi',
  `case $err in *"No such file or directory"*) exit ${MISSING} ;; esac`,
  'printf "%s\\n" "$err" >&2',
  'exit 1',
].join('\n');
const WRITE_SCRIPT = [
  'set -e',
  'target=$1 tmp=$2 mode=$3 owner=$4 group=$5 backup=$6',
  'shift 6',
  'trap \'rm -f -- "$tmp" "$tmp.bak"\' EXIT',
  'umask 077',
  // noclobber: the temporary file is created, never an existing one (or what a link points to) written.
  'set -C',
  'cat > "$tmp"',
  'chmod "$mode" "$tmp"',
  'if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi',
  'if [ -n "$group" ]; then chgrp -- "$group" "$tmp"; fi',
  `if [ $# -gt 0 ]; then if ! "$@" >&2; then exit ${CHECK_FAILED}; fi; fi`,
  // The backup replaces whatever is at NAME.bak by rename, never writes through a link planted there.
  'if [ "$backup" = 1 ] && [ -e "$target" ]; then ln -f -- "$target" "$target.bak" 2>/dev/null || { cp -p -- "$target" "$tmp.bak" && mv -f -- "$tmp.bak" "$target.bak"; }; fi',
  'mv -f -- "$tmp" "$target"',
  'trap - EXIT',
].join('\n');

export async function readHostFile(host: string, exec: Exec, path: string, step: string, privileged = false): Promise<Buffer | undefined> {
  const r = await exec(['sh', '-c', READ_SCRIPT, 'sh', path], step, { privileged });
  if (r.exitCode === MISSING) return undefined;
  if (r.exitCode !== 0) throw new TransportError(host, step, `cannot read ${path}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return r.stdout;
}

export async function writeHostFile(
  host: string,
  exec: Exec,
  path: string,
  content: string | Buffer,
  step: string,
  options: WriteFileOptions & { privileged?: boolean },
): Promise<void> {
  const slash = path.lastIndexOf('/');
  if (slash < 0) throw new TransportError(host, step, `not an absolute path: ${path}`);
  const dir = path.slice(0, slash) || '/';
  const temp = `${dir === '/' ? '' : dir}/${options.tempPrefix ?? '.reconcile-'}${randomBytes(6).toString('hex')}`;
  const check = (options.check ?? []).map((a) => (a === '{}' ? temp : a));
  const argv = [
    'sh',
    '-c',
    WRITE_SCRIPT,
    'sh',
    path,
    temp,
    options.mode.toString(8).padStart(4, '0'),
    options.owner ?? '',
    options.group ?? '',
    options.backup ? '1' : '0',
    ...check,
  ];
  const r = await exec(argv, step, { stdin: content, privileged: options.privileged });
  if (r.exitCode === CHECK_FAILED) {
    throw new TransportError(
      host,
      step,
      `${path}: the check \`${(options.check ?? []).join(' ')}\` refused the new content; the old file is unchanged: ${r.stderr.trim()}`,
    );
  }
  if (r.exitCode !== 0) throw new TransportError(host, step, `cannot write ${path}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}
