/**
 * A Qubes dom0 stand-in for the test lab. Qubes OS cannot run here: the policy folder is a
 * real folder, and the `qvm-*` commands are small scripts that record each call (one line of
 * argv per call) and answer success. Minimal version written by the lab; the Qubes work owns
 * and extends it.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const STAND_INS = ['qvm-service', 'qvm-prefs', 'qvm-ls', 'qvm-check'];

export async function setUpDom0StandIn(hostDir: string): Promise<{ policyDir: string; qvmCallLog: string; binDir: string }> {
  const root = path.join(hostDir, 'dom0');
  const policyDir = path.join(root, 'etc', 'qubes', 'policy.d');
  const binDir = path.join(root, 'bin');
  const qvmCallLog = path.join(root, 'qvm-calls.log');
  await mkdir(policyDir, { recursive: true });
  await mkdir(binDir, { recursive: true });
  await writeFile(qvmCallLog, '');
  for (const name of STAND_INS) {
    const script = `#!/bin/sh\n# Qubes stand-in: records the call, changes nothing.\nprintf '%s' ${name} >> '${qvmCallLog}'\nfor a in "$@"; do printf ' %s' "$a" >> '${qvmCallLog}'; done\necho >> '${qvmCallLog}'\nexit 0\n`;
    await writeFile(path.join(binDir, name), script);
    await chmod(path.join(binDir, name), 0o755);
  }
  return { policyDir, qvmCallLog, binDir };
}
