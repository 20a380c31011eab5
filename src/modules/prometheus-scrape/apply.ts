/**
 * Applies a prometheus_scrape plan on a Prometheus host, in plan order:
 *   1. the new pair beside the old one (key 0600 with its owner, written atomically); during a
 *      rotation it first waits until every Incus target accepts the new certificate, so the
 *      switch never makes a target go down;
 *   2. prometheus.yml, checked by promtool on the temporary file, renamed into place with a
 *      backup, then Prometheus reloaded (command, or POST /-/reload);
 *   3. only then the pair files no longer used are removed, and the deployment recorded.
 * The first failure throws (TransportError naming host and step); later actions stay undone,
 * and since the old pair and configuration are untouched until step 2, Prometheus keeps working.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lazyBuiltins } from '../../builtins.js';
import { InternalError, TransportError } from '../../errors.js';
import type { HostSession } from '../../transport/types.js';
import { keyMatchesCertificate, recordDeployment } from '../incus-trust/metrics-keys.js';
import type { ApplyContext, ApplyHooks, Precondition } from '../types.js';
import { FINGERPRINT_IN_NAME, UNKNOWN_FINGERPRINT } from './desired.js';
import type { PendingPair, ReloadSpec, ScrapePayload } from './model.js';
import type { ScrapePlan } from './plan.js';

export async function applyScrape(session: HostSession, plan: ScrapePlan, hooks: ApplyHooks, ctx: ApplyContext): Promise<void> {
  const host = session.spec.host;
  for (const action of plan.actions) {
    if (!action.applies) continue;
    if (!action.payload) throw new InternalError(`prometheus_scrape action ${action.action} ${action.name} carries no payload`);
    hooks.actionStarted(action);
    const data = resolvePending(action.payload, ctx, host);
    switch (data.op) {
      case 'pair':
        await deployPair(session, data);
        break;
      case 'key-attributes': {
        const step = `set owner and mode of ${data.keyPath}`;
        // As root on the Prometheus host: never through a symbolic link someone put in its place.
        await run(session, ['sh', '-c', KEY_ATTRIBUTES_SCRIPT, 'sh', data.keyPath, `${data.owner}:${data.group}`], step);
        break;
      }
      case 'config':
        await refuseIfFileMoved(session, data.configFile, action.precondition);
        await session.writeFile(data.configFile, data.configText, `write ${data.configFile}`, {
          mode: data.mode,
          ...(data.owner ? { owner: data.owner, group: data.group } : {}),
          backup: true,
          check: data.promtool ? [data.promtool, 'check', 'config', '{}'] : undefined,
        });
        await reload(session, data.reload);
        break;
      case 'remove-file':
        await run(session, ['rm', '-f', data.path], `remove ${data.path}`);
        break;
      case 'record':
        if (!data.fingerprint) throw new InternalError(`${host}: the metrics pair was not generated before apply`);
        try {
          await recordDeployment(data.localCertificateFile, data.host, data.fingerprint);
        } catch (e) {
          throw new TransportError(host, `record deployment in ${data.localCertificateFile}.deployed`, (e as Error).message);
        }
        break;
    }
    hooks.actionApplied(action);
  }
}

/**
 * Values "known after apply": a pair the controller generated in this apply gives its
 * certificate and fingerprint to the file names and the configuration planned with a placeholder.
 */
function resolvePending(data: ScrapePayload, ctx: ApplyContext, host: string): ScrapePayload {
  if (!('pending' in data) || !data.pending) return data;
  const made = ctx.certificate(data.pending.certificatePath);
  if (!made)
    throw new TransportError(host, 'deploy the metrics pair', `its key pair (${data.pending.certificatePath}) was not generated: see the controller's error`);
  const fill = (text: string) => fillFingerprint(text, data.pending!, made.fingerprint);
  switch (data.op) {
    case 'pair':
      return { ...data, certPath: fill(data.certPath), keyPath: fill(data.keyPath), certificatePem: made.pem, pending: undefined };
    case 'config':
      return { ...data, configText: fill(data.configText), pending: undefined };
    case 'record':
      return { ...data, fingerprint: made.fingerprint, pending: undefined };
  }
}

/** `PREFIX-(known after apply)` → `PREFIX-FP12` (file names), then any other placeholder → the whole fingerprint. */
export function fillFingerprint(text: string, pending: PendingPair, fingerprint: string): string {
  return text
    .split(`${pending.filePrefix}-${UNKNOWN_FINGERPRINT}`)
    .join(`${pending.filePrefix}-${fingerprint.slice(0, FINGERPRINT_IN_NAME)}`)
    .split(UNKNOWN_FINGERPRINT)
    .join(fingerprint);
}

