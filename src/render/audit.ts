/**
 * `reconcile audit`: what every host trusts, judged against the inventory. Pure: the command
 * reads hosts and passes values and the clock; this file classifies and renders (text and JSON).
 */
import { printableField } from './printable.js';
import type { DesiredTrust, IncusDaemonInfo, IncusServerInfo, LiveCertificate } from '../modules/incus-trust/model.js';
import { isProtected } from '../modules/incus-trust/plan.js';

/**
 * managed: the inventory names this certificate (same fingerprint); unmanaged: it does not
 * (by fingerprint nor name); renamed-or-rotated: the inventory names an entry of this name with
 * another certificate; revoke: listed with state: absent; member: a cluster member's server
 * certificate (never removed). Plus flags: expired, expiring, unrestricted (full access).
 */
export type AuditMark = 'managed' | 'unmanaged' | 'replaced' | 'revoke' | 'member' | 'expired' | 'expiring' | 'not-yet-valid' | 'unrestricted' | 'protected';

export interface AuditedCertificate {
  name: string;
  type: string;
  fingerprint: string;
  restricted: boolean;
  projects: string[];
  description: string;
  notBefore?: string;
  notAfter?: string;
  /** Whole days until notAfter (negative once expired). */
  daysLeft?: number;
  marks: AuditMark[];
}

/** A server as audit shows it: what its daemon says of itself (but the API extensions), and its cluster. */
export type AuditedServer = Omit<IncusDaemonInfo, 'extensions'> & Omit<IncusServerInfo, 'daemon'>;

export interface AuditedHost {
  host: string;
  status: 'ok' | 'failed' | 'unreachable';
  server?: AuditedServer;
  /** Whether the inventory manages this host's trust store at all. */
  managedByInventory: boolean;
  certificates: AuditedCertificate[];
  error?: { step: string; message: string };
}

export interface AuditReport {
  inventory: string;
  generatedAt: string;
  warnDays: number;
  hosts: AuditedHost[];
  summary: { hosts: number; read: number; failed: number; certificates: number } & Partial<Record<AuditMark, number>>;
  exitCode: 0 | 1;
}

const DAY = 86_400_000;

/** Marks one live certificate against the host's desired trust (undefined: not managed here). */
export function auditCertificate(c: LiveCertificate, desired: DesiredTrust | undefined, now: Date, warnDays: number): AuditedCertificate {
  const marks: AuditMark[] = [];
  const fp = c.fingerprint.toLowerCase();
  const byFingerprint = desired?.certificates.find((d) => d.certificate?.fingerprint === fp || (d.fingerprint !== undefined && fp.startsWith(d.fingerprint)));
  // A previous certificate (previous_until) is managed while kept and to revoke once the date passed.
  const asPrevious = desired?.certificates.find((d) => d.previous?.certificate?.fingerprint === fp);
  const byName = desired?.certificates.find((d) => d.name === c.name && d.type === c.type);
  if (c.type === 'server') marks.push('member');
  else if (!byFingerprint && asPrevious) marks.push(asPrevious.previous!.kept ? 'managed' : 'revoke');
  else if (byFingerprint?.state === 'absent' || (!byFingerprint && byName?.state === 'absent')) marks.push('revoke');
  else if (byFingerprint) marks.push('managed');
  else if (byName) marks.push('replaced');
  else marks.push('unmanaged');
  if (desired && isProtected(c, desired.protected)) marks.push('protected');
  let daysLeft: number | undefined;
  if (c.notAfter && c.notBefore) {
    daysLeft = Math.floor((c.notAfter.getTime() - now.getTime()) / DAY);
    if (now.getTime() > c.notAfter.getTime()) marks.push('expired');
    else if (now.getTime() < c.notBefore.getTime()) marks.push('not-yet-valid');
    else if (c.notAfter.getTime() - now.getTime() <= warnDays * DAY) marks.push('expiring');
  }
  if (!c.restricted && c.type !== 'server') marks.push('unrestricted');
  return {
    name: c.name,
    type: c.type,
    fingerprint: c.fingerprint,
    restricted: c.restricted,
    projects: [...c.projects].sort(),
    description: c.description,
    notBefore: c.notBefore?.toISOString(),
    notAfter: c.notAfter?.toISOString(),
    daysLeft,
    marks,
  };
}

