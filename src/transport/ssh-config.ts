/**
 * ~/.ssh/config, the part reconcile honours: HostName, User, Port, IdentityFile, ProxyJump and
 * UserKnownHostsFile, with OpenSSH's rules (ssh_config(5)): the first value obtained wins
 * (IdentityFile and UserKnownHostsFile accumulate), `Host` patterns with `*`, `?` and
 * `!negation`, `Match all` and `Match host`/`originalhost` (other Match criteria never
 * match here), `Include` through a reader the caller passes. Pure. What it reads but cannot
 * honour for a host (an unsupported Match criterion such as `Match exec`, an Include not followed) comes
 * back as that host's warnings, naming file:line, so that the user sees it (ConnectionSpec.warnings).
 */
import { globMatch } from './glob.js';

export interface SshConfigBlock {
  /** undefined: the lines before the first Host/Match, which apply to every host. */
  condition?: { kind: 'host'; patterns: string[] } | { kind: 'match'; criteria: string[] };
  /** `file:line` of the Host/Match line, for messages. */
  at?: string;
  /** `raw`: the value as written (ProxyCommand is a whole command line). */
  options: { key: string; args: string[]; raw: string; line: number; file: string }[];
}

export interface SshConfig {
  blocks: SshConfigBlock[];
  /** Lines we could not use (unsupported Match criteria, unreadable Include). */
  warnings: string[];
}

/** What the config says about one host; every field absent when unset. */
export interface SshHostSettings {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  /** ProxyJump as written (`none` means explicitly none). */
  proxyJump?: string;
  /** ProxyCommand as written, tokens unexpanded (`none`: explicitly none). OpenSSH takes the first of the two. */
  proxyCommand?: string;
  userKnownHostsFiles: string[];
}

function splitArgs(rest: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest))) args.push(m[1] ?? m[2]!);
  return args;
}

/**
 * Parses config text. `readInclude(path)` returns the text of an included file (or undefined
 * when missing); relative Include paths are relative to ~/.ssh, as OpenSSH resolves them.
 */
export function parseSshConfig(text: string, file: string, readInclude?: (path: string) => { file: string; text: string }[], depth = 0): SshConfig {
  const config: SshConfig = { blocks: [{ options: [] }], warnings: [] };
  let current = config.blocks[0]!;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) return;
    const key = m[1]!.toLowerCase();
    const args = splitArgs(m[2]!);
    if (key === 'host') {
      current = { condition: { kind: 'host', patterns: args }, at: `${file}:${i + 1}`, options: [] };
      config.blocks.push(current);
    } else if (key === 'match') {
      current = { condition: { kind: 'match', criteria: args }, at: `${file}:${i + 1}`, options: [] };
      config.blocks.push(current);
    } else if (key === 'include') {
      if (!readInclude || depth > 8) {
        config.warnings.push(`${file}:${i + 1}: Include not followed`);
        return;
      }
      for (const arg of args) {
        for (const inc of readInclude(arg)) {
          const sub = parseSshConfig(inc.text, inc.file, readInclude, depth + 1);
          config.warnings.push(...sub.warnings);
          // An included file's lines belong to the block that includes it until its own Host line.
          current.options.push(...sub.blocks[0]!.options);
          for (const b of sub.blocks.slice(1)) config.blocks.push(b);
          if (sub.blocks.length > 1) {
            current = { condition: current.condition, at: current.at, options: [] };
            config.blocks.push(current);
          }
        }
      }
    } else {
      current.options.push({ key, args, raw: m[2]!.trim(), line: i + 1, file });
    }
  });
  return config;
}

/** OpenSSH's pattern-list rule: some positive pattern matches and no negated one does. */
export function hostPatternsMatch(patterns: string[], host: string): boolean {
  let matches = compiledPatterns.get(patterns);
  if (!matches) {
    matches = compilePatterns(patterns);
    compiledPatterns.set(patterns, matches);
  }
  return matches(host);
}

/**
 * A Host line compiled once per file read: every host of a run is matched against every block of
 * ~/.ssh/config, and a large one names each host in a block of its own (exact names: one lookup).
 */
const compiledPatterns = new WeakMap<string[], (host: string) => boolean>();

function compilePatterns(patterns: string[]): (host: string) => boolean {
  const exact = new Set<string>();
  const wildcards: string[] = [];
  const negated: string[] = [];
  for (const p of patterns.flatMap((list) => list.split(','))) {
    if (p.startsWith('!')) negated.push(p.slice(1));
    else if (/[*?]/.test(p)) wildcards.push(p);
    else exact.add(p.toLowerCase()); // case-insensitive, as globMatch
  }
  return (host) => !negated.some((p) => globMatch(p, host)) && (exact.has(host.toLowerCase()) || wildcards.some((p) => globMatch(p, host)));
}