/** The file must still be what the plan read (its SHA-256, or absent): a version nobody reviewed is not overwritten. */
async function refuseIfFileMoved(session: HostSession, path: string, precondition: Precondition | undefined): Promise<void> {
  if (!precondition) return;
  const now = await session.readFile(path, `read ${path}`, true);
  const digest = now === undefined ? null : createHash('sha256').update(now).digest('hex');
  if (digest !== precondition.digest) {
    throw new TransportError(
      session.spec.host,
      `write ${path}`,
      `${path} changed since the plan was made (${now === undefined ? 'removed' : 'other content'}); left as it is — plan again`,
    );
  }
}

async function deployPair(session: HostSession, data: Extract<ScrapePayload, { op: 'pair' }>): Promise<void> {
  const host = session.spec.host;
  if (!data.certificatePem) throw new InternalError(`${host}: the metrics pair was not generated before apply`);
  let key: Buffer;
  try {
    key = readFileSync(data.localKeyFile);
  } catch (e) {
    throw new TransportError(host, 'read the metrics key', `${data.localKeyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!keyMatchesCertificate(key.toString('utf8'), data.certificatePem)) {
    throw new TransportError(host, 'read the metrics key', `${data.localKeyFile} is not the key of the certificate`);
  }
  if (data.rotating && data.trustWaitSeconds > 0) {
    await waitUntilTrusted(host, data.targets, data.certificatePem, key, data.trustWaitSeconds);
  }
  await run(session, ['mkdir', '-p', data.certDir], `create ${data.certDir}`);
  await session.writeFile(data.keyPath, key, `write ${data.keyPath}`, { mode: 0o600, owner: data.owner, group: data.group, backup: false });
  await session.writeFile(data.certPath, data.certificatePem, `write ${data.certPath}`, { mode: 0o644, backup: false });
}

const KEY_ATTRIBUTES_SCRIPT = [
  'if [ -L "$1" ]; then echo "$1 is a symbolic link: refused (it could point at any file); remove it and run again" >&2; exit 1; fi',
  'chown -h -- "$2" "$1" && chmod 0600 -- "$1"',
].join('\n');

async function run(session: HostSession, argv: string[], step: string): Promise<void> {
  const r = await session.exec(argv, step, { privileged: true });
  if (r.exitCode !== 0) throw new TransportError(session.spec.host, step, `exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.toString('utf8').trim()}`);
}

/** `curl` when the host has it, else `wget` (Debian's prometheus hosts have one or the other). */
const POST_SCRIPT = 'if command -v curl >/dev/null 2>&1; then curl -fsS -X POST "$1"; else wget -q -O- --post-data= "$1"; fi';

async function reload(session: HostSession, spec: ReloadSpec): Promise<void> {
  if (spec.command) {
    await run(session, spec.command, 'reload prometheus');
    return;
  }
  await run(session, ['sh', '-c', POST_SCRIPT, 'sh', spec.url], `reload prometheus (POST ${spec.url})`);
}

/**
 * Polls every target's /1.0/metrics with the new pair, from the controller, until each answers
 * 200: Incus trusts the certificate (incus_trust added it in this or an earlier run).
 */
async function waitUntilTrusted(host: string, targets: string[], certificatePem: string, key: Buffer, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let pending = [...targets];
  for (;;) {
    const results = await Promise.all(pending.map(async (t) => ({ t, ok: (await metricsStatus(t, certificatePem, key)) === 200 })));
    pending = results.filter((r) => !r.ok).map((r) => r.t);
    if (pending.length === 0) return;
    if (Date.now() >= deadline) {
      throw new TransportError(
        host,
        'wait until Incus trusts the new metrics certificate',
        `not accepted by ${pending.join(', ')} after ${seconds}s; the old pair stays in use (run again once incus_trust added the new certificate)`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function metricsStatus(address: string, cert: string, key: Buffer): Promise<number> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return new Promise((resolve) => {
    const req = lazyBuiltins.https().request(
      // The server certificate is not what is checked here: only whether ours is accepted.
      {
        host: m?.[1] ?? address,
        port: Number(m?.[2] ?? 8443),
        path: '/1.0/metrics',
        method: 'GET',
        cert,
        key,
        rejectUnauthorized: false,
        timeout: 5000,
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