export function summarize(inventory: string, hosts: AuditedHost[], now: Date, warnDays: number): AuditReport {
  const summary: AuditReport['summary'] = { hosts: hosts.length, read: 0, failed: 0, certificates: 0 };
  for (const h of hosts) {
    if (h.status === 'ok') summary.read++;
    else summary.failed++;
    for (const c of h.certificates) {
      summary.certificates++;
      for (const m of c.marks) summary[m] = (summary[m] ?? 0) + 1;
    }
  }
  return { inventory, generatedAt: now.toISOString(), warnDays, hosts, summary, exitCode: summary.failed > 0 ? 1 : 0 };
}

/** What the certificate may reach, as the seed's checklist asks to confirm: every project, or which. */
function projectsCell(c: AuditedCertificate): string {
  if (c.type === 'server') return '-';
  if (!c.restricted) return 'all';
  return c.projects.length > 0 ? [...c.projects].sort().join(',') : 'none';
}

function markText(c: AuditedCertificate): string {
  return c.marks
    .map((m) => {
      if (m === 'expiring') return `expiring in ${c.daysLeft} day${c.daysLeft === 1 ? '' : 's'}`;
      if (m === 'expired') return `expired ${-(c.daysLeft ?? 0)} day${c.daysLeft === -1 ? '' : 's'} ago`;
      if (m === 'replaced') return 'replaced (the inventory names another certificate)';
      if (m === 'revoke') return 'to revoke (state: absent)';
      if (m === 'member') return 'cluster member';
      if (m === 'unrestricted') return 'unrestricted';
      return m;
    })
    .join(', ');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** Human text: one block per host (certificates as a table, failures with their reason), then a summary. */
export function renderAuditText(report: AuditReport): string {
  const out: string[] = [];
  for (const h of report.hosts) {
    if (h.status !== 'ok' || !h.server) {
      out.push(`${h.host}: ${h.status === 'unreachable' ? 'UNREACHABLE' : 'FAILED'}: ${printableField(`${h.error?.step}: ${h.error?.message}`)}`, '');
      continue;
    }
    const s = h.server;
    const kind = s.clustered ? `cluster ${s.clusterId?.slice(0, 12)}` : 'standalone';
    const count = h.certificates.length;
    out.push(
      `${h.host} (${printableField(s.serverName)}, ${printableField(s.kind)} ${printableField(s.version)}, ${kind}): ${count} trusted certificate${count === 1 ? '' : 's'}${h.managedByInventory ? '' : ' — the inventory does not manage this trust store'}`,
    );
    if (count > 0) {
      const rows = [['NAME', 'TYPE', 'FINGERPRINT', 'PROJECTS', 'EXPIRES', 'STATUS']];
      for (const c of h.certificates)
        rows.push([
          printableField(c.name),
          printableField(c.type),
          c.fingerprint.slice(0, 12),
          printableField(projectsCell(c)),
          c.notAfter?.slice(0, 10) ?? 'unknown',
          markText(c),
        ]);
      out.push(...table(rows).map((l) => `  ${l}`));
    }
    out.push('');
  }
  const s = report.summary;
  const parts = [`${s.hosts} host${s.hosts === 1 ? '' : 's'}: ${s.read} read, ${s.failed} failed`];
  const certParts = (['managed', 'unmanaged', 'replaced', 'revoke', 'expired', 'expiring', 'unrestricted'] as const)
    .filter((m) => (s[m] ?? 0) > 0)
    .map((m) => `${s[m]} ${m === 'revoke' ? 'to revoke' : m}`);
  parts.push(`${s.certificates} certificate${s.certificates === 1 ? '' : 's'}${certParts.length ? `: ${certParts.join(', ')}` : ''}`);
  out.push(parts.join('; '));
  return out.join('\n') + '\n';
}

export function renderAuditJson(report: AuditReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
