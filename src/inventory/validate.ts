/**
 * Validation of a loaded inventory, pure (no file system: files are read through the
 * injected reader, the clock is a parameter).
 *
 * Exports:
 *   validateInventory(inventory: Inventory, now: Date,
 *                     readInventoryFile: (relativePath: string) => Buffer | undefined,
 *                     modules: Record<ModuleName, ReconcileModule>): Problem[]
 *     Every problem at once, errors and warnings, each with file:line:column, value path and
 *     source line: the loader's warnings; `{{ }}` and `!vault` in variables reconcile reads;
 *     schema/inventory.schema.json against each host's merged variables; then each module's
 *     desired() for the semantic rules (without the variables refused above, so modules see
 *     well-typed values only). A definition shared by many hosts is reported once.
 *   READ_VARIABLES: the variable names reconcile reads (the schema's properties).
 */
import type { Ajv2020 as Ajv2020Class, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type { Problem, SourceLocation } from '../errors.js';
import type { ModuleName, ReconcileModule } from '../modules/types.js';
import { VAULT_KEY, type Inventory, type InventoryHost, type VarDefinition } from './model.js';
import inventorySchema from '../../schema/inventory.schema.json' with { type: 'json' };
import { nearMissProblems } from './near-miss.js';
import { loadModule } from '../embedded.js';

export const READ_VARIABLES: readonly string[] = Object.keys(inventorySchema.properties);

/** How the schema is compiled, here and by scripts/precompile-schema.mjs. */
export const AJV_OPTIONS = { allErrors: true, strict: true, verbose: true } as const;

/**
 * The schema's validator: the one precompiled at build time when it was made from this very
 * schema, else compiled now. Compiling costs 100-300 ms and importing ajv ~40 ms, on every run
 * (BENCHMARKS.md); the precompiled module loads in a few ms. Tests that run the sources compile.
 */
let validateHostVars: ValidateFunction | undefined;

/**
 * Loads the precompiled validator; commands await it before validating (no top-level await:
 * the single executable is CommonJS). Without it, validation compiles the schema itself.
 */
export async function loadInventoryValidator(): Promise<void> {
  if (validateHostVars) return;
  try {
    // Written by `npm run build` (scripts/precompile-schema.mjs) beside this module in dist/; a
    // literal path, so that the bundles (scripts/bundle.mjs, scripts/package.mjs) take it in.
    const built = (await import('./inventory-schema.validator.js')) as { default: ValidateFunction; schemaText: string };
    if (built.schemaText === JSON.stringify(inventorySchema)) validateHostVars = built.default;
  } catch {
    // Not built (sources run directly): compiled when first needed.
  }
}

function hostVarsValidator(): ValidateFunction {
  if (!validateHostVars) {
    const { Ajv2020 } = loadModule<{ Ajv2020: typeof Ajv2020Class }>('ajv/dist/2020.js', import.meta.url);
    validateHostVars = new Ajv2020(AJV_OPTIONS).compile(inventorySchema);
  }
  return validateHostVars;
}

export function validateInventory(
  inventory: Inventory,
  now: Date,
  readInventoryFile: (relativePath: string) => Buffer | undefined,
  /** Passed in (src/modules/registry.ts MODULES at the edges) so that validation imports no module's I/O. */
  modules: Record<ModuleName, ReconcileModule<any, any>>,
  /** --strict: a variable that looks like one reconcile reads (a typo) is an error, not a warning. */
  options: { strict?: boolean } = {},
): Problem[] {
  const problems = new ProblemList(inventory);
  for (const p of nearMissProblems(inventory, READ_VARIABLES, options.strict ? 'error' : 'warning')) problems.add(p);
  // Many hosts share the same certificate files: read each once (the same Buffer lets
  // modules cache what they parse from it).
  const files = new Map<string, Buffer | undefined>();
  const readOnce = (path: string) => {
    if (!files.has(path)) files.set(path, readInventoryFile(path));
    return files.get(path);
  };
  const ctx = { inventory, readInventoryFile: readOnce, now };
  // Schema verdicts by variable definition (schemaVerdict below).
  const verdicts = new Map<VarDefinition, VariableVerdict>();
  for (const w of inventory.warnings ?? []) problems.add(w);
  for (const host of inventory.hosts.values()) checkHost(host, problems);
  // A value written where no host receives it (a group without hosts, or overridden by every
  // host) is still checked — as a warning: it breaks nothing today, and would the day a host gets it.
  for (const pseudo of unreceivedDefinitions(inventory)) {
    checkHost(pseudo, {
      add: (p) =>
        problems.add(
          p.severity === 'error' ? { ...p, severity: 'warning', message: `${p.message} (no host receives this value today; it is an error once one does)` } : p,
        ),
    });
  }
  return problems.list;

  function checkHost(host: InventoryHost, problems: { add(p: Problem): void }): void {
    const { refused, refusedItems, found } = schemaVerdict(host);
    for (const p of found) problems.add(p);
    // Modules see only well-typed values: a refused variable is left out, a refused item is
    // null in its place (positions stay those of the file), its problems reported above.
    // The host itself when nothing was refused, so that a run can reuse what desired() gave here.
    const seen =
      refused.size === 0 && refusedItems.size === 0
        ? host
        : {
            ...host,
            vars: Object.fromEntries(
              Object.entries(host.vars)
                .filter(([name]) => !refused.has(name))
                .map(([name, def]) => {
                  const items = refusedItems.get(name);
                  return [name, items ? { ...def, value: (def.value as unknown[]).map((v, i) => (items.has(i) ? null : v)) } : def];
                }),
            ),
          };
    for (const module of Object.values(modules)) {
      for (const p of module.desired(seen, ctx).problems) problems.add(p);
    }
  }

  /**
   * What the templates check and the schema say of a host's variables, put together from each
   * variable's verdict. A definition is judged once: the hosts that inherit it (group_vars/all,
   * a group's vars — usually every host's list of certificates) share its verdict, while each
   * host's own connection variables are judged on their own. The schema's properties are
   * independent of one another, so judging them one by one says what judging them together would.
   */
  function schemaVerdict(host: InventoryHost): SchemaVerdict {
    const refused = new Set<string>();
    const refusedItems = new Map<string, Set<number>>();
    const found: Problem[] = [];
    for (const name of READ_VARIABLES) {
      const def = host.vars[name];
      if (!def) continue;
      let verdict = verdicts.get(def);
      if (!verdict) {
        verdict = judge(host, name, def);
        verdicts.set(def, verdict);
      }
      if (verdict.refused) refused.add(name);
      // A bad item of a list refuses that item only: the other items are still checked by the modules.
      if (verdict.items.size > 0) refusedItems.set(name, verdict.items);
      found.push(...verdict.found);
    }
    return { refused, refusedItems, found };
  }

  function judge(host: InventoryHost, name: string, def: VarDefinition): VariableVerdict {
    const found: Problem[] = [];
    const problems = { add: (p: Problem) => void found.push(p) };
    const templated = refuseTemplatesAndVault(def, problems);
    if (templated === 'whole') return { refused: true, items: new Set(), found };
    // A template in one item: the item's other fields are still checked against the schema.
    const items = new Set(templated);
    let refused = false;
    const checked = { [name]: def.value };
    const validateHostVars = hostVarsValidator();
    if (!validateHostVars(checked)) {
      for (const e of collapse(validateHostVars.errors ?? [])) {
        const item = e.instancePath.split('/')[2];
        if (Array.isArray(def.value) && item !== undefined && /^\d+$/.test(item)) items.add(Number(item));
        else refused = true;
        problems.add(schemaProblem(host, checked, e));
      }
    }
    return { refused, items, found };
  }
}

/**
 * The definitions of variables reconcile reads that no host ends up with, as one stand-in host
 * per group holding them (in that group and `all`), so that the same checks run on them.
 */
function unreceivedDefinitions(inventory: Inventory): InventoryHost[] {
  const where = (d: VarDefinition) => `${d.location.file}:${d.location.line}:${d.location.column}`;
  const received = new Set<string>();
  for (const host of inventory.hosts.values()) for (const d of Object.values(host.vars)) received.add(where(d));
  const out: InventoryHost[] = [];
  for (const group of inventory.groups.values()) {
    const vars: Record<string, VarDefinition> = {};
    for (const [name, d] of [...Object.entries(group.vars), ...Object.entries(group.fileVars)]) {
      if (READ_VARIABLES.includes(name) && !received.has(where(d))) vars[name] = d;
    }
    if (Object.keys(vars).length > 0) out.push({ name: `(group ${group.name})`, groups: [...new Set(['all', group.name])], vars });
  }
  return out;
}

/** What the templates check and the schema say of one variable's definition. */
interface VariableVerdict {
  /** Refused whole: its problems in `found`. */
  refused: boolean;
  /** Items of a list refused (the others are kept). */
  items: Set<number>;
  found: Problem[];
}

interface SchemaVerdict {
  /** Variables refused whole (their problems in `found`): the modules do not see them. */
  refused: Set<string>;
  /** Items of list variables refused, by variable: the modules see null in their place. */
  refusedItems: Map<string, Set<number>>;
  found: Problem[];
}

/** Collects problems, fills in source lines, and drops repeats (a group var seen by many hosts). */
class ProblemList {
  readonly list: Problem[] = [];
  private readonly seen = new Set<string>();
  constructor(private readonly inventory: Inventory) {}

  add(p: Problem): void {
    const key = `${p.severity}|${p.location?.file}:${p.location?.line}:${p.location?.column}|${p.valuePath}|${p.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (p.location && p.sourceLine === undefined) {
      const line = this.inventory.sources?.get(p.location.file)?.split(/\r?\n/)[p.location.line - 1];
      if (line !== undefined) p = { ...p, sourceLine: line };
    }
    this.list.push(p);
  }
}

/**
 * Ansible would template `{{ }}` and decrypt `!vault` at run time; reconcile does neither,
 * so such a value in a variable it reads is refused rather than used as literal text.
 * Returns 'whole' when the variable is refused, else the items of a list refused for a template
 * (empty: free of both), so that the rest of the list is still checked.
 */
function refuseTemplatesAndVault(def: VarDefinition, problems: { add(p: Problem): void }): 'whole' | Set<number> {
  let whole = false;
  const items = new Set<number>();
  const visit = (value: unknown, sub: string) => {
    const location = (sub ? def.nested.get(sub) : undefined) ?? def.location;
    if (typeof value === 'string' && /\{\{|\{%|\{#/.test(value)) {
      // Inside an item of a list: that item is refused; anywhere else, the whole variable.
      const item = /^\[(\d+)\]./.exec(sub);
      if (item && Array.isArray(def.value)) items.add(Number(item[1]));
      else whole = true;
      problems.add({
        severity: 'error',
        location,
        valuePath: def.valuePath + sub,
        message: 'holds a Jinja template ({{ … }}); reconcile does not evaluate templates in the variables it reads: write the value itself',
      });
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, `${sub}[${i}]`));
    } else if (value !== null && typeof value === 'object') {
      if (VAULT_KEY in value) {
        whole = true;
        problems.add({
          severity: 'error',
          location,
          valuePath: def.valuePath + sub,
          message: 'is an Ansible Vault value (!vault); reconcile cannot decrypt vault values: keep secrets out of the variables it reads',
        });
        return;
      }
      for (const [k, v] of Object.entries(value)) visit(v, `${sub}.${k}`);
    }
  };
  visit(def.value, '');
  return whole ? 'whole' : items;
}

/** anyOf branches each report an error; keep the anyOf error alone. */
function collapse(errors: ErrorObject[]): ErrorObject[] {
  const anyOf = errors.filter((e) => e.keyword === 'anyOf');
  return errors.filter(
    (e) => e.keyword === 'anyOf' || !anyOf.some((a) => a.instancePath === e.instancePath && e.schemaPath.startsWith(a.schemaPath.replace(/anyOf$/, ''))),
  );
}

function schemaProblem(host: InventoryHost, checked: Record<string, unknown>, e: ErrorObject): Problem {
  const segments = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const variable = segments[0]!;
  const def = host.vars[variable]!;
  // Ansible-style path below the variable: [2].projects
  let sub = '';
  let value: unknown = checked[variable];
  for (const seg of segments.slice(1)) {
    if (Array.isArray(value)) {
      sub += `[${seg}]`;
      value = value[Number(seg)];
    } else {
      sub += `.${seg}`;
      value = (value as Record<string, unknown> | undefined)?.[seg];
    }
  }
  let location: SourceLocation = (sub ? def.nested.get(sub) : undefined) ?? def.location;
  let valuePath = def.valuePath + sub;
  let message: string;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      message = `must be ${article(String(params.type))}, not ${describe(value)}`;
      break;
    case 'required':
      message = `is missing the required key "${String(params.missingProperty)}"`;
      break;
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
      location = def.nested.get(`key:${sub}.${key}`) ?? location;
      valuePath += `.${key}`;
      message = `unknown key "${key}" (allowed: ${allowed.join(', ')})`;
      break;
    }
    case 'enum':
      message = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, not ${describe(value)}`;
      break;
    case 'minItems':
      message = 'must not be an empty list';
      break;
    case 'minLength':
      message = params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long`;
      break;
    case 'maxLength':
      message = `must be at most ${String(params.limit)} characters long`;
      break;
    case 'minimum':
    case 'maximum':
      message = `must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String(params.limit)}, not ${describe(value)}`;
      break;
    case 'pattern': {
      const pattern = String(params.pattern);
      message = pattern.startsWith('^[^\\u0000]')
        ? 'must not contain a NUL character: Incus cuts the text there, so every run would find it changed'
        : pattern === '^[0-9a-fA-F]{12,64}$'
          ? `must be a SHA-256 fingerprint: 12 to 64 hex digits, as 'incus config trust list' shows it, not ${describe(value)}`
          : variable.startsWith('incus_')
            ? 'must not start with a space nor contain "/" or a control character'
            : `must match ${pattern}`;
      break;
    }
    case 'anyOf':
      message =
        variable === 'ansible_port' || variable === 'ansible_ssh_port'
          ? `must be a port number (1-65535), not ${describe(value)}`
          : variable === 'ansible_become'
            ? `must be true or false, not ${describe(value)}`
            : `${e.message ?? 'is not valid'}`;
      break;
    default:
      message = e.message ?? 'is not valid';
  }
  return { severity: 'error', location, valuePath, message };
}

function article(type: string): string {
  const names: Record<string, string> = {
    string: 'a string',
    boolean: 'a boolean (true or false)',
    array: 'a list',
    object: 'a mapping',
    integer: 'a whole number',
    number: 'a number',
  };
  return names[type] ?? `a ${type}`;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return `the ${typeof value} ${String(value)}`;
}
