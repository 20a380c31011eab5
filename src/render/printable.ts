/**
 * Text that is safe to show on a terminal (pure). Names and descriptions come from the hosts (anyone
 * who may add a trust entry chooses its name), and so do files shown by --diff: a control character
 * in them could erase lines, forge a "no changes" line or set the window title. Every one of them
 * but newline and tab is shown as a visible escape (`\x1b`, `\r`), never sent as is.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function printable(text: string): string {
  return text.replace(CONTROL, (c) => (c === '\r' ? '\\r' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** One field on one line: newlines and tabs escaped too (a table cell, a name in a sentence). */
export function printableField(text: string): string {
  return printable(text).replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}
