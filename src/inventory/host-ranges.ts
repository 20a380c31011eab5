/**
 * Ansible's host names with ranges and ports, shared by the YAML and INI readers. Pure.
 *
 * Exports:
 *   expandHostPattern(pattern): { names, port? }  (throws Error with a user-facing message)
 *   MAX_HOSTS_PER_RANGE
 */

/**
 * Ansible's host ranges (`web[01:03].example`, `db-[a:c]`, `[1:10:2]`) and `name:port`.
 * Throws with a user-facing message for a malformed range.
 */
export function expandHostPattern(pattern: string): { names: string[]; port?: number } {
  let text = pattern;
  let port: number | undefined;
  // `name:port`, also after a range (`web[01:03]:2222`); a bare IPv6 address has no port.
  const portMatch = /^(.+):(\d+)$/.exec(text);
  if (portMatch && !portMatch[1]!.replace(/\[[^\]]*\]/g, '').includes(':') && !text.includes('::')) {
    text = portMatch[1]!;
    port = Number(portMatch[2]);
  }
  const m = /^(.*?)\[(.*?)\](.*)$/.exec(text);
  if (!m) return { names: [text], port };
  const [, head, range, tail] = m as unknown as [string, string, string, string];
  const parts = range.split(':');
  if (parts.length < 2 || parts.length > 3) throw new Error(`bad host range [${range}] in "${pattern}": use [START:END] or [START:END:STEP]`);
  const [start, end, stepText] = parts as [string, string, string | undefined];
  const step = stepText === undefined || stepText === '' ? 1 : Number(stepText);
  if (!Number.isInteger(step) || step < 1) throw new Error(`bad step in host range [${range}] of "${pattern}"`);
  const items: string[] = [];
  if (/^\d*$/.test(start) && /^\d+$/.test(end)) {
    const from = start === '' ? 0 : Number(start);
    const to = Number(end);
    if (from > to) throw new Error(`host range [${range}] of "${pattern}" goes backwards`);
    const width = start.length > 1 && start.startsWith('0') ? start.length : 0;
    checkRangeSize(Math.floor((to - from) / step) + 1, range, pattern);
    for (let i = from; i <= to; i += step) items.push(String(i).padStart(width, '0'));
  } else if (/^[a-zA-Z]$/.test(start) && /^[a-zA-Z]$/.test(end)) {
    const from = start.charCodeAt(0);
    const to = end.charCodeAt(0);
    if (from > to) throw new Error(`host range [${range}] of "${pattern}" goes backwards`);
    for (let c = from; c <= to; c += step) items.push(String.fromCharCode(c));
  } else {
    throw new Error(`bad host range [${range}] in "${pattern}": both ends must be numbers or single letters`);
  }
  const names: string[] = [];
  for (const item of items) {
    for (const rest of expandHostPattern(`${head}${item}${tail}`).names) names.push(rest);
    checkRangeSize(names.length, range, pattern);
  }
  return { names, port };
}

/**
 * Hosts one range may expand to. A typo such as `web[1:100000000]` would otherwise build that
 * many hosts and end the process out of memory, with a native stack trace and no message
 * (found by test/property/hostile-input.test.ts). Far above any real inventory.
 */
export const MAX_HOSTS_PER_RANGE = 10_000;

function checkRangeSize(count: number, range: string, pattern: string): void {
  if (count > MAX_HOSTS_PER_RANGE) {
    throw new Error(`host range [${range}] of "${pattern}" makes more than ${MAX_HOSTS_PER_RANGE} hosts; is it a typo?`);
  }
}
