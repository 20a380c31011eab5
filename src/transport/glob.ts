/**
 * OpenSSH's host patterns (ssh_config Host lines, known_hosts lines): `*` any run of characters,
 * `?` one, case-insensitive. A pattern with wildcards is compiled once (every host of a run is
 * matched against every line of both files); one without is compared as a name.
 */
const compiled = new Map<string, RegExp>();

export function globMatch(pattern: string, text: string): boolean {
  // Most lines name a host outright: no wildcard, no expression to make.
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern.toLowerCase() === text.toLowerCase();
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
      'i',
    );
    compiled.set(pattern, re);
  }
  return re.test(text);
}
