/**
 * `npm run package`: reconcile as one file. Copied alone into an empty folder and run with a PATH
 * that holds no node (and no node_modules anywhere near), it prints its version, validates an
 * inventory, plans against a real lab host and generates a key pair.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { parseCertificatePem } from '../../src/pki/certificate.js';
import { generateSelfSigned } from '../../src/pki/generate.js';
import { REPO } from './trust-support.js';

const exec = promisify(execFile);
let lab: Lab;
let dir: string;
let executable: string;

beforeAll(async () => {
  await exec(process.execPath, [join(REPO, 'scripts/package.mjs')], { cwd: REPO });
  dir = await mkdtemp(join(tmpdir(), 'reconcile-sea-'));
  await mkdir(join(dir, 'empty-path'));
  executable = join(dir, 'reconcile');
  await copyFile(join(REPO, 'dist/sea/reconcile'), executable);
  lab = await startLab({ name: 'sea', hosts: [{ name: 'solo' }] });
}, 240_000);

afterAll(async () => {
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The executable alone: no node on PATH, run from its own empty folder. */
function run(args: string[]) {
  return exec(executable, args, { cwd: dir, env: { PATH: join(dir, 'empty-path'), HOME: lab.env.HOME } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('the single executable', () => {
  it('runs --version, validate, a --check against a lab host and cert generate with no Node.js on PATH', async () => {
    await expect(exec('sh', ['-c', 'command -v node'], { env: { PATH: join(dir, 'empty-path') } })).rejects.toThrow();
    const version = (await import(join(REPO, 'package.json'), { with: { type: 'json' } })).default.version as string;
    expect(await run(['--version'])).toMatchObject({ code: 0, stdout: `reconcile ${version}\n` });
    expect((await run(['validate', '-i', join(REPO, 'inventory.example')])).stdout).toMatch(/valid — 4 hosts/);

    const cert = await generateSelfSigned({ commonName: 'alice', validityDays: 30, now: new Date(), type: 'client' });
    await writeFile(join(dir, 'alice.crt'), cert.certificatePem);
    await writeFile(
      join(dir, 'hosts.yaml'),
      stringify({
        all: { vars: { incus_trusted_clients: [{ name: 'alice', certificate_file: 'alice.crt' }] }, hosts: { solo: lab.host('solo').inventoryVars() } },
      }),
    );
    const check = await run(['-i', join(dir, 'hosts.yaml'), '--check']);
    expect(check.code, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(`solo:\n  + incus certificate "alice" [${cert.info.fingerprint.slice(0, 12)}]: add (missing)\n`);

    // Generating a pair needs @peculiar/x509, which the executable carries inside (src/embedded.ts).
    const generated = await run(['cert', 'generate', 'bob', '--out-dir', join(dir, 'pki')]);
    expect(generated.code, generated.stderr).toBe(0);
    expect(parseCertificatePem(await readFile(join(dir, 'pki/bob.crt'), 'utf8')).subject).toBe('CN=bob');
  });
});
