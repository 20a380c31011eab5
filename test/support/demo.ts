/**
 * `npm run demo`: starts a small lab (two real hosts, each an sshd and an incusd on loopback
 * addresses), writes an inventory with certificates generated for the occasion, and runs
 *   reconcile --check   → the plan, drift, exit 2
 *   reconcile           → applied, exit 0
 *   reconcile --check   → in sync, exit 0
 * printing each command and its output, then stops the lab (also on Ctrl-C or failure).
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab } from '../lab/lab.js';
import type { Lab } from '../lab/types.js';
import { generateSelfSigned } from '../../src/pki/generate.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(REPO, 'bin/reconcile.js');

function say(text: string): void {
  process.stdout.write(`\n=== ${text}\n`);
}

/** Runs the CLI with the lab's HOME (its ssh key, known_hosts, ssh config), output passed through. */
function reconcile(lab: Lab, args: string[]): Promise<number> {
  process.stdout.write(`\n$ reconcile ${args.join(' ')}\n`);
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: lab.env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => {
      process.stdout.write(`(exit code ${code})\n`);
      res(code ?? 1);
    });
  });
}

async function writeCertificate(dir: string, name: string): Promise<string> {
  // Only the public certificate goes beside the inventory; the demo has no use for the key.
  const pair = await generateSelfSigned({ commonName: name, validityDays: 365, now: new Date(), type: 'client' });
  await mkdir(join(dir, 'certs'), { recursive: true });
  await writeFile(join(dir, 'certs', `${name}.crt`), pair.certificatePem);
  return `certs/${name}.crt`;
}

async function main(): Promise<number> {
  say('Starting a lab: 2 hosts, each a real sshd and a real incusd on its own loopback address');
  const lab = await startLab({ hosts: 2, name: 'demo' });
  const stop = async () => {
    say('Stopping the lab');
    await lab.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    for (const h of lab.hosts) process.stdout.write(`  ${h.name}: ssh ${h.user}@${h.address}:${h.sshPort}, incusd in ${h.incusDir}\n`);

    const dir = join(lab.dir, 'demo-inventory');
    say(`Writing an inventory and its certificates in ${dir}`);
    const alice = await writeCertificate(dir, 'alice-laptop');
    const ci = await writeCertificate(dir, 'ci-runner');
    const oldLaptop = await writeCertificate(dir, 'old-laptop');
    const [host1, host2] = lab.hosts as [Lab['hosts'][number], Lab['hosts'][number]];
    say('Drift made by hand, as happens: alice-laptop restricted on host1, old-laptop still trusted on host2');
    await host1.incus(['config', 'trust', 'add-certificate', join(dir, alice), '--name', 'alice-laptop', '--restricted', '--projects', 'default']);
    await host2.incus(['config', 'trust', 'add-certificate', join(dir, oldLaptop), '--name', 'old-laptop']);
    const inventory = await lab.writeInventory({
      file: join(dir, 'inventory.yaml'),
      group: 'incus',
      allVars: {
        incus_trusted_clients: [
          { name: 'alice-laptop', description: 'Alice, admin', certificate_file: alice },
          { name: 'ci-runner', description: 'CI deploys', certificate_file: ci, restricted: true, projects: ['default'] },
          { name: 'old-laptop', certificate_file: oldLaptop, state: 'absent' },
        ],
      },
    });
    process.stdout.write(`  inventory: ${inventory}\n  certificates: ${alice}, ${ci}, ${oldLaptop} (public certificates only)\n`);

    say('1. Dry run: what would change (expect drift, exit code 2)');
    const check = await reconcile(lab, ['-i', inventory, '--check', '--diff']);
    say('2. Apply');
    const apply = await reconcile(lab, ['-i', inventory]);
    say('3. Dry run again: nothing left to do (expect exit code 0)');
    const again = await reconcile(lab, ['-i', inventory, '--check']);

    say('What the hosts trust now, read with incus itself');
    for (const h of lab.hosts) {
      process.stdout.write(`${h.name}:\n${await h.incus(['config', 'trust', 'list', '--format', 'compact'])}`);
    }

    const ok = check === 2 && apply === 0 && again === 0;
    say(ok ? 'Demo finished as expected: drift (2), applied (0), in sync (0)' : `Unexpected exit codes: ${check}, ${apply}, ${again} (expected 2, 0, 0)`);
    return ok ? 0 : 1;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`demo: ${e.message}\n`);
    process.exit(1);
  },
);
