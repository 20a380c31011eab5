/**
 * Applies a qubes_prometheus_proxy plan on dom0, in plan order, stopping at the first failure.
 *
 * The policy file is replaced so that qrexec never sees a broken or half-written file (one
 * syntax error, or one badly named file in the folder, makes it deny every call):
 *   1. the rendered text passes our syntax checker (policy-syntax.ts);
 *   2. the current file is copied to `.NAME.reconcile-backup` — a name starting with `.`,
 *      which qrexec ignores (a `NAME.bak` would be read as policy by older qrexec);
 *   3. HostSession.writeFile writes a temporary `.reconcile-*` file in the same folder (also
 *      ignored by qrexec), runs the check below on it, and renames it into place, mode 0664,
 *      owner root:qubes. A failed check leaves the old file untouched.
 * The check reads the temporary file back and compares its SHA-256 with the checked text,
 * then runs `qubes-policy-lint` on it where dom0 has that tool (qubes-core-qrexec ≥ 4.2).
 */
import { createHash, randomBytes } from 'node:crypto';
import { TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import type { ApplyHooks, Precondition } from '../types.js';
import { POLICY_GROUP, POLICY_MODE, POLICY_OWNER, PROXY_SERVICE } from './model.js';
import { checkPolicySyntax } from './policy-syntax.js';
import type { PolicyFileActionData, QubesPlan } from './plan.js';

/** Temporary files start with `.` so qrexec skips them while they exist. */
export const TEMP_PREFIX = '.reconcile-';

/** Argv run on dom0 against the temporary file (`{}`), given the expected SHA-256. */
export function policyCheckCommand(expectedSha256: string): string[] {
  const script = [
    'got=$(sha256sum < "$1") || exit 1',
    'if [ "${got%% *}" != "$2" ]; then echo "read-back check: $1 does not hold the checked text" >&2; exit 1; fi',
    'if command -v qubes-policy-lint >/dev/null 2>&1; then qubes-policy-lint "$1" 1>&2 || exit 1; fi',
  ].join('\n');
  return ['sh', '-c', script, 'reconcile-policy-check', '{}', expectedSha256];
}

const BACKUP_SCRIPT = 'cp -p -- "$1" "$2" && mv -f -T -- "$2" "$3" || { rm -f -- "$2"; exit 1; }';

/** Where the previous policy file is kept: same folder, hidden from qrexec. */
export function backupPathOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.reconcile-backup`;
}

export async function applyQubesProxy(session: HostSession, plan: QubesPlan, hooks: ApplyHooks): Promise<void> {
  for (const action of plan.actions) {
    if (!action.applies || !action.payload) continue;
    hooks.actionStarted(action);
    const data = action.payload;
    if (data.type === 'policy-file') await writePolicyFile(session, data, action.precondition);
    else await setProxyService(session, data.vm, data.enable !== false);
    hooks.actionApplied(action);
  }
}

async function writePolicyFile(session: HostSession, data: PolicyFileActionData, precondition: Precondition | undefined): Promise<void> {
  const host = session.spec.host;
  if (precondition) {
    // The file must still be the one the plan read: a policy nobody reviewed is not replaced.
    const now = await session.readFile(data.path, `read policy file ${data.path}`, true);
    const digest = now === undefined ? null : createHash('sha256').update(now).digest('hex');
    if (digest !== precondition.digest) {
      throw new TransportError(
        host,
        `write policy file ${data.path}`,
        `${data.path} changed since the plan was made (${now === undefined ? 'removed' : 'other content'}); left as it is — plan again`,
      );
    }
  }
  const syntax = checkPolicySyntax(data.content);
  if (syntax.length > 0) {
    throw new TransportError(host, `check policy file ${data.path}`, syntax.map((e) => `line ${e.line}: ${e.message}`).join('; '));
  }
  if (data.exists) {
    const step = `back up policy file ${data.path}`;
    // Copied to a fresh hidden name, then renamed over the backup: a link planted at the backup's
    // name is replaced, never written through (root writes here).
    const temp = `${backupPathOf(data.path)}.${randomBytes(6).toString('hex')}`;
    const copy = await session.exec(['sh', '-c', BACKUP_SCRIPT, 'sh', data.path, temp, backupPathOf(data.path)], step, { privileged: true });
    if (copy.exitCode !== 0) throw new TransportError(host, step, copy.stderr.trim() || `cp exited with ${copy.exitCode}`);
  }
  const sha256 = createHash('sha256').update(data.content, 'utf8').digest('hex');
  await session.writeFile(data.path, data.content, `write policy file ${data.path}`, {
    mode: POLICY_MODE,
    owner: POLICY_OWNER,
    group: POLICY_GROUP,
    // Kept above under a name qrexec ignores; the transport's PATH.bak would not be.
    backup: false,
    check: policyCheckCommand(sha256),
    tempPrefix: TEMP_PREFIX,
  });
}

async function setProxyService(session: HostSession, vm: string, enable: boolean): Promise<void> {
  const step = `${enable ? 'enable' : 'disable'} ${PROXY_SERVICE} in ${vm}`;
  const result = await session.exec(['qvm-service', enable ? '--enable' : '--disable', vm, PROXY_SERVICE], step, { privileged: true });
  if (result.exitCode !== 0) throw new TransportError(session.spec.host, step, result.stderr.trim() || `qvm-service exited with ${result.exitCode}`);
}
