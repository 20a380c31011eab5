/**
 * Argument parsing for every sub-command: node's util.parseArgs, strict, with its errors
 * turned into one-line UsageErrors that name the command.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parseCommandArgs<O extends OptionSpec>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${command}: ${message} (see 'reconcile ${command === 'reconcile' ? '' : command + ' '}--help')`);
  }
}

/** Parses a whole, positive number option, or throws a UsageError naming it. */
export function positiveInt(command: string, flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`${command}: ${flag} takes a whole number of at least 1, not '${value}'`);
  }
  return Number(value);
}
