/**
 * A small syntax checker for qrexec policy files (v5 format), run on the rendered text
 * before it is written and, through the dom0 stand-in's `qubes-policy-lint`, on the
 * temporary file before it is renamed into place. A policy file with a syntax error makes
 * qrexec deny every call on the machine, so this is worth its few lines.
 *
 * It follows qrexec/policy/parser.py of qubes-core-qrexec: `SERVICE ARGUMENT SOURCE TARGET
 * ACTION [PARAM=VALUE ...]`, `#` comments, `!include`, `!include-dir`, `!include-service`.
 * Pure; also runnable as a command (see test/lab/dom0.ts).
 */

export interface PolicySyntaxError {
  /** 1-based line number. */
  line: number;
  message: string;
}

/** Characters qrexec allows in service names and arguments (RPCNAME_ALLOWED_CHARSET). */
const RPCNAME = /^[A-Za-z0-9_.+-]+$/;

const SOURCE_EXACT = ['*', '@anyvm', '@adminvm'];
const TARGET_EXACT = ['*', '@anyvm', '@adminvm', '@default', '@dispvm'];
const PREFIXES = ['@dispvm:@tag:', '@tag:', '@type:', '@dispvm:'];

/** Parameters each action accepts; values of autostart/notify are yes or no. */
const ACTION_PARAMS: Record<string, string[]> = {
  allow: ['target', 'user', 'autostart', 'notify'],
  deny: ['notify'],
  ask: ['target', 'default_target', 'user', 'autostart', 'notify'],
};
const YES_NO_PARAMS = ['autostart', 'notify'];

export function checkPolicySyntax(text: string): PolicySyntaxError[] {
  const errors: PolicySyntaxError[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const message = line.startsWith('!') ? checkDirective(line) : checkRule(line);
    if (message) errors.push({ line: i + 1, message });
  });
  return errors;
}

function checkDirective(line: string): string | undefined {
  const [directive, ...params] = line.split(/\s+/);
  const wanted: Record<string, number> = { '!include': 1, '!include-dir': 1, '!include-service': 3 };
  const count = wanted[directive!];
  if (count === undefined) return `invalid directive ${directive}`;
  if (params.length !== count) return `${directive} takes ${count} parameter(s), got ${params.length}`;
  return undefined;
}

function checkRule(line: string): string | undefined {
  const fields = line.split(/\s+/);
  if (fields.length < 5) return `wrong number of fields: ${fields.length} (SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...])`;
  const [service, argument, source, target, action, ...params] = fields as [string, string, string, string, string, ...string[]];

  if (service !== '*' && (!RPCNAME.test(service) || service.includes('+'))) return `service ${JSON.stringify(service)} contains invalid characters`;
  if (argument !== '*') {
    if (!RPCNAME.test(argument)) return `argument ${JSON.stringify(argument)} contains invalid characters`;
    if (!argument.startsWith('+')) return `argument ${JSON.stringify(argument)} does not start with +`;
    if (service === '*') return 'only * argument allowed for * service';
  }
  const sourceProblem = tokenProblem(source, SOURCE_EXACT, 'source');
  if (sourceProblem) return sourceProblem;
  const targetProblem = tokenProblem(target, TARGET_EXACT, 'target');
  if (targetProblem) return targetProblem;

  const allowed = ACTION_PARAMS[action];
  if (!allowed) return `invalid action: ${action} (allow, deny or ask)`;
  const seen = new Set<string>();
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq <= 0) return `invalid action parameter syntax: ${JSON.stringify(param)} (PARAM=VALUE)`;
    const key = param.slice(0, eq);
    const value = param.slice(eq + 1);
    if (seen.has(key)) return `parameter given twice: ${key}`;
    seen.add(key);
    if (!allowed.includes(key)) return `invalid parameter for action ${action}: ${key}`;
    if (YES_NO_PARAMS.includes(key) && value !== 'yes' && value !== 'no') return `${key}= must be yes or no, got ${JSON.stringify(value)}`;
    if ((key === 'target' || key === 'default_target') && !isRedirect(value)) return `invalid ${key}= value: ${JSON.stringify(value)}`;
  }
  if (target === '@default' && action === 'allow' && !seen.has('target')) return 'allow action for @default rule must specify target= option';
  return undefined;
}

/** A redirection (`target=`, `default_target=`): a VM name, @adminvm, @dispvm or @dispvm:NAME. */
function isRedirect(value: string): boolean {
  if (value === '@adminvm' || value === '@dispvm') return true;
  if (value.startsWith('@dispvm:')) return value.length > '@dispvm:'.length && !value.startsWith('@dispvm:@');
  return value !== '' && !value.startsWith('@') && value !== '*';
}

/** `dom0` is an alias of @adminvm; other names are taken as VM names without further checks. */
function tokenProblem(token: string, exact: string[], what: string): string | undefined {
  if (token === 'dom0' || !(token.startsWith('@') || token === '*')) return undefined;
  if (exact.includes(token)) return undefined;
  for (const prefix of PREFIXES) {
    if (!token.startsWith(prefix)) continue;
    if (prefix === '@dispvm:' && token.startsWith('@dispvm:@')) continue;
    if (token.length === prefix.length) return `invalid empty ${prefix} token in ${what}: ${JSON.stringify(token)}`;
    // @dispvm is a target only; @dispvm:NAME and @dispvm:@tag: work on both sides.
    return undefined;
  }
  return `invalid ${what} token: ${JSON.stringify(token)}`;
}
