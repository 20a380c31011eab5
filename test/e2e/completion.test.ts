/**
 * Shell completion as a user gets it: bash sources `reconcile completion bash` and completes
 * flags and, for --limit, the hosts and groups of the inventory on the line (asked of the real
 * CLI at each TAB).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './trust-support.js';

const exec = promisify(execFile);
const bin = mkdtempSync(join(tmpdir(), 'reconcile-completion-'));
afterAll(() => rmSync(bin, { recursive: true, force: true }));
// `reconcile` on PATH, as an installed package puts it.
writeFileSync(join(bin, 'reconcile'), `#!/bin/sh\nexec ${process.execPath} ${join(REPO, 'bin/reconcile.js')} "$@"\n`);
chmodSync(join(bin, 'reconcile'), 0o755);

/** What bash offers for the words typed so far (the last one is being completed). */
async function complete(...words: string[]): Promise<string[]> {
  const script = [
    'source <(reconcile completion bash)',
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_reconcile',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const { stdout } = await exec('bash', ['-c', script], { cwd: REPO, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  return stdout.split('\n').filter(Boolean);
}

describe('reconcile completion bash', () => {
  it('completes commands, the flags of the command typed, and --limit with the hosts and groups of the inventory', async () => {
    expect(await complete('reconcile', '--li')).toEqual(['--limit', '--list-hosts']);
    expect(await complete('reconcile', 'aud')).toEqual(['audit']);
    expect(await complete('reconcile', 'cert', '--key')).toEqual(['--key-out']);
    const seed = 'test/fixtures/seed-incus-cluster/host-incus-cluster.yaml';
    expect(await complete('reconcile', '-i', seed, '--limit', 'incus')).toEqual(['incus.aoostar.mszlocal', 'incus.peladin.mszlocal', 'incus']);
    expect(await complete('reconcile', '-i', seed, '--limit', 'incus.p')).toEqual(['incus.peladin.mszlocal']);
  });

  it('prints scripts for zsh and fish, and refuses another shell', async () => {
    const run = (...args: string[]) => exec(process.execPath, [join(REPO, 'bin/reconcile.js'), ...args]);
    expect((await run('completion', 'zsh')).stdout).toMatch(/^# reconcile completion for zsh[^\n]*\nautoload -U \+X bashcompinit && bashcompinit\n/);
    expect((await run('completion', 'fish')).stdout).toContain("complete -c reconcile -s l -l limit -x -a '(__reconcile_names)'\n");
    await expect(run('completion', 'tcsh')).rejects.toMatchObject({
      stderr: "reconcile: completion: give the shell: bash, zsh or fish (see 'reconcile completion --help')\n",
    });
  });
});
