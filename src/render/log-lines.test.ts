import { reasonWords } from '../engine/inputs.js';
import { describe, expect, it } from 'vitest';
import type { HostReport } from '../engine/report.js';
import { logLineHooks } from '../cli/progress.js';
import { logLineWriter, oneLine, quietLines } from './log-lines.js';

const FP = 'a'.repeat(64);
const clock = () => new Date('2026-11-23T13:00:00.000Z');

function host(h: Partial<HostReport> & Pick<HostReport, 'host' | 'status'>): HostReport {
  return { actions: [], warnings: [], certificates: [], expiring: [], ...h };
}

describe('log lines', () => {
  it('prefixes each event with an ISO timestamp and makes it one line without escape codes', () => {
    let out = '';
    const line = logLineWriter({ write: (t) => (out += t), clock });
    line('\u001b[31mweb1\u001b[39m: failed: read trust store: incus said:\nline two\r\n');
    line('hosts.yaml:3:5: warning: all.vars.x: projects without restricted\n    projects: [a]\n    ^');
    expect(out).toBe(
      '2026-11-23T13:00:00.000Z web1: failed: read trust store: incus said: | line two\n' +
        '2026-11-23T13:00:00.000Z hosts.yaml:3:5: warning: all.vars.x: projects without restricted | projects: [a]\n',
    );
  });

  it('through the progress hooks: one timestamped line per engine event', () => {
    let out = '';
    const hooks = logLineHooks({ writeLine: logLineWriter({ write: (t) => (out += t), clock }), verbose: 0, mode: 'check' });
    hooks.hostsSelected!(['web1', 'web2']);
    hooks.hostStep!('web1', 'connect');
    hooks.hostFinished!(host({ host: 'web1', status: 'ok' }));
    expect(out).toBe(
      '2026-11-23T13:00:00.000Z checking 2 host(s): web1, web2\n' + '2026-11-23T13:00:00.000Z web1: connecting\n' + '2026-11-23T13:00:00.000Z web1: ok\n',
    );
  });

  it('oneLine strips cursor movement and OSC sequences too', () => {
    expect(oneLine('\u001b[2K\u001b[1Gdone\u001b]8;;http://x\u0007link\u001b]8;;\u0007')).toBe('donelink');
  });
});

describe('-q lines', () => {
  const words = reasonWords();
  const add = {
    module: 'incus_trust' as const,
    action: 'add' as const,
    kind: 'incus certificate',
    name: 'alice',
    reason: 'missing',
    fingerprint: FP,
    applied: false,
  };
  const stranger = { ...add, action: 'unmanaged' as const, name: 'stranger', reason: 'not-in-inventory' };

  it('says nothing about hosts in sync or covered', () => {
    expect(quietLines(host({ host: 'web1', status: 'ok' }), words)).toEqual([]);
    expect(quietLines(host({ host: 'web2', status: 'covered', coveredBy: 'web1' }), words)).toEqual([]);
  });

  it('one line per drifted action, applied change and error; unmanaged certificates kept are not drift', () => {
    expect(quietLines(host({ host: 'web1', status: 'drift', actions: [add, stranger] }), words)).toEqual([
      'web1: drift: + add incus certificate "alice" [aaaaaaaaaaaa] (missing)',
    ]);
    expect(quietLines(host({ host: 'web1', status: 'changed', actions: [{ ...add, applied: true }, stranger] }), words)).toEqual([
      'web1: changed: applied + add incus certificate "alice" [aaaaaaaaaaaa] (missing)',
    ]);
    expect(quietLines(host({ host: 'web3', status: 'unreachable', error: { step: 'connect', message: 'connection refused' } }), words)).toEqual([
      'web3: unreachable: connect: connection refused',
    ]);
    expect(
      quietLines(
        host({
          host: 'web4',
          status: 'failed',
          actions: [
            { ...add, applied: true },
            { ...add, name: 'bob' },
          ],
          error: { step: 'apply incus_trust', message: 'boom' },
        }),
        words,
      ),
    ).toEqual(['web4: changed: applied + add incus certificate "alice" [aaaaaaaaaaaa] (missing)', 'web4: failed: apply incus_trust: boom']);
  });
});
