/**
 * What an Ansible inventory means once loaded — the types every later stage reads.
 * Loading (load.ts) fills these from YAML with source positions; nothing here does I/O.
 */
import type { Problem, SourceLocation } from '../errors.js';

/** A variable's value together with where it was defined, so any later check can point at it. */
export interface VarDefinition {
  value: unknown;
  /** Where the value node starts (file:line:column). */
  location: SourceLocation;
  /** Path of the value in its file, Ansible-style: `all.children.incus.vars.incus_trust_prune`. */
  valuePath: string;
  /**
   * Positions of nested nodes, keyed by the path below the variable
   * (`[2].projects`, `[0].name`, `.proxy_vms` for a key of a mapping variable), so validation can
   * point inside lists and maps. The key of a mapping entry is under `key:` + its path
   * (`key:[0].name`), for problems about the key itself (an unknown key); the variable's own
   * name is under `key:`.
   */
  nested: ReadonlyMap<string, SourceLocation>;
}

export interface InventoryGroup {
  name: string;
  /** Direct parents; groups without a parent sit under `all` (Ansible's rule). */
  parents: string[];
  /** Direct children groups. */
  children: string[];
  /** Hosts listed directly in this group. */
  hosts: string[];
  /** This group's own variables from the inventory file (`vars:`); group_vars/NAME kept apart below. */
  vars: Record<string, VarDefinition>;
  /** Variables from group_vars/NAME (file or folder); they outrank every inventory-file group var. */
  fileVars: Record<string, VarDefinition>;
  /** Distance from `all` (all = 0); Ansible merges group vars by depth, then name. */
  depth: number;
}

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through a child group, `all` included. */
  groups: string[];
  /**
   * Merged variables with Ansible's precedence (VARIABLE_PRECEDENCE defaults): inventory-file
   * group vars (all, then groups by depth, then name) < group_vars/all < group_vars/GROUP
   * (same order) < inventory-file host vars < host_vars/HOST. Lists replace, never merge.
   */
  vars: Record<string, VarDefinition>;
}

export interface Inventory {
  /** The -i argument as given (file or folder). */
  source: string;
  /** Folder that certificate_file and other relative paths are resolved against. */
  baseDir: string;
  /** Every inventory and *_vars file read, in order. */
  files: string[];
  /** Hosts in inventory order. */
  hosts: Map<string, InventoryHost>;
  /** Groups including the implicit `all` and `ungrouped`. */
  groups: Map<string, InventoryGroup>;
  /** Warnings found while loading (unexpected keys, ignored files); validation reports them. */
  warnings?: Problem[];
  /** Text of every file in `files`, so that problems can quote the source line. */
  sources?: ReadonlyMap<string, string>;
}

/**
 * `!vault` values load as `{ __ansible_vault: "<ciphertext>" }`, as ansible-inventory prints
 * them, so validation can refuse them where reconcile reads them.
 */
export const VAULT_KEY = '__ansible_vault';

/** Plain merged variables of one host (what `reconcile inventory --host` prints). */
export function plainVars(host: InventoryHost): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(host.vars)) out[k] = d.value;
  return out;
}

/**
 * A file beside the inventory that exists but cannot be one (a folder, a FIFO, a device, too
 * large) is read as an empty Buffer, so that every reader fails safe (nothing parses from it,
 * nothing is generated over it); its reason is kept here for the readers that explain.
 */
const unreadable = new WeakMap<Buffer, string>();

export function unreadableFile(reason: string): Buffer {
  const bytes = Buffer.alloc(0);
  unreadable.set(bytes, reason);
  return bytes;
}

/** Why this file could not be read ("is a FIFO (named pipe), not a file"), or undefined. */
export function unreadableReason(bytes: Buffer | undefined): string | undefined {
  return bytes ? unreadable.get(bytes) : undefined;
}
