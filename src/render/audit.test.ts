import { describe, expect, it } from 'vitest';
import type { DesiredCertificate, DesiredTrust, LiveCertificate } from '../modules/incus-trust/model.js';
import { auditCertificate, renderAuditText, summarize, type AuditedHost } from './audit.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const day = (n: number) => new Date(NOW.getTime() + n * 86_400_000);
const fp = (c: string) => c.repeat(64);

function live(name: string, over: Partial<LiveCertificate> = {}): LiveCertificate {
  return {
    name,
    type: 'client',
    restricted: true,
    projects: ['default'],
    description: '',
    fingerprint: fp(name[0]!),
    certificate: '',
    notBefore: day(-100),
    notAfter: day(300),
    ...over,
  };
}
function wanted(name: string, fingerprint: string, over: Partial<DesiredCertificate> = {}): DesiredCertificate {
  return {
    name,
    type: 'client',
    description: '',
    restricted: true,
    projects: [],
    state: 'present',
    certificate: { fingerprint } as DesiredCertificate['certificate'],
    certificateFile: `${name}.crt`,
    location: { file: 'inv.yaml', line: 1, column: 1 },
    valuePath: 'x',
    ...over,
  };
}

describe('audit', () => {
  const desired: DesiredTrust = {
    certificates: [wanted('admin', fp('a')), wanted('backup', fp('9')), wanted('gone', fp('g'), { state: 'absent' })],
    prune: false,
    protected: ['keep'],
  };

  it('marks each certificate against the inventory and the clock', () => {
    const marks = (c: LiveCertificate, warnDays = 30) => auditCertificate(c, desired, NOW, warnDays).marks;
    expect(marks(live('admin', { restricted: false }))).toEqual(['managed', 'unrestricted']);
    expect(marks(live('backup'))).toEqual(['replaced']);
    expect(marks(live('gone'))).toEqual(['revoke']);
    expect(marks(live('laptop', { notAfter: day(-3) }))).toEqual(['unmanaged', 'expired']);
    expect(marks(live('keep', { notAfter: day(10) }))).toEqual(['unmanaged', 'protected', 'expiring']);
    expect(marks(live('keep', { notAfter: day(10) }), 5)).toEqual(['unmanaged', 'protected']);
    expect(marks(live('member1', { type: 'server', restricted: false }))).toEqual(['member']);
    expect(auditCertificate(live('x'), undefined, NOW, 30).marks).toEqual(['unmanaged']);
  });

  it('renders hosts, failures and a summary as text', () => {
    const ok: AuditedHost = {
      host: 'web1',
      status: 'ok',
      managedByInventory: true,
      server: { serverName: 'web1', kind: 'incus', version: '6.0.4', clustered: false, members: [] },
      certificates: [
        auditCertificate(live('admin', { restricted: false }), desired, NOW, 30),
        auditCertificate(live('laptop', { notAfter: day(-3) }), desired, NOW, 30),
        auditCertificate(live('keep', { notAfter: day(1) }), desired, NOW, 30),
      ],
    };
    const down: AuditedHost = {
      host: 'db1',
      status: 'unreachable',
      managedByInventory: true,
      certificates: [],
      error: { step: 'connect', message: 'connection refused by 10.0.0.2:22' },
    };
    const report = summarize('inv.yaml', [ok, down], NOW, 30);
    expect(report.exitCode).toBe(1);
    expect(renderAuditText(report)).toBe(
      [
        'web1 (web1, incus 6.0.4, standalone): 3 trusted certificates',
        '  NAME    TYPE    FINGERPRINT   PROJECTS  EXPIRES     STATUS',
        '  admin   client  aaaaaaaaaaaa  all       2027-03-28  managed, unrestricted',
        '  laptop  client  llllllllllll  default   2026-05-29  unmanaged, expired 3 days ago',
        '  keep    client  kkkkkkkkkkkk  default   2026-06-02  unmanaged, protected, expiring in 1 day',
        '',
        'db1: UNREACHABLE: connect: connection refused by 10.0.0.2:22',
        '',
        '2 hosts: 1 read, 1 failed; 3 certificates: 1 managed, 2 unmanaged, 1 expired, 1 expiring, 1 unrestricted',
        '',
      ].join('\n'),
    );
  });

  it('shows a hostile certificate name escaped in the table (no control character reaches the terminal)', () => {
    const c = auditCertificate(live('\u001b[31mevil\u001b[0m\tx', { fingerprint: fp('e') }), undefined, NOW, 30);
    const host: AuditedHost = {
      host: 'web1',
      status: 'ok',
      server: { serverName: 'web1', kind: 'incus', version: '6.0.4', clustered: false, members: [] },
      managedByInventory: false,
      certificates: [c],
    };
    const text = renderAuditText(summarize('inv.yaml', [host], NOW, 30));
    expect(text).toContain('  \\x1b[31mevil\\x1b[0m\\tx  client');
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });
});
