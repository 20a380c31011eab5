/**
 * Output fit for a log (cron mail, journald, CI): one line per event, each starting with an
 * ISO 8601 timestamp, no colour codes nor cursor movement, whatever the text carried.
 * With -q only what someone must act on is written: drift (planned or applied changes) and
 * errors; a run that finds everything in sync writes nothing, so cron sends no mail.
 * Pure: the clock and the writer are passed in.
 */
import type { HostReport, ReportedAction } from '../engine/report.js';
import { ACTION_SYMBOL } from '../plan/types.js';
import { expiringManaged, expiringText, expiryWindow } from './plan-text.js';
import type { ReasonWords, RunView } from './view.js';

export interface LogLineWriterOptions {
  /** Receives whole lines, newline included. */
  write(text: string): void;
  clock: () => Date;
}

/** A line writer: timestamp, then the event made into one clean line. */
export function logLineWriter(options: LogLineWriterOptions): (event: string) => void {
  return (event) => options.write(`${options.clock().toISOString()} ${oneLine(event)}\n`);
}

// CSI/OSC escape sequences (colours, cursor movement) and other control characters.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-_]/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;
// Any control character but the tab (which is kept): escapes, line ends and CONTROL all start with one.
// eslint-disable-next-line no-control-regex
const NOT_PLAIN = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * One line of plain text: escape sequences removed; a multi-line message (a problem with its
 * source line and caret, a host's stderr) joined with " | ", caret-only lines dropped.
 */
export function oneLine(text: string): string {
  // The usual event ("host1: connecting") has no control character: nothing to remove nor join.
  if (!NOT_PLAIN.test(text)) {
    const line = text.trim();
    return /^\^*$/.test(line) ? '' : line;
  }
  return text
    .replace(ESCAPES, '')
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.replace(CONTROL, '').trim())
    .filter((l) => l !== '' && !/^\^+$/.test(l))
    .join(' | ');
}

/** -q: only drift, errors and managed certificates about to expire, one line each. */
export function quietLogHooks(writeLine: (event: string) => void, words: ReasonWords): RunView {
  const expiring = new Map<string, string[]>();
  return {
    planned: (plan) => {
      const window = expiryWindow(plan);
      for (const h of plan.hosts)
        expiring.set(
          h.host,
          expiringManaged(h, window).map((c) => `${h.host}: ${expiringText(c, window.now)}`),
        );
    },
    hostFinished: (r) => {
      for (const line of quietLines(r, words)) writeLine(line);
      for (const line of expiring.get(r.host) ?? []) writeLine(line);
    },
  };
}

/** What -q says about one host: nothing when it is in sync or covered. */
export function quietLines(r: HostReport, words: ReasonWords): string[] {
  const lines: string[] = [];
  // Unmanaged certificates kept are reported by the other views, not drift: -q stays silent on them.
  const actions = r.actions.filter((a) => a.action !== 'unmanaged');
  switch (r.status) {
    case 'ok':
    case 'covered':
      break;
    case 'drift':
      for (const a of actions) lines.push(`${r.host}: drift: ${describeReported(a, words)}`);
      break;
    case 'changed':
      for (const a of actions.filter((x) => x.applied)) lines.push(`${r.host}: changed: applied ${describeReported(a, words)}`);
      break;
    case 'failed':
    case 'unreachable':
      for (const a of actions.filter((x) => x.applied)) lines.push(`${r.host}: changed: applied ${describeReported(a, words)}`);
      lines.push(`${r.host}: ${r.status}: ${r.error ? `${r.error.step}: ${r.error.message}` : 'no detail'}`);
      break;
    default:
      return assertNever(r.status);
  }
  return lines;
}

function describeReported(a: ReportedAction, words: ReasonWords): string {
  const fp = a.fingerprint && /^[0-9a-f]{12,}$/.test(a.fingerprint) ? ` [${a.fingerprint.slice(0, 12)}]` : '';
  return `${ACTION_SYMBOL[a.action]} ${a.action} ${a.kind} "${a.name}"${fp} (${words(a.module, a.reason, a.detail)})`;
}

function assertNever(x: never): never {
  throw new Error(`unexpected host status ${String(x)}`);
}
