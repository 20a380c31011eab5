/**
 * `reconcile completion bash|zsh|fish`: a completion script for the shell — commands, each
 * command's flags (taken from its --help, so they cannot drift apart), files, and for --limit the
 * host and group names of the inventory (-i on the line, else ansible.cfg's), which the script
 * asks `reconcile __names` for at each TAB.
 */
import { parseCommandArgs } from '../args.js';
import { COMMANDS as COMMAND_MODULES, RUN_PLAYBOOK } from '../commands.js';
import { inventoryOf, readAnsibleSettings } from '../ansible-config.js';
import type { CliIO } from '../io.js';
import { UsageError } from '../../errors.js';

export const HELP = `Usage: reconcile completion bash|zsh|fish

Prints a completion script: commands, flags, files, and --limit with the inventory's hosts and
groups. Install it as your shell expects, for example:
  reconcile completion bash > /etc/bash_completion.d/reconcile
  reconcile completion zsh  > "\${fpath[1]}/_reconcile"
  reconcile completion fish > ~/.config/fish/completions/reconcile.fish

  -h, --help   this help
`;

/** The commands, as main.ts dispatches them. */
const COMMANDS = Object.keys(COMMAND_MODULES);

/** Flags whose value is a file: the shell offers files after them. */
const FILE_FLAGS = ['-i', '--inventory', '--out', '--metrics-file', '--private-key', '--write', '--out-dir', '--key-out', '--cert-out'];

/** The flags of a help text's option lines (`  -i, --inventory PATH   …`), not those its prose mentions. */
export function flagsOf(help: string): string[] {
  const flags = new Set<string>();
  for (const line of help.split('\n')) {
    const lead = /^\s+(-[\w-]+(?:,\s*-[\w-]+)*)/.exec(line);
    if (lead) for (const f of lead[1]!.split(/,\s*/)) flags.add(f);
  }
  return [...flags].sort();
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('completion', argv, { help: { type: 'boolean', short: 'h' } } as const);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const shell = positionals[0];
  if (positionals.length !== 1 || !['bash', 'zsh', 'fish'].includes(shell!)) {
    throw new UsageError("completion: give the shell: bash, zsh or fish (see 'reconcile completion --help')");
  }
  const flags = await flagsByCommand();
  io.stdout(shell === 'fish' ? fishScript(flags) : bashScript(flags, shell === 'zsh'));
  return 0;
}

/** `reconcile __names [-i INVENTORY]`: host and group names, one per line, for --limit. Quiet on any error (it runs at each TAB). */
export async function names(argv: string[], io: CliIO): Promise<number> {
  try {
    const { values } = parseCommandArgs('__names', argv, { inventory: { type: 'string', short: 'i' } } as const);
    const { loadInventory } = await import('../../inventory/load.js');
    const inventory = await loadInventory(inventoryOf(values.inventory, readAnsibleSettings(io.env, io.cwd), io));
    io.stdout([...inventory.hosts.keys(), ...[...inventory.groups.keys()].filter((g) => g !== 'all')].join('\n') + '\n');
  } catch {
    // Nothing to offer.
  }
  return 0;
}

async function flagsByCommand(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  out.set('', flagsOf((await RUN_PLAYBOOK()).HELP));
  for (const c of COMMANDS) out.set(c, flagsOf(c === 'completion' ? HELP : (await COMMAND_MODULES[c]!()).HELP));
  return out;
}

function bashScript(flags: Map<string, string[]>, zsh: boolean): string {
  const cases = COMMANDS.map((c) => `    ${c}) flags="${flags.get(c)!.join(' ')}" ;;`).join('\n');
  return `# reconcile completion for ${zsh ? 'zsh (through bashcompinit)' : 'bash'}: reconcile completion ${zsh ? 'zsh' : 'bash'}
${zsh ? 'autoload -U +X bashcompinit && bashcompinit\n' : ''}_reconcile() {
  local cur prev cmd="" inv="" flags i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -i|--inventory) inv="\${COMP_WORDS[i+1]}" ;;
      ${COMMANDS.join('|')}) [[ -z "$cmd" && $i -eq 1 ]] && cmd="\${COMP_WORDS[i]}" ;;
    esac
  done
  case "$prev" in
    -l|--limit)
      COMPREPLY=($(compgen -W "$(reconcile __names \${inv:+-i "$inv"} 2>/dev/null)" -- "$cur"))
      return ;;
    ${FILE_FLAGS.join('|')})
      COMPREPLY=($(compgen -f -- "$cur"))
      return ;;
  esac
  case "$cmd" in
${cases}
    *) flags="${flags.get('')!.join(' ')}" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.join(' ')}" -- "$cur") $(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _reconcile reconcile
`;
}

function fishScript(flags: Map<string, string[]>): string {
  const lines = [
    '# reconcile completion for fish: reconcile completion fish',
    'function __reconcile_names',
    '    set -l words (commandline -opc)',
    '    set -l i (contains -i -- -i $words; or contains -i -- --inventory $words)',
    '    if test -n "$i"',
    '        reconcile __names -i $words[(math $i + 1)] 2>/dev/null',
    '    else',
    '        reconcile __names 2>/dev/null',
    '    end',
    'end',
    `complete -c reconcile -n __fish_use_subcommand -a '${COMMANDS.join(' ')}'`,
    "complete -c reconcile -s l -l limit -x -a '(__reconcile_names)'",
  ];
  const all = new Set([...flags.values()].flat());
  for (const f of [...all].sort()) {
    if (f === '-l' || f === '--limit') continue;
    lines.push(f.startsWith('--') ? `complete -c reconcile -l ${f.slice(2)}` : `complete -c reconcile -s ${f.slice(1)}`);
  }
  return lines.join('\n') + '\n';
}
