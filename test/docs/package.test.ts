/**
 * The npm package people install: its name is ours (not the unrelated `reconcile`), it ships
 * what a user needs (the bundled CLI, schemas, the playbook, docs/ that --help cites, LICENSE)
 * and nothing of the test lab, demo, bench or expectations. Installed from its tarball into an
 * empty prefix, `reconcile` runs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const REPO = join(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'reconcile-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What may be in the tarball. */
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^bin\/reconcile\.js$/,
  // Says bin/ is CommonJS: the launcher starts without Node's ES module loader.
  /^bin\/package\.json$/,
  // The CLI in one CommonJS file and V8's code cache for it (scripts/bundle.mjs).
  /^dist\/bundle\/main\.cjs(\.cache)?$/,
  /^schema\/(inventory|plan|report)\.schema\.json$/,
  /^playbooks\/site\.yaml$/,
  /^docs\/[\w./-]+\.(md|svg|yaml)$/,
];

describe('npm pack', () => {
  it('ships the allow-listed files only, with every file --help cites, under a name of our own', async () => {
    const { stdout } = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO });
    const [pack] = JSON.parse(stdout) as { name: string; files: { path: string }[] }[];
    expect(pack!.name).toBe('incus-reconcile');
    const files = pack!.files.map((f) => f.path).sort();
    expect(files.filter((f) => !ALLOWED.some((a) => a.test(f)))).toEqual([]);
    for (const needed of [
      'LICENSE',
      'bin/reconcile.js',
      'dist/bundle/main.cjs',
      'dist/bundle/main.cjs.cache',
      'docs/operations.md',
      'playbooks/site.yaml',
      'schema/report.schema.json',
    ]) {
      expect(files).toContain(needed);
    }
    const help = readFileSync(join(REPO, 'src/cli/main.ts'), 'utf8');
    for (const cited of help.match(/docs\/[\w.-]+\.md/g) ?? []) expect(files).toContain(cited);
  });

  it('installed from its tarball into an empty prefix, `reconcile` runs', async () => {
    const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: REPO });
    const tarball = join(work, stdout.trim().split('\n').at(-1)!);
    const prefix = join(work, 'prefix');
    await exec('npm', ['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], { cwd: work }).catch(() =>
      exec('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: work }),
    );
    const version = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;
    const run = await exec(join(prefix, 'bin', 'reconcile'), ['--version'], { cwd: work });
    expect(run.stdout.trim()).toBe(`reconcile ${version}`);
    const validate = await exec(join(prefix, 'bin', 'reconcile'), ['validate', '-i', join(REPO, 'inventory.example')], { cwd: work });
    expect(validate.stdout).toMatch(/valid — 4 hosts/);
  }, 240_000);
});
