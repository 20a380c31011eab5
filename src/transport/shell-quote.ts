/**
 * POSIX shell quoting. Every argv element that reaches a remote shell goes through here, so
 * inventory values (names, paths, descriptions) are never interpreted by a shell.
 */

/** One word, safe for `sh`: left bare when it holds only harmless characters, else single-quoted. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command a user would recognise in an argv, for messages: `env INCUS_SOCKET=… incus query`
 * is `incus`, not `env` (a timeout said "env did not finish", found by test/faults).
 */
export function commandName(argv: readonly string[]): string {
  if (argv[0] !== 'env') return argv[0] ?? '';
  return argv.slice(1).find((w) => !w.includes('=') && !w.startsWith('-')) ?? 'env';
}

/** A command line for `sh` whose words are exactly `argv`. */
export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('shellCommand: empty argv');
  return argv.map(shellQuote).join(' ');
}

/**
 * Splits a command-line string as a POSIX shell would split words (quotes and backslashes,
 * no expansions): for `ansible_ssh_common_args`, which Ansible hands to a shell.
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${text}`);
      current += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated " in: ${text}`);
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1]!)) {
          current += text[i + 1];
          i += 2;
        } else {
          current += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      current += text[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
      i++;
    } else {
      current += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(current);
  return words;
}