function blockApplies(block: SshConfigBlock, host: string, warnings: string[]): boolean {
  const c = block.condition;
  if (!c) return true;
  if (c.kind === 'host') return hostPatternsMatch(c.patterns, host);
  const criteria = c.criteria.map((x) => x);
  if (criteria.length === 1 && criteria[0]!.toLowerCase() === 'all') return true;
  for (let i = 0; i < criteria.length; i += 2) {
    const what = criteria[i]!.toLowerCase();
    const value = criteria[i + 1] ?? '';
    if (what === 'host' || what === 'originalhost') {
      if (!hostPatternsMatch([value], host)) return false;
    } else {
      warnings.push(`${block.at ? `${block.at}: ` : ''}Match ${criteria.join(' ')}: criterion "${what}" is not supported; block ignored`);
      return false;
    }
  }
  return true;
}

/**
 * The blocks that may apply to a host, in file order: those whose Host line names it exactly,
 * and every block with a wildcard, a negation or a Match. A config that gives each host a block
 * of its own is then not read block by block for every host of a run.
 */
function blocksNaming(config: SshConfig, host: string): SshConfigBlock[] {
  let index = blockIndexes.get(config);
  if (!index) {
    index = indexBlocks(config.blocks);
    blockIndexes.set(config, index);
  }
  const named = index.byName.get(host.toLowerCase());
  if (!named) return index.always.map((i) => config.blocks[i]!);
  return [...index.always, ...named].sort((a, b) => a - b).map((i) => config.blocks[i]!);
}

const blockIndexes = new WeakMap<SshConfig, { always: number[]; byName: Map<string, number[]> }>();

function indexBlocks(blocks: SshConfigBlock[]): { always: number[]; byName: Map<string, number[]> } {
  const always: number[] = [];
  const byName = new Map<string, number[]>();
  blocks.forEach((block, i) => {
    const patterns = block.condition?.kind === 'host' ? block.condition.patterns.flatMap((list) => list.split(',')) : undefined;
    if (!patterns || patterns.some((p) => /[*?!]/.test(p))) return void always.push(i);
    for (const name of new Set(patterns.map((p) => p.toLowerCase()))) byName.set(name, [...(byName.get(name) ?? []), i]);
  });
  return { always, byName };
}

/** Expands `%h`, `%p`, `%r`, `%u`, `%d`, `%%` and a leading `~`, as OpenSSH does in paths. */
export function expandTokens(value: string, tokens: { h: string; p: number; r: string; u: string; d: string; n?: string }): string {
  const withHome = value === '~' || value.startsWith('~/') ? tokens.d + value.slice(1) : value;
  return withHome.replace(/%([hprudn%])/g, (all, t: string) =>
    t === '%'
      ? '%'
      : t === 'h'
        ? tokens.h
        : t === 'p'
          ? String(tokens.p)
          : t === 'r'
            ? tokens.r
            : t === 'u'
              ? tokens.u
              : t === 'n'
                ? (tokens.n ?? all)
                : tokens.d,
  );
}

/**
 * The settings for `host` (the name as given to ssh: ansible_host or the inventory name), with
 * the warnings that concern it: the config's own (Include not followed) and those of the blocks
 * that apply to it.
 */
export function sshSettingsFor(config: SshConfig | undefined, host: string): SshHostSettings & { warnings: string[] } {
  const out: SshHostSettings & { warnings: string[] } = { identityFiles: [], userKnownHostsFiles: [], warnings: [] };
  if (!config) return out;
  out.warnings.push(...config.warnings);
  for (const block of blocksNaming(config, host)) {
    if (!blockApplies(block, host, out.warnings)) continue;
    for (const o of block.options) {
      const first = o.args[0];
      if (first === undefined) continue;
      switch (o.key) {
        case 'hostname':
          out.hostName ??= first.replace(/%(h|%)/g, (_, t: string) => (t === '%' ? '%' : host));
          break;
        case 'user':
          out.user ??= first;
          break;
        case 'port':
          if (out.port === undefined && /^\d+$/.test(first)) out.port = Number(first);
          break;
        case 'identityfile':
          out.identityFiles.push(first);
          break;
        case 'proxyjump':
          // The first of ProxyJump and ProxyCommand wins, as in OpenSSH.
          if (out.proxyCommand === undefined) out.proxyJump ??= first;
          break;
        case 'proxycommand':
          if (out.proxyJump === undefined) out.proxyCommand ??= o.raw;
          break;
        case 'userknownhostsfile':
          if (out.userKnownHostsFiles.length === 0) out.userKnownHostsFiles.push(...o.args);
          break;
      }
    }
  }
  return out;
}
