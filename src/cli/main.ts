/**
 * Entry point: argv → command. The only place that calls process.exit and turns an error
 * into an exit code (0 ok / in sync, 2 drift in check mode, 1 anything failed).
 * Commands are imported lazily so that `reconcile --version` loads almost nothing.
 */
import v8 from 'node:v8';
import { formatProblem, InventoryError, TransportError, UsageError } from '../errors.js';
import type { CliIO } from './io.js';
import { processIO } from './io.js';
import { COMMANDS, RUN_PLAYBOOK } from './commands.js';

export type { Command } from './commands.js';

/** What a completion script asks at each TAB: not a command of --help. */
const NAMES = async () => ({ run: (await import('./commands/completion.js')).names });

const TOP_LEVEL_HELP = `Usage: reconcile [PLAYBOOK] -i INVENTORY [--check] [--diff] [--limit PATTERN] [--forks N] [--prune] [--json]
       reconcile COMMAND [options]

Keeps the mTLS trust of Incus servers, Prometheus and Qubes OS machines in the state an
Ansible inventory declares.

Commands:
  (none)          reconcile the hosts: plan, then apply (--check: plan only; --out PLAN saves it)
  apply PLAN      apply exactly a saved plan (what moved since is refused, not forced)
  show PLAN       print a saved plan as text, Markdown (for a pull request) or JSON
  validate        check an inventory (and a playbook) without connecting to any host
  inventory       show the inventory as understood: --list, --host NAME, --graph
  audit           report what every host trusts today, and what expires soon
  import          bring what hosts trust today under the inventory (certificate files + entries)
  cert            generate a key pair and certificate, or show a certificate
  config          show the Ansible settings reconcile takes (ansible.cfg, ANSIBLE_*) and where from
  scrape-config   print the Prometheus scrape configuration for the inventory
  watch           keep every host's plan current from its event stream; serve /metrics, --apply heals drift
  completion      print a shell completion script (bash, zsh, fish)

'reconcile COMMAND --help' describes each; 'reconcile --check --help' the run's options;
'reconcile --version' prints the version.

Exit codes: 0 in sync or applied cleanly; 2 --check found changes to apply and nothing failed;
1 anything failed (a host down counts, even when others drifted). See docs/operations.md.
`;

/**
 * A run keeps little alive but allocates fast while every host's handshake is in flight. V8 grows
 * its young generation for such a burst, doubling up to 16 MB semi-spaces: fewer collections,
 * less copied and promoted. Kept at its start size (1 MB), a 30-host check spent ~75 ms more CPU
 * (~30 ms of it collecting); let grow, a 100-host check peaked 8 MB higher. Capped at 4 MB
 * semi-spaces — what `--max-semi-space-size=4` does, a flag V8 reads only at start — the CPU is
 * saved (30 hosts never reach the cap) for about half of that memory (BENCHMARKS.md). V8 reads
 * the growth factor each time it would grow the space: once the space reached the cap, growth is
 * turned off. The size is looked at on a timer (a ~2 µs V8 call, every 10 ms for the first 5 s,
 * then every second): a PerformanceObserver of GC entries did it after each collection, but
 * queued, sorted and dispatched every entry through a setImmediate — the second-largest cost of
 * our own in a profile of a 100-host check.
 */
const YOUNG_GENERATION_CAP = 8 * 1024 * 1024; // both semi-spaces

function capYoungGeneration(bytes: number): void {
  let looks = 0;
  const look = (): void => {
    const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    if (young && young.space_size >= bytes) {
      v8.setFlagsFromString('--semi-space-growth-factor=1');
      return;
    }
    setTimeout(look, ++looks < 500 ? 10 : 1000).unref();
  };
  setTimeout(look, 10).unref();
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<never> {
  // Set here, after bin/reconcile.js compiled the bundle from its code cache: V8 refuses a cache
  // made under other flags (scripts/bundle.mjs makes it under the defaults).
  capYoungGeneration(YOUNG_GENERATION_CAP);
  // A run is short: V8's optimizing compiler (a background thread, but on the same cores) spent
  // more CPU on lukewarm functions than their optimized code saved. Optimizing only functions 16×
  // hotter than V8's default (67,584) took a 100-host check from 1.92 to 1.58 s of CPU and 87 to
  // 79 MB (BENCHMARKS.md); the hot paths (SSH packets, a large inventory's YAML) are still optimized.
  v8.setFlagsFromString(`--interrupt-budget=${67_584 * 16}`);
  const code = await dispatch(argv, io);
  process.exit(code);
}

export async function dispatch(argv: string[], io: CliIO): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === '--version' || first === '-V') {
      io.stdout(`reconcile ${await version()}\n`);
      return 0;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      io.stdout(TOP_LEVEL_HELP);
      return 0;
    }
    if (first === '__names') return await (await NAMES()).run(rest, io);
    if (first !== undefined && COMMANDS[first]) {
      const mod = await COMMANDS[first]!();
      return await mod.run(rest, io);
    }
    const mod = await RUN_PLAYBOOK();
    return await mod.run(argv, io);
  } catch (e) {
    return reportError(e, io);
  }
}

function reportError(e: unknown, io: CliIO): number {
  if (e instanceof UsageError) {
    io.stderr(`reconcile: ${e.message}\n`);
    return 1;
  }
  if (e instanceof InventoryError) {
    for (const p of e.problems) io.stderr(formatProblem(p) + '\n');
    const errors = e.problems.filter((p) => p.severity === 'error').length;
    io.stderr(`reconcile: ${errors} error(s); nothing was changed\n`);
    return 1;
  }
  if (e instanceof TransportError) {
    io.stderr(`reconcile: ${e.message}\n`);
    return 1;
  }
  const err = e as Error;
  io.stderr(`reconcile: internal error (a bug, please report it): ${err?.message ?? String(e)}\n`);
  if (process.env.RECONCILE_DEBUG) io.stderr(`${err?.stack ?? ''}\n`);
  return 1;
}

export async function version(): Promise<string> {
  return (await import('./package-info.js')).packageVersion();
}
