/**
 * STAND-INS until the inventory engineer's loader/patterns/playbook and the transport engineer's
 * connectHost land: the smallest versions the engine needs (YAML inventory without group_vars,
 * plain host patterns, playbook list, `ansible_connection: local` with the Incus socket over HTTP).
 * Replaced, not extended.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { InventoryError, TransportError, type Problem } from '../errors.js';
import type { Inventory, InventoryGroup, InventoryHost, VarDefinition } from '../inventory/model.js';
import type { ModuleName } from '../modules/types.js';
import type { ConnectionSpec, HostSession, IncusResponse, TransportOptions } from '../transport/types.js';
import type { Play } from './run.js';

export async function loadInventoryStandIn(path: string): Promise<Inventory> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new InventoryError([{ severity: 'error', message: `cannot read inventory ${path}: ${e.message}` }]);
  });
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const at = (n: Node | null | undefined) => {
    const pos = lc.linePos(n?.range?.[0] ?? 0);
    return { file: path, line: pos.line, column: pos.col };
  };
  const groups = new Map<string, InventoryGroup>();
  const hostVars = new Map<string, Record<string, VarDefinition>>();
  const hostOrder: string[] = [];
  const varsOf = (node: unknown, base: string): Record<string, VarDefinition> => {
    const out: Record<string, VarDefinition> = {};
    if (!isMap(node)) return out;
    for (const pair of node.items) {
      const key = String((pair.key as { value?: unknown }).value);
      const valueNode = pair.value as Node;
      const nested = new Map();
      if (isSeq(valueNode)) valueNode.items.forEach((item, i) => nested.set(`[${i}]`, at(item as Node)));
      out[key] = { value: (valueNode as { toJSON(): unknown })?.toJSON?.() ?? null, location: at(valueNode), valuePath: `${base}.${key}`, nested };
    }
    return out;
  };
  const walk = (name: string, node: unknown, parent: string | undefined, depth: number, base: string) => {
    const g: InventoryGroup = groups.get(name) ?? { name, parents: [], children: [], hosts: [], vars: {}, fileVars: {}, depth };
    groups.set(name, g);
    if (parent && !g.parents.includes(parent)) g.parents.push(parent);
    if (!isMap(node)) return;
    const hosts = node.get('hosts', true);
    if (isMap(hosts)) {
      for (const pair of hosts.items) {
        const h = String((pair.key as { value?: unknown }).value);
        if (!hostOrder.includes(h)) hostOrder.push(h);
        g.hosts.push(h);
        hostVars.set(h, { ...(hostVars.get(h) ?? {}), ...varsOf(pair.value, `${base}.hosts.${h}`) });
      }
    }
    g.vars = varsOf(node.get('vars', true), `${base}.vars`);
    const children = node.get('children', true);
    if (isMap(children)) {
      for (const pair of children.items) {
        const c = String((pair.key as { value?: unknown }).value);
        if (!g.children.includes(c)) g.children.push(c);
        walk(c, pair.value, name, depth + 1, `${base}.children.${c}`);
      }
    }
  };
  walk('all', doc.get('all', true), undefined, 0, 'all');
  const groupsOfHost = (h: string): string[] => {
    const out = new Set<string>(['all']);
    const visit = (g: string) => {
      out.add(g);
      for (const p of groups.get(g)?.parents ?? []) visit(p);
    };
    for (const g of groups.values()) if (g.hosts.includes(h)) visit(g.name);
    return [...out];
  };
  const hosts = new Map<string, InventoryHost>();
  for (const h of hostOrder) {
    const gs = groupsOfHost(h).map((n) => groups.get(n)!).sort((a, b) => a.depth - b.depth || a.name.localeCompare(b.name));
    const vars: Record<string, VarDefinition> = {};
    for (const g of gs) Object.assign(vars, g.vars);
    Object.assign(vars, hostVars.get(h));
    hosts.set(h, { name: h, groups: gs.map((g) => g.name), vars });
  }
  const baseDir = statSync(path).isDirectory() ? path : dirname(path);
  return { source: path, baseDir, files: [path], hosts, groups };
}

export async function loadPlaybookStandIn(path: string): Promise<{ plays: Play[]; problems: Problem[] }> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new InventoryError([{ severity: 'error', message: `cannot read playbook ${path}: ${e.message}` }]);
  });
  const raw = parseDocument(text).toJSON() as { name?: string; hosts?: string; reconcile?: string[] }[];
  return {
    plays: (raw ?? []).map((p, i) => ({ name: p.name ?? `play ${i + 1}`, hosts: String(p.hosts ?? 'all'), reconcile: (p.reconcile ?? []) as ModuleName[] })),
    problems: [],
  };
}

/** Names, groups, globs, `a:b`, `a:&b`, `a:!b`. */
export function selectHostsStandIn(inventory: Inventory, pattern: string): { hosts: string[]; warnings: string[] } {
  const warnings: string[] = [];
  const match = (term: string): Set<string> => {
    const out = new Set<string>();
    const re = new RegExp(`^${term.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    for (const h of inventory.hosts.values()) if (re.test(h.name) || h.groups.some((g) => re.test(g))) out.add(h.name);
    if (out.size === 0) warnings.push(`pattern "${term}" matches no host`);
    return out;
  };
  let result = new Set<string>();
  const terms = pattern.split(/[:,]/).filter(Boolean);
  for (const t of terms.filter((t) => !t.startsWith('&') && !t.startsWith('!'))) for (const h of match(t)) result.add(h);
  for (const t of terms.filter((t) => t.startsWith('&'))) {
    const m = match(t.slice(1));
    result = new Set([...result].filter((h) => m.has(h)));
  }
  for (const t of terms.filter((t) => t.startsWith('!'))) for (const h of match(t.slice(1))) result.delete(h);
  return { hosts: [...inventory.hosts.keys()].filter((h) => result.has(h)), warnings };
}

export function connectionSpecStandIn(host: InventoryHost): ConnectionSpec {
  const v = (k: string) => host.vars[k]?.value;
  return {
    host: host.name,
    connection: v('ansible_connection') === 'local' ? 'local' : 'ssh',
    address: String(v('ansible_host') ?? host.name),
    port: Number(v('ansible_port') ?? 22),
    user: String(v('ansible_user') ?? 'root'),
    privateKeyFile: v('ansible_ssh_private_key_file') as string | undefined,
    jumps: [],
    become: v('ansible_become') === true,
    incusSocket: String(v('incus_socket') ?? '/var/lib/incus/unix.socket'),
  };
}

/** Local connection only: exec via spawn, Incus via HTTP on its unix socket (ETags included). */
export async function connectStandIn(spec: ConnectionSpec, transport: TransportOptions): Promise<HostSession> {
  if (spec.connection !== 'local') {
    throw new TransportError(spec.host, 'connect', 'ssh is not available in this build yet (stand-in transport)', true);
  }
  return {
    spec,
    exec: (argv, step, options) =>
      new Promise((resolveExec, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        let err = '';
        child.stdout.on('data', (d: Buffer) => out.push(d));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('error', (e) => reject(new TransportError(spec.host, step, e.message)));
        child.on('close', (code) => resolveExec({ exitCode: code ?? 1, stdout: Buffer.concat(out), stderr: err }));
        child.stdin.end(options?.stdin ?? '');
      }),
    incus: {
      request: <T>(method: string, path: string, step: string, body?: unknown, options?: { ifMatch?: string }) =>
        new Promise<IncusResponse<T>>((resolveReq, reject) => {
          const payload = body === undefined ? undefined : JSON.stringify(body);
          const headers: Record<string, string> = {};
          if (payload) headers['content-type'] = 'application/json';
          if (options?.ifMatch) headers['if-match'] = options.ifMatch;
          const req = httpRequest({ socketPath: spec.incusSocket, path, method, headers, timeout: transport.commandTimeoutMs }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () => {
              let json: { metadata?: T; error?: string; type?: string };
              try {
                json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              } catch {
                return reject(new TransportError(spec.host, step, `Incus answered ${res.statusCode} with a body that is not JSON`));
              }
              const status = res.statusCode ?? 0;
              if (status < 200 || status >= 300 || json.type === 'error') {
                return reject(new TransportError(spec.host, step, `Incus answered ${status}: ${json.error ?? 'error'}`));
              }
              const etag = res.headers.etag;
              resolveReq({ status, etag: typeof etag === 'string' ? etag : undefined, metadata: json.metadata as T });
            });
          });
          req.on('error', (e) => reject(new TransportError(spec.host, step, e.message)));
          req.on('timeout', () => req.destroy(new Error('timed out')));
          if (payload) req.write(payload);
          req.end();
        }),
    },
    readFile: async (path) => {
      try {
        return readFileSync(path);
      } catch {
        return undefined;
      }
    },
    writeFile: async () => {
      throw new TransportError(spec.host, 'write file', 'not available in the stand-in transport');
    },
    close: async () => undefined,
  };
}

export function readInventoryFileStandIn(inventory: Inventory, relativePath: string): Buffer | undefined {
  try {
    return readFileSync(resolve(inventory.baseDir, relativePath));
  } catch {
    return undefined;
  }
}
