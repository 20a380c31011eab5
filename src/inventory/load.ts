/**
 * Loads an Ansible YAML or INI inventory (INI: ini.ts) with Ansible's meaning (plugins/inventory/yaml.py,
 * inventory/data.py, vars_plugins/host_group_vars.py) and every value's source position.
 *
 * Exports:
 *   loadInventory(source: string): Promise<Inventory>
 *     -i as given: a YAML or INI file, or a folder of such files (read in name
 *     order; sub-folders other than group_vars/host_vars are not read). Throws
 *     InventoryError with every problem found; warnings stay in `inventory.warnings`.
 *   readInventoryFile(inventory: Inventory, relativePath: string): Buffer | undefined
 *     Reads a file relative to the inventory's folder (certificate_file …); undefined if absent.
 *
 * YAML is read as PyYAML reads it (YAML 1.1: yes/no/on/off booleans, 0755 octal, merge keys).
 * In a folder, .yaml/.yml/.json files and files without extension are read (Ansible also skips
 * *.ini there). Deliberate differences from Ansible: a folder's files with other extensions
 * (`hosts.prod`, `client.crt`) and sub-folders are not read; a file that cannot be read is an
 * error (Ansible warns and goes on); a .yaml/.yml/.json file is YAML only (no INI fallback);
 * duplicate mapping keys are an error (Ansible
 * warns and keeps the last); `!unsafe` values are plain strings; `.inf` prints as null in JSON.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type ParsedNode, type ScalarTag } from 'yaml';
import { InventoryError, type Problem, type SourceLocation } from '../errors.js';
import { parseBlockYaml } from './block-yaml.js';
import { expandHostPattern } from './host-ranges.js';
import { parseIniInventory } from './ini.js';
import { readLocalFile } from '../local-file.js';
import { unreadableFile, VAULT_KEY, type Inventory, type InventoryGroup, type InventoryHost, type VarDefinition } from './model.js';

/** Files of a group_vars/host_vars folder and the inventory folder that are read. */
const VARS_EXTENSIONS = ['', '.yml', '.yaml', '.json'];
const INVENTORY_EXTENSIONS = ['.yml', '.yaml', '.json'];

const VAULT_TAG: ScalarTag = {
  tag: '!vault',
  identify: () => false,
  resolve: (text: string) => ({ [VAULT_KEY]: text }) as unknown as string,
};
/** PyYAML's booleans (YAML 1.1 without y/n, which PyYAML and so Ansible read as strings). */
const PYYAML_BOOL: ScalarTag = {
  tag: 'tag:yaml.org,2002:bool',
  default: true,
  test: /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  resolve: (text: string) => /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(text) as unknown as string,
  identify: (value: unknown) => typeof value === 'boolean',
  stringify: ({ value }) => (value ? 'true' : 'false'),
};
/**
 * The rest of YAML 1.1 as PyYAML resolves it: an exponent needs a dot and a sign (`1.5e3` is a
 * string), and timestamps stay the text written (Ansible prints dates back as written).
 */
function asPyYaml(tag: unknown): ScalarTag[] {
  const t = tag as ScalarTag;
  if (t.tag === 'tag:yaml.org,2002:bool' || t.tag === 'tag:yaml.org,2002:timestamp') return [];
  if (t.tag === 'tag:yaml.org,2002:float' && t.format === 'EXP') return [{ ...t, test: /^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*[eE][-+][0-9]+$/ }];
  return [t];
}
/** `!unsafe` marks a string Ansible must not template: for us a plain string. */
const UNSAFE_TAG: ScalarTag = { tag: '!unsafe', identify: () => false, resolve: (text: string) => text };

/** How inventory YAML is read: as PyYAML reads it, duplicate keys refused. */
export const INVENTORY_YAML = {
  version: '1.1',
  customTags: (tags: unknown[]) => [PYYAML_BOOL, ...tags.flatMap(asPyYaml), VAULT_TAG, UNSAFE_TAG],
  prettyErrors: false,
  uniqueKeys: true,
} as const;

