/**
 * Reads what a Prometheus host has: its prometheus.yml, the metrics pair files, the key's mode
 * and owner, and whether promtool is there. Reads the certificate only (public), never the key.
 */
import { TransportError } from '../../errors.js';
import { CertificateParseError, parseCertificatePem } from '../../pki/certificate.js';
import type { HostSession } from '../../transport/types.js';
import { FINGERPRINT_IN_NAME } from './desired.js';
import type { DesiredScrape, ObservedScrape } from './model.js';

export async function observeScrape(session: HostSession, desired: DesiredScrape): Promise<ObservedScrape> {
  const configText = (await session.readFile(desired.configFile, `read ${desired.configFile}`, true))?.toString('utf8');
  const promtool = (await session.exec(['sh', '-c', 'command -v "$1"', 'sh', desired.promtool], 'look for promtool')).exitCode === 0;
  const observed: ObservedScrape = { configText, pairFiles: [], promtool, ...(await prometheusStatus(session, desired.reloadUrl)) };
  if (configText !== undefined) {
    // The file is replaced whole: its mode and owner (0640 root:prometheus, say) are kept.
    const s = await session.exec(['stat', '-c', '%a %U %G', desired.configFile], `stat ${desired.configFile}`, { privileged: true });
    const [mode, owner, group] = s.stdout.toString('utf8').trim().split(' ');
    if (s.exitCode === 0 && mode && owner && group) observed.configAttributes = { mode, owner, group };
  }
  const pair = desired.pair;
  if (!pair) return observed;

  const listStep = `list ${desired.certDir}`;
  // Exactly NAME-FP12: another entry named NAME-something must not match.
  const versioned = `${pair.filePrefix}-${'[0-9a-f]'.repeat(FINGERPRINT_IN_NAME)}`;
  const list = await session.exec(
    ['find', desired.certDir, '-maxdepth', '1', '-type', 'f', '(', '-name', `${versioned}.crt`, '-o', '-name', `${versioned}.key`, ')'],
    listStep,
    { privileged: true },
  );
  if (list.exitCode === 0) {
    observed.pairFiles = list.stdout.toString('utf8').split('\n').filter(Boolean).sort();
  } else if (!/No such file/.test(list.stderr)) {
    throw new TransportError(session.spec.host, listStep, `exit ${list.exitCode}: ${list.stderr.trim()}`);
  }
  if (pair.fingerprint === undefined) return observed;

  const cert = await session.readFile(pair.certPath, `read ${pair.certPath}`, true);
  if (cert) {
    try {
      observed.certificateFingerprint = parseCertificatePem(cert.toString('utf8')).fingerprint;
    } catch (e) {
      if (!(e instanceof CertificateParseError)) throw e;
      // Unparsable: planned as missing, so it is rewritten.
    }
  }
  const stat = await session.exec(['stat', '-c', '%a %U %G', pair.keyPath], `stat ${pair.keyPath}`, { privileged: true });
  if (stat.exitCode === 0) {
    const [mode, owner, group] = stat.stdout.toString('utf8').trim().split(' ');
    observed.key = { mode: mode ?? '', owner: owner ?? '', group: group ?? '' };
  }
  return observed;
}

const GET_SCRIPT = 'if command -v curl >/dev/null 2>&1; then curl -fsS "$1"; else wget -q -O- "$1"; fi';

/**
 * Asks Prometheus (from its host) whether its last reload succeeded and which configuration it
 * runs: a file on disk is not proof that Prometheus loaded it (a failed reload leaves it unread).
 * Each is undefined when it cannot be asked.
 */
async function prometheusStatus(session: HostSession, reloadUrl: string): Promise<Pick<ObservedScrape, 'reloadConfigSuccess' | 'loadedConfig'>> {
  if (!reloadUrl.endsWith('/-/reload')) return {};
  const api = async <T>(path: string, step: string): Promise<T | undefined> => {
    const r = await session.exec(['sh', '-c', GET_SCRIPT, 'sh', reloadUrl.replace(/\/-\/reload$/, path)], step);
    if (r.exitCode !== 0) return undefined;
    try {
      return (JSON.parse(r.stdout.toString('utf8')) as { data?: T }).data;
    } catch {
      return undefined;
    }
  };
  const runtime = await api<{ reloadConfigSuccess?: unknown }>('/api/v1/status/runtimeinfo', 'read Prometheus runtime info');
  const config = await api<{ yaml?: unknown }>('/api/v1/status/config', 'read the configuration Prometheus runs');
  const out: Pick<ObservedScrape, 'reloadConfigSuccess' | 'loadedConfig'> = {};
  if (typeof runtime?.reloadConfigSuccess === 'boolean') out.reloadConfigSuccess = runtime.reloadConfigSuccess;
  if (typeof config?.yaml === 'string') out.loadedConfig = config.yaml;
  return out;
}
