/**
 * Saved plans on disk (an edge): written 0600 and atomically by `--out`; read back, bounded in
 * size, by `apply PLAN` and `show PLAN`; and the check that the inventory a plan came from is
 * still the one on disk.
 */
import { readFile, stat } from '../async-fs.js';
import { UsageError } from '../errors.js';
import { inventoryDigest } from '../engine/plan-run.js';
import { loadInventory, readInventoryFile } from '../inventory/load.js';
import { changedInventoryFiles, MAX_PLAN_BYTES, parsePlan, PlanFileError, serializePlan } from '../plan/saved-plan.js';
import type { RunPlan } from '../plan/types.js';
import { writeFileAtomic } from './write-atomic.js';

/** Mode 0600: a plan names hosts, users and key file paths; it holds no key material. */
export async function writePlanFile(path: string, plan: RunPlan): Promise<void> {
  try {
    await writeFileAtomic(path, serializePlan(plan), { mode: 0o600 });
  } catch (e) {
    throw new UsageError(`cannot write --out ${path}: ${(e as Error).message}`);
  }
}

export async function readPlanFile(path: string): Promise<RunPlan> {
  let text: string;
  try {
    // Looked at before it is opened: a FIFO or a device is refused, never waited on nor read forever.
    const info = await stat(path);
    if (!info.isFile()) throw new PlanFileError(path, 'is not a regular file');
    if (info.size > MAX_PLAN_BYTES) throw new PlanFileError(path, `is ${info.size} bytes, more than a saved plan may be (${MAX_PLAN_BYTES})`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new PlanFileError(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parsePlan(text, path);
}

/**
 * The inventory on disk must be the one the plan came from (same files, same bytes, same
 * certificates beside it): apply never re-reads it for the plan, so a change would go unseen.
 */
export async function verifyPlanInventory(plan: RunPlan, file: string): Promise<void> {
  let now;
  try {
    const inventory = await loadInventory(plan.inventory.path);
    const read = new Map<string, Buffer | undefined>();
    const listed = inventoryDigest(inventory, new Map()).files.map((f) => f.path);
    for (const f of plan.inventory.files) if (!listed.includes(f.path)) read.set(f.path, readInventoryFile(inventory, f.path));
    now = inventoryDigest(inventory, read);
  } catch (e) {
    throw new PlanFileError(
      file,
      `its inventory ${plan.inventory.path} cannot be read any more (${(e as Error).message}); pass --ignore-inventory-change to apply it anyway`,
    );
  }
  if (now.digest === plan.inventory.digest) return;
  const changed = changedInventoryFiles(plan.inventory.files, now.files);
  throw new PlanFileError(
    file,
    `the inventory changed since the plan was made (${changed.join(', ') || 'its file list'}); plan again, or pass --ignore-inventory-change to apply this plan anyway`,
  );
}