/** One parsed YAML file with what is needed to point into it. */
interface ParsedFile {
  file: string;
  source: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

class LoadState {
  readonly problems: Problem[] = [];
  readonly warnings: Problem[] = [];
  readonly files: string[] = [];
  readonly sources = new Map<string, string>();
  readonly groups = new Map<string, InventoryGroup>();
  readonly hostOrder: string[] = [];
  /** Host variables written in inventory files, merged in the order they were read. */
  readonly hostInventoryVars = new Map<string, Record<string, VarDefinition>>();
  readonly hostFileVars = new Map<string, Record<string, VarDefinition>>();
  /** Where `child` was first listed under `parent`, for messages about the link. */
  readonly linkSites = new Map<string, { location: SourceLocation; path: string }>();

  group(name: string): InventoryGroup {
    let g = this.groups.get(name);
    if (!g) {
      g = { name, parents: [], children: [], hosts: [], vars: {}, fileVars: {}, depth: 0 };
      this.groups.set(name, g);
    }
    return g;
  }

  /** Hosts of each group as a set, for inventories of thousands of hosts. */
  private readonly groupMembers = new Map<string, Set<string>>();

  addToGroup(group: InventoryGroup, host: string): void {
    let members = this.groupMembers.get(group.name);
    if (!members) {
      members = new Set(group.hosts);
      this.groupMembers.set(group.name, members);
    }
    if (members.has(host)) return;
    members.add(host);
    group.hosts.push(host);
  }

  removeFromGroup(group: InventoryGroup, host: string): void {
    this.groupMembers.get(group.name)?.delete(host);
    group.hosts = group.hosts.filter((h) => h !== host);
  }

  /** Groups that list the host directly (`all` included when it does). */
  directGroups(host: string): string[] {
    const out: string[] = [];
    for (const g of this.groups.values()) if (this.groupMembers.get(g.name)?.has(host)) out.push(g.name);
    return out;
  }

  addHost(name: string): void {
    if (!this.hostInventoryVars.has(name)) {
      this.hostOrder.push(name);
      this.hostInventoryVars.set(name, {});
    }
  }

  problem(severity: Problem['severity'], pf: ParsedFile | undefined, node: Node | null | undefined, valuePath: string | undefined, message: string): void {
    this.problemAt(severity, pf ? locate(pf, node) : undefined, valuePath, message);
  }

