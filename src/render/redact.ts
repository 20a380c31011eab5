/**
 * Secrets in configuration text are not shown: a Prometheus configuration holds passwords and
 * tokens (basic_auth, authorization, oauth2, bearer_token) of its own and from the inventory,
 * and --diff output ends up in CI logs and pull-request comments. Pure.
 */

/** Prometheus' `Secret`-typed fields (and the usual names of others); `*_file` fields hold paths and stay. */
const SECRET_KEYS = ['password', 'bearer_token', 'credentials', 'client_secret', 'secret_key', 'secret', 'token', 'api_key', 'auth_token'];
const KEY = `["']?(?:${SECRET_KEYS.join('|')})["']?\\s*:`;

/** Block style: the key starts the line (after `- `), its value is the rest of it. */
const BLOCK = new RegExp(`^(\\s*(?:-\\s+)?${KEY})(\\s*)(\\S.*)$`, 'i');
/** Flow style (`{username: u, password: p}`): the value runs to the next `,`, `}` or `]`. */
const FLOW = new RegExp(`([{,]\\s*${KEY})(\\s*)("(?:[^"\\\\]|\\\\.)*"|'(?:[^']|'')*'|[^,}\\]]+?)(?=\\s*[,}\\]])`, 'gi');

export const REDACTED = '(redacted)';

/** One line of YAML with the value of every secret key replaced; other lines as they are. */
export function redactSecretLine(line: string): string {
  const block = BLOCK.exec(line);
  if (block) return `${block[1]}${block[2] || ' '}${REDACTED}`;
  return line.replace(FLOW, (_, key: string, space: string) => `${key}${space || ' '}${REDACTED}`);
}
