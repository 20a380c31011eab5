/**
 * The lint (npm run lint, run by npm test) is a checker: it must reject what it is there to
 * reject. A pure stage that imports the file system, ssh2 or the CLI is refused; the same import
 * in an edge file is not. node:fs/promises is refused in every file of a run.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../e2e/trust-support.js';

async function lint(file: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(join(REPO, 'node_modules/.bin/oxlint'), ['-c', '.oxlintrc.jsonc', '-f', 'unix', file], { cwd: REPO });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code: number; stdout: string };
    return { code: err.code, out: err.stdout };
  }
}

describe('npm run lint', () => {
  it('refuses node:fs, ssh2 and the CLI in a pure stage (src/plan), and allows them at an edge (src/cli)', async () => {
    const body =
      "import { readFileSync } from 'node:fs';\nimport { Client } from 'ssh2';\nimport { runSession } from '../cli/run-session.js';\nexport const x = [readFileSync, Client, runSession];\n";
    const pure = join(REPO, 'src/plan', `lint-probe-${process.pid}.ts`);
    const edge = join(REPO, 'src/cli', `lint-probe-${process.pid}.ts`);
    try {
      await writeFile(pure, body);
      await writeFile(edge, body.replace('../cli/run-session.js', './run-session.js'));
      const refused = await lint(pure);
      expect(refused.code).toBe(1);
      expect(refused.out).toContain("'node:fs' import is restricted from being used");
      expect(refused.out).toContain("'ssh2' import is restricted from being used");
      expect(refused.out).toContain("'../cli/run-session.js' import is restricted from being used by a pattern");
      expect(await lint(edge)).toEqual({ code: 0, out: expect.not.stringContaining('restricted') });
    } finally {
      await rm(pure, { force: true });
      await rm(edge, { force: true });
    }
  });

  it('refuses node:fs/promises anywhere in src (it costs every start ~6 ms), and allows it in a test', async () => {
    const body = "import { readFile } from 'node:fs/promises';\nexport const x = readFile;\n";
    const edge = join(REPO, 'src/cli', `lint-probe-promises-${process.pid}.ts`);
    const test = join(REPO, 'src/cli', `lint-probe-promises-${process.pid}.test.ts`);
    try {
      await writeFile(edge, body);
      await writeFile(test, body);
      const refused = await lint(edge);
      expect(refused.code).toBe(1);
      expect(refused.out).toContain("'node:fs/promises' import is restricted from being used");
      expect(await lint(test)).toEqual({ code: 0, out: expect.not.stringContaining('restricted') });
    } finally {
      await rm(edge, { force: true });
      await rm(test, { force: true });
    }
  });

  it('the code as committed passes it', async () => {
    expect((await lint('src')).code).toBe(0);
  });
});