  problemAt(severity: Problem['severity'], location: SourceLocation | undefined, valuePath: string | undefined, message: string): void {
    const p: Problem = { severity, message };
    if (location) {
      p.location = location;
      const line = lineOf(this.sources.get(location.file), location.line);
      if (line?.trim()) p.sourceLine = line;
    }
    if (valuePath) p.valuePath = valuePath;
    (severity === 'error' ? this.problems : this.warnings).push(p);
  }
}

// Kept importable from here, where it lived first.
export { expandHostPattern, MAX_HOSTS_PER_RANGE } from './host-ranges.js';

/**
 * One inventory from one or more sources (files or folders), as `ansible-playbook -i a -i b`
 * reads them: one set of hosts and groups; each source's group_vars/ and host_vars/ beside it,
 * a later source's winning. Paths in variables (certificate_file …) are relative to the first.
 * Files are read synchronously: nothing else runs before the inventory is known, and each
 * asynchronous read waited 1–4 ms for libuv's thread pool (the first starts it) on the way to
 * the first connection.
 */
export async function loadInventory(sources: string | readonly string[]): Promise<Inventory> {
  const list = typeof sources === 'string' ? [sources] : [...sources];
  const state = new LoadState();
  // As Ansible's InventoryData: `ungrouped` is always the first child of `all`.
  link(state, 'all', 'ungrouped');
  const baseDirs: string[] = [];
  for (const source of list) {
    let info;
    try {
      info = statSync(source);
    } catch {
      throw new InventoryError([{ severity: 'error', message: `inventory ${source} does not exist` }]);
    }
    const dir = info.isDirectory() ? source : dirname(source);
    if (!baseDirs.includes(dir)) baseDirs.push(dir);
    if (info.isDirectory()) {
      const entries = listFolder(source);
      // YAML files and files without extension (`hosts`, read as YAML or INI), in name order.
      const names = entries
        .filter((e) => e.isFile() && !e.name.startsWith('.') && [...INVENTORY_EXTENSIONS, ''].includes(extname(e.name)))
        .map((e) => e.name)
        .sort();
      if (names.length === 0) {
        throw new InventoryError([{ severity: 'error', message: `inventory folder ${source} holds no inventory file` }]);
      }
      for (const name of names) readAnyInventoryFile(state, join(source, name));
    } else {
      readAnyInventoryFile(state, source);
    }
  }
  const source = list.join(',');
  const baseDir = baseDirs[0]!;
  if (state.problems.length === 0) {
    linkGroups(state);
    for (const dir of baseDirs) readVarsFolders(state, dir);
  }
  if (state.problems.length > 0) throw new InventoryError([...state.problems, ...state.warnings]);

  const hosts = new Map<string, InventoryHost>();
  for (const name of state.hostOrder) hosts.set(name, mergeHost(state, name));
  return {
    source,
    baseDir,
    files: state.files,
    hosts,
    groups: state.groups,
    warnings: state.warnings,
    sources: state.sources,
  };
}

export function readInventoryFile(inventory: Inventory, relativePath: string): Buffer | undefined {
  const file = readLocalFile(resolve(inventory.baseDir, relativePath));
  if ('bytes' in file) return file.bytes;
  return 'refused' in file ? unreadableFile(file.refused) : undefined;
}

function parseFile(state: LoadState, file: string): ParsedFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    state.problems.push({ severity: 'error', message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return undefined;
  }
  state.files.push(file);
  state.sources.set(file, text);
  const lineCounter = new LineCounter();
  // Most inventories are plain block YAML, read in one pass; the rest by the yaml package.
  const doc = parseBlockYaml(text, INVENTORY_YAML, lineCounter) ?? parseDocument(text, { ...INVENTORY_YAML, lineCounter });
  const pf: ParsedFile = { file, source: text, doc, lineCounter };
  for (const e of doc.errors) {
    // Errors about indentation start at the line's leading spaces: point at the text itself.
    let offset = e.pos[0];
    while (text[offset] === ' ' || text[offset] === '\t') offset++;
    const location = positionAt(pf, offset);
    state.problems.push({
      severity: 'error',
      location,
      message: `YAML syntax error: ${e.message.split('\n')[0]}`,
      sourceLine: lineOf(text, location.line),
    });
  }
  for (const w of doc.warnings) {
    const location = positionAt(pf, w.pos[0]);
    const unresolved = /^Unresolved tag: (.*)$/.exec(w.message);
    state.problems.push({
      severity: unresolved ? 'error' : 'warning',
      location,
      message: unresolved ? `unknown YAML tag ${unresolved[1]} (Ansible knows !vault and !unsafe)` : w.message.split('\n')[0]!,
      sourceLine: lineOf(text, location.line),
    });
  }
  return doc.errors.length > 0 ? undefined : pf;
}

/**
 * As Ansible picks the plugin: .yaml/.yml/.json are YAML; a file without extension is YAML when it
 * parses as a YAML mapping, else INI (Ansible's yaml plugin fails on it and the ini plugin reads
 * it); any other extension is INI.
 */
function readAnyInventoryFile(state: LoadState, file: string): void {
  const ext = extname(file);
  if (INVENTORY_EXTENSIONS.includes(ext)) return readInventoryFileInto(state, file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    state.problems.push({ severity: 'error', message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return;
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    // Never parsed, so that no line of it can be quoted in a message.
    state.problems.push({ severity: 'error', message: `${file} holds a private key, not an inventory: keep keys out of the inventory folder` });
    return;
  }
  if (ext === '') {
    const doc = parseDocument(text, { version: '1.1', prettyErrors: false, uniqueKeys: false });
    if (doc.errors.length === 0 && isMap(doc.contents)) return readInventoryFileInto(state, file);
  }
  state.files.push(file);
  state.sources.set(file, text);
  const { operations, problems } = parseIniInventory(file, text, state.groups.keys());
  state.problems.push(...problems);
  for (const op of operations) {
    if (op.kind === 'group') {
      state.group(op.name);
    } else if (op.kind === 'child') {
      if (op.child === 'all') {
        state.problems.push({
          severity: 'error',
          location: op.location,
          valuePath: op.valuePath,
          message: 'group "all" cannot be the child of another group',
          sourceLine: lineOf(text, op.location.line),
        });
        continue;
      }
      const site = `${op.parent}>${op.child}`;
      if (!state.linkSites.has(site)) state.linkSites.set(site, { location: op.location, path: op.valuePath });
      link(state, op.parent, op.child);
    } else if (op.kind === 'groupVar') {
      state.group(op.group).vars[op.name] = op.definition;
    } else {
      const group = state.group(op.group);
      for (const name of op.names) {
        state.addHost(name);
        state.addToGroup(group, name);
        const hv = state.hostInventoryVars.get(name)!;
        if (op.port !== undefined) hv.ansible_port = { value: op.port, location: op.location, valuePath: op.valuePath, nested: new Map() };
        Object.assign(hv, op.vars);
      }
    }
  }
}

function readInventoryFileInto(state: LoadState, file: string): void {
  const pf = parseFile(state, file);
  if (!pf) return;
  const root = pf.doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) {
    state.problem('warning', pf, root, undefined, 'the inventory file is empty');
    return;
  }
  if (!isMap(root)) {
    state.problem('error', pf, root, undefined, `the inventory must be a mapping of group names (usually \`all:\`), not ${describeNode(root)}`);
    return;
  }
  // Top-level keys are groups; those other than `all` become children of `all` later.
  for (const pair of root.items) {
    const name = keyText(pair.key);
    if (name === undefined) {
      state.problem('error', pf, pair.key as Node, undefined, 'a group name must be a string');
      continue;
    }
    readGroup(state, pf, name, pair.value as Node | null, name, undefined);
  }
}

function readGroup(state: LoadState, pf: ParsedFile, name: string, node: Node | null, path: string, parent: string | undefined): void {
  const group = state.group(name);
  if (parent !== undefined) link(state, parent, name);
  if (node === null || (isScalar(node) && node.value === null)) return;
  if (!isMap(node)) {
    state.problem('error', pf, node, path, `group "${name}" must be a mapping with hosts, vars and children, not ${describeNode(node)}`);
    return;
  }
  // File order, as Ansible's yaml plugin: a host defined twice takes the later definition's vars.
  for (const pair of node.items) {
    const key = keyText(pair.key);
    const value = pair.value as Node | null;
    const sectionPath = `${path}.${key}`;
    if (key === 'vars') {
      if (value === null || (isScalar(value) && value.value === null)) continue;
      if (!isMap(value)) {
        state.problem('error', pf, value, sectionPath, `vars must be a mapping of variable names to values, not ${describeNode(value)}`);
        continue;
      }
      Object.assign(group.vars, readVars(state, pf, value, sectionPath));
    } else if (key === 'hosts') {
      if (value === null || (isScalar(value) && value.value === null)) continue;
      if (!isMap(value)) {
        state.problem(
          'error',
          pf,
          value,
          sectionPath,
          `hosts must be a mapping of host names (each with its variables or nothing), not ${describeNode(value)}`,
        );
        continue;
      }
      for (const hostPair of value.items) readHostEntry(state, pf, group, hostPair.key as Node, hostPair.value as Node | null, sectionPath);
    } else if (key === 'children') {
      if (value === null || (isScalar(value) && value.value === null)) continue;
      if (!isMap(value)) {
        state.problem('error', pf, value, sectionPath, `children must be a mapping of group names, not ${describeNode(value)}`);
        continue;
      }
      for (const childPair of value.items) {
        const child = keyText(childPair.key);
        if (child === undefined) {
          state.problem('error', pf, childPair.key as Node, sectionPath, 'a group name must be a string');
          continue;
        }
        if (child === 'all') {
          state.problem('error', pf, childPair.key as Node, `${sectionPath}.${child}`, 'group "all" cannot be the child of another group');
          continue;
        }
        const site = `${name}>${child}`;
        if (!state.linkSites.has(site)) state.linkSites.set(site, { location: locate(pf, childPair.key as Node), path: `${sectionPath}.${child}` });
        readGroup(state, pf, child, childPair.value as Node | null, `${sectionPath}.${child}`, name);
      }
    } else {
      // Ansible skips such keys with a warning; a typo like `host:` would otherwise drop hosts silently.
      state.problem(
        'warning',
        pf,
        pair.key as Node,
        sectionPath,
        `unexpected key "${key}" in group "${name}" is ignored (only hosts, vars and children are valid)`,
      );
    }
  }
}

function readHostEntry(state: LoadState, pf: ParsedFile, group: InventoryGroup, keyNode: Node, valueNode: Node | null, hostsPath: string): void {
  const pattern = keyText(keyNode);
  if (pattern === undefined || pattern === '') {
    state.problem('error', pf, keyNode, hostsPath, 'a host name must be a non-empty string');
    return;
  }
  let names: string[];
  let port: number | undefined;
  try {
    ({ names, port } = expandHostPattern(pattern));
  } catch (e) {
    state.problem('error', pf, keyNode, `${hostsPath}.${pattern}`, (e as Error).message);
    return;
  }
  let vars: Record<string, VarDefinition> = {};
  if (valueNode !== null && !(isScalar(valueNode) && valueNode.value === null)) {
    if (!isMap(valueNode)) {
      state.problem(
        'error',
        pf,
        valueNode,
        `${hostsPath}.${pattern}`,
        `host "${pattern}" must have a mapping of variables or nothing, not ${describeNode(valueNode)}`,
      );
      return;
    }
    vars = readVars(state, pf, valueNode, `${hostsPath}.${pattern}`);
  }
  for (const name of names) {
    state.addHost(name);
    state.addToGroup(group, name);
    const hv = state.hostInventoryVars.get(name)!;
    if (port !== undefined) {
      hv.ansible_port = { value: port, location: locate(pf, keyNode), valuePath: `${hostsPath}.${pattern}`, nested: new Map() };
    }
    Object.assign(hv, vars);
  }
}

function link(state: LoadState, parent: string, child: string): void {
  const p = state.group(parent);
  const c = state.group(child);
  if (!p.children.includes(child)) p.children.push(child);
  if (!c.parents.includes(parent)) c.parents.push(parent);
}

/**
 * Ansible's reconcile step: groups without a parent go under `all`, hosts in no group other
 * than `all` go to `ungrouped`, and each group's depth is its longest distance from `all`.
 */
function linkGroups(state: LoadState): void {
  for (const g of state.groups.values()) {
    if (g.name !== 'all' && g.parents.length === 0) link(state, 'all', g.name);
  }
  for (const h of state.hostOrder) {
    const direct = state.directGroups(h);
    const inGroup = direct.some((g) => g !== 'all' && g !== 'ungrouped');
    if (!inGroup) state.addToGroup(state.group('ungrouped'), h);
    // As Ansible's reconcile_inventory: a host listed before any INI section (or under
    // `ungrouped:`) and also in a real group leaves `ungrouped`.
    else if (direct.includes('ungrouped')) state.removeFromGroup(state.group('ungrouped'), h);
  }
  if (state.problems.length > 0) return;
  const depths = groupDepths(state);
  if (depths) for (const g of state.groups.values()) g.depth = depths.get(g.name) ?? 0;
}

/**
 * Each group's longest distance from `all`, walking parents without recursion (a 3,000-deep
 * `:children` chain must not overflow the stack) and once per group (shared parents are not
 * walked again). A loop is an error at the link that closes it; then undefined.
 */
function groupDepths(state: LoadState): Map<string, number> | undefined {
  const depth = new Map<string, number>([['all', 0]]);
  for (const start of state.groups.keys()) {
    if (depth.has(start)) continue;
    // The chain walked, child → parent, with the index of the next parent to visit of each.
    const path: string[] = [start];
    const nextParent: number[] = [0];
    const onPath = new Set([start]);
    while (path.length > 0) {
      const name = path[path.length - 1]!;
      const parents = state.groups.get(name)!.parents;
      const i = nextParent[nextParent.length - 1]!;
      if (i === parents.length) {
        depth.set(name, 1 + Math.max(0, ...parents.map((p) => depth.get(p)!)));
        path.pop();
        nextParent.pop();
        onPath.delete(name);
        continue;
      }
      nextParent[nextParent.length - 1] = i + 1;
      const parent = parents[i]!;
      if (depth.has(parent)) continue;
      if (onPath.has(parent)) {
        const loop = [...path.slice(path.indexOf(parent)), parent];
        const site = state.linkSites.get(`${parent}>${name}`);
        state.problemAt(
          'error',
          site?.location,
          site?.path,
          `group "${name}" cannot be a child of "${parent}": ${[...loop].reverse().join(' → ')} would be a loop`,
        );
        return undefined;
      }
      path.push(parent);
      nextParent.push(0);
      onPath.add(parent);
    }
  }
  return depth;
}

function readVarsFolders(state: LoadState, baseDir: string): void {
  const groupVars = varsFolder(join(baseDir, 'group_vars'));
  for (const g of state.groups.values()) {
    for (const file of groupVars.filesOf(g.name)) Object.assign(g.fileVars, readVarsFile(state, file));
  }
  const hostVars = varsFolder(join(baseDir, 'host_vars'));
  for (const h of state.hostOrder) {
    const vars: Record<string, VarDefinition> = {};
    for (const file of hostVars.filesOf(h)) Object.assign(vars, readVarsFile(state, file));
    // Several sources: each one's host_vars/ in turn, a later one winning per variable.
    state.hostFileVars.set(h, { ...state.hostFileVars.get(h), ...vars });
  }
}

/**
 * A group_vars/ or host_vars/ folder, listed once (thousands of hosts must not cost thousands
 * of stat calls). filesOf(NAME) is Ansible's find_vars_files: the first of NAME (file or
 * folder), NAME.yml, NAME.yaml, NAME.json.
 */
function varsFolder(folder: string): { filesOf(name: string): string[] } {
  const entries = new Map<string, boolean>();
  try {
    for (const e of listFolder(folder)) entries.set(e.name, e.isDirectory());
  } catch {
    // No such folder: no variables from it.
  }
  return {
    filesOf(name) {
      for (const ext of VARS_EXTENSIONS) {
        const isDir = entries.get(name + ext);
        if (isDir === undefined) continue;
        const path = join(folder, name + ext);
        return isDir ? filesBelow(path) : [path];
      }
      return [];
    },
  };
}

interface FolderEntry {
  name: string;
  isFile(): boolean;
  isDirectory(): boolean;
}

/** A folder's entries with symbolic links resolved (a linked group_vars/all is common). */
function listFolder(folder: string): FolderEntry[] {
  const out: FolderEntry[] = [];
  for (const e of readdirSync(folder, { withFileTypes: true })) {
    if (!e.isSymbolicLink()) {
      out.push(e);
      continue;
    }
    try {
      const target = statSync(join(folder, e.name));
      out.push({ name: e.name, isFile: () => target.isFile(), isDirectory: () => target.isDirectory() });
    } catch {
      // A dangling link is skipped, as Ansible skips what it cannot read.
    }
  }
  return out;
}

function filesBelow(folder: string): string[] {
  const out: string[] = [];
  const entries = listFolder(folder)
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const path = join(folder, e.name);
    if (e.isDirectory()) out.push(...filesBelow(path));
    else if (VARS_EXTENSIONS.includes(extname(e.name))) out.push(path);
  }
  return out;
}

function readVarsFile(state: LoadState, file: string): Record<string, VarDefinition> {
  const pf = parseFile(state, file);
  if (!pf) return {};
  const root = pf.doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return {};
  if (pf.source.startsWith('$ANSIBLE_VAULT;')) {
    // Whole-file vault (group_vars/all/vault.yml) is common for secrets reconcile never reads.
    state.problem(
      'warning',
      pf,
      root,
      undefined,
      'is encrypted with ansible-vault: not read (reconcile cannot decrypt it); variables reconcile reads must not live here',
    );
    return {};
  }
  if (!isMap(root)) {
    state.problem(
      'error',
      pf,
      root,
      undefined,
      `${basename(dirname(file))}/${basename(file)} must be a mapping of variable names to values, not ${describeNode(root)}`,
    );
    return {};
  }
  return readVars(state, pf, root, '');
}

function readVars(state: LoadState, pf: ParsedFile, map: Node, basePath: string): Record<string, VarDefinition> {
  const out: Record<string, VarDefinition> = {};
  if (!isMap(map)) return out;
  // YAML merge keys (`<<: *defaults`, or a list of aliases), as PyYAML reads them for Ansible:
  // the merged mappings give the variables the mapping does not set itself (the first one wins).
  const merged: Record<string, VarDefinition> = {};
  for (const pair of map.items) {
    if (!isMergeKey(pair.key)) continue;
    const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
    for (const source of sources) {
      const target = isAlias(source) ? (source.resolve(pf.doc) as Node | undefined) : (source as Node | null);
      if (!target || !isMap(target)) {
        state.problem('error', pf, (source ?? pair.key) as Node, basePath || undefined, 'a merge key (<<) takes a mapping or a list of mappings');
        continue;
      }
      for (const [name, def] of Object.entries(readVars(state, pf, target, basePath))) if (!(name in merged)) merged[name] = def;
    }
  }
  Object.assign(out, merged);
  for (const pair of map.items) {
    if (isMergeKey(pair.key)) continue;
    const name = keyText(pair.key);
    if (name === undefined) {
      state.problem('error', pf, pair.key as Node, basePath || undefined, 'a variable name must be a string');
      continue;
    }
    const valueNode = (pair.value as Node | null) ?? null;
    let value: unknown = null;
    try {
      // First: yaml refuses an alias bomb here, before anything walks what it would expand to.
      value = valueNode === null ? null : valueNode.toJS(pf.doc, { maxAliasCount: 1000 });
    } catch (e) {
      if (!/alias/i.test((e as Error).message)) throw e;
      state.problem(
        'error',
        pf,
        valueNode!,
        basePath ? `${basePath}.${name}` : name,
        'its YAML aliases expand to far more data than they are written with (an alias bomb): refused',
      );
      continue;
    }
    const nested = new Map<string, SourceLocation>();
    // The variable's own name (`key:`), for problems about the name itself (a near miss).
    nested.set('key:', locate(pf, pair.key as Node));
    recordPositions(pf, valueNode, '', nested);
    out[name] = {
      value,
      location: valueNode ? locate(pf, valueNode) : locate(pf, pair.key as Node),
      valuePath: basePath ? `${basePath}.${name}` : name,
      nested,
    };
  }
  return out;
}

function recordPositions(pf: ParsedFile, node: Node | null, path: string, nested: Map<string, SourceLocation>): void {
  if (node === null) return;
  if (isAlias(node)) {
    const target = node.resolve(pf.doc);
    if (target) recordPositions(pf, target as Node, path, nested);
    return;
  }
  if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const itemPath = `${path}[${i}]`;
      nested.set(itemPath, locate(pf, item as Node));
      recordPositions(pf, item as Node, itemPath, nested);
    });
  } else if (isMap(node)) {
    for (const pair of node.items) {
      const key = keyText(pair.key);
      if (key === undefined) continue;
      const itemPath = `${path}.${key}`;
      nested.set(`key:${itemPath}`, locate(pf, pair.key as Node));
      nested.set(itemPath, locate(pf, (pair.value as Node | null) ?? (pair.key as Node)));
      recordPositions(pf, pair.value as Node | null, itemPath, nested);
    }
  }
}

/** Merged variables with Ansible's precedence (see InventoryHost.vars). */
function mergeHost(state: LoadState, name: string): InventoryHost {
  const direct = state.directGroups(name);
  const all = new Set<string>(['all']);
  const visit = (g: string) => {
    if (all.has(g) && g !== 'all') return;
    all.add(g);
    for (const p of state.groups.get(g)?.parents ?? []) visit(p);
  };
  direct.forEach(visit);
  const groups = [...all].map((g) => state.groups.get(g)!).sort(compareGroups);
  const vars: Record<string, VarDefinition> = {};
  for (const g of groups) Object.assign(vars, g.vars);
  for (const g of groups) Object.assign(vars, g.fileVars);
  Object.assign(vars, state.hostInventoryVars.get(name));
  Object.assign(vars, state.hostFileVars.get(name));
  return { name, groups: groups.map((g) => g.name), vars };
}

/** Ansible's sort_groups: depth, then ansible_group_priority (default 1), then name. */
export function compareGroups(a: InventoryGroup, b: InventoryGroup): number {
  const priority = (g: InventoryGroup) => {
    const p = (g.fileVars.ansible_group_priority ?? g.vars.ansible_group_priority)?.value;
    return typeof p === 'number' ? p : 1;
  };
  return a.depth - b.depth || priority(a) - priority(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** `<<` in YAML 1.1: the yaml package gives it the value Symbol(<<). */
function isMergeKey(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol' && key.value.description === '<<';
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) {
    const v = key.value;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return undefined;
  }
  return undefined;
}

function describeNode(node: Node | ParsedNode): string {
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'a mapping';
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return `the string "${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
    if (v === null) return 'nothing (null)';
    return `the ${typeof v} ${String(v)}`;
  }
  return 'an alias';
}

function locate(pf: ParsedFile, node: Node | null | undefined): SourceLocation {
  let offset = node?.range?.[0] ?? 0;
  // A tagged node's range starts after its tag; a problem about `!vault` points at the tag.
  if (isScalar(node) && node.tag === '!vault') {
    const found = pf.source.lastIndexOf('!vault', offset);
    if (found >= 0) offset = found;
  }
  return positionAt(pf, offset);
}

function positionAt(pf: ParsedFile, offset: number): SourceLocation {
  const pos = pf.lineCounter.linePos(offset);
  return { file: pf.file, line: pos.line, column: pos.col };
}

function lineOf(text: string | undefined, line: number): string | undefined {
  return text?.split(/\r?\n/)[line - 1];
}
