/**
 * A Qubes dom0 STAND-IN for the test lab. Qubes OS cannot run here (it needs Xen and its own
 * dom0), so a lab host with `dom0: true` gets:
 *   - a real policy folder (like /etc/qubes/policy.d, group `qubes`) that reconcile writes;
 *   - `qvm-service`, a stand-in that only records its calls and keeps each VM's services in
 *     a text file; it knows a fixed list of VMs and refuses others as the real one does
 *     ("no such domain");
 *   - `qvm-ls` and `qvm-tags`, stand-ins that list VMs (`--raw-list`, `--tags TAG`) and
 *     add or remove a VM's tags, kept as "VM TAG" lines in a text file;
 *   - `qubes-policy-lint`, a stand-in written in Python like the real tool, that runs a
 *     real syntax check of qrexec policy v5 lines (independent of reconcile's own checker).
 * Every stand-in call is appended to the call log, so tests can assert what reconcile ran.
 * The lab puts binDir first on that host's sshd PATH; tests with `ansible_connection: local`
 * put it on the CLI's PATH.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The VMs the stand-in dom0 knows (a fresh Qubes install plus a few AppVMs). */
export const STAND_IN_VMS = ['dom0', 'sys-net', 'sys-firewall', 'sys-usb', 'work', 'personal', 'untrusted', 'vault', 'monitoring'];

export interface Dom0StandIn {
  policyDir: string;
  qvmCallLog: string;
  binDir: string;
}

/** Files the stand-ins keep their state in, beside binDir. */
export function dom0StandInState(binDir: string): { servicesFile: string; vmsFile: string; tagsFile: string } {
  const root = path.dirname(binDir);
  return { servicesFile: path.join(root, 'qvm-services'), vmsFile: path.join(root, 'qubes-vms'), tagsFile: path.join(root, 'qubes-tags') };
}

export async function setUpDom0StandIn(hostDir: string): Promise<Dom0StandIn> {
  const root = path.join(hostDir, 'dom0-stand-in');
  const policyDir = path.join(root, 'etc', 'qubes', 'policy.d');
  const binDir = path.join(root, 'bin');
  const qvmCallLog = path.join(root, 'qvm-calls.log');
  const { servicesFile, vmsFile, tagsFile } = dom0StandInState(binDir);
  await mkdir(policyDir, { recursive: true });
  await mkdir(binDir, { recursive: true });
  await ensureGroup('qubes');
  // As on dom0: the policy folder belongs to group qubes.
  await chown(policyDir, 0, await gid('qubes'));
  await chmod(policyDir, 0o2775);
  await writeFile(qvmCallLog, '');
  await writeFile(servicesFile, '');
  await writeFile(vmsFile, STAND_IN_VMS.join('\n') + '\n');
  await writeFile(path.join(binDir, 'qvm-service'), qvmServiceScript(qvmCallLog, servicesFile, vmsFile), { mode: 0o755 });
  await writeFile(path.join(binDir, 'qubes-policy-lint'), policyLintScript(qvmCallLog), { mode: 0o755 });
  await writeFile(tagsFile, '');
  await writeFile(path.join(binDir, 'qvm-ls'), qvmLsScript(qvmCallLog, vmsFile, tagsFile), { mode: 0o755 });
  await writeFile(path.join(binDir, 'qvm-tags'), qvmTagsScript(qvmCallLog, vmsFile, tagsFile), { mode: 0o755 });
  return { policyDir, qvmCallLog, binDir };
}

async function ensureGroup(name: string): Promise<void> {
  try {
    await run('getent', ['group', name]);
  } catch {
    // Created once per machine; a concurrent lab may have just created it.
    await run('groupadd', ['--system', name]).catch(() => run('getent', ['group', name]));
  }
}

async function gid(name: string): Promise<number> {
  const { stdout } = await run('getent', ['group', name]);
  return Number(stdout.split(':')[2]);
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function qvmServiceScript(log: string, services: string, vms: string): string {
  return `#!/bin/sh
# STAND-IN for Qubes OS's qvm-service, in reconcile's test lab. Qubes OS cannot run here:
# this script records every call and keeps "VM SERVICE on|off" lines in a file.
# Usage as the real tool: qvm-service [-l] VM | [-e|-d|-D] VM SERVICE | VM SERVICE [on|off]
LOG=${shQuote(log)}
STATE=${shQuote(services)}
VMS=${shQuote(vms)}
printf '%s\\n' "qvm-service $*" >> "$LOG"
action=list; vm=; service=; value=
for a in "$@"; do
  case $a in
    -l|--list) ;;
    -e|--enable) value=on ;;
    -d|--disable) value=off ;;
    -D|--default|--unset|--delete) action=unset ;;
    --) ;;
    -*) echo "qvm-service: error: unrecognized arguments: $a" >&2; exit 2 ;;
    *) if [ -z "$vm" ]; then vm=$a; elif [ -z "$service" ]; then service=$a; else value=$a; fi ;;
  esac
done
if [ -z "$vm" ]; then
  echo "usage: qvm-service [-h] [--verbose] [--quiet] [--unset] [--list] [--enable] [--disable] VMNAME [SERVICE] [VALUE]" >&2
  exit 2
fi
if ! awk -v vm="$vm" '$0 == vm { found = 1 } END { exit !found }' "$VMS"; then
  echo "qvm-service: error: no such domain: '$vm'" >&2
  exit 2
fi
if [ -z "$service" ]; then
  awk -v vm="$vm" '$1 == vm { printf "%-24s  %s\\n", $2, $3 }' "$STATE"
  exit 0
fi
case $value in
  on|1|yes|true|ON|Yes|True) value=on ;;
  off|0|no|false|OFF|No|False) value=off ;;
  '') ;;
  *) echo "qvm-service: error: Invalid literal for boolean value: '$value'" >&2; exit 1 ;;
esac
if [ "$action" = list ] && [ -z "$value" ]; then
  current=$(awk -v vm="$vm" -v s="$service" '$1 == vm && $2 == s { print $3 }' "$STATE")
  [ -n "$current" ] || exit 1
  echo "$current"
  exit 0
fi
tmp="$STATE.tmp.$$"
awk -v vm="$vm" -v s="$service" '!($1 == vm && $2 == s)' "$STATE" > "$tmp"
[ "$action" = unset ] || printf '%s %s %s\\n' "$vm" "$service" "$value" >> "$tmp"
mv "$tmp" "$STATE"
`;
}

function qvmLsScript(log: string, vms: string, tags: string): string {
  return `#!/bin/sh
# STAND-IN for Qubes OS's qvm-ls, in reconcile's test lab (Qubes OS cannot run here): records
# the call; --raw-list prints VM names, one per line; --tags TAG keeps the VMs with that tag.
LOG=${shQuote(log)}
VMS=${shQuote(vms)}
TAGS=${shQuote(tags)}
printf '%s\\n' "qvm-ls $*" >> "$LOG"
tag=
while [ $# -gt 0 ]; do
  case $1 in
    --raw-list) ;;
    --tags) shift; tag=$1 ;;
    *) echo "qvm-ls: error: unrecognized arguments: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$tag" ]; then cat "$VMS"; exit 0; fi
awk -v t="$tag" '$2 == t { print $1 }' "$TAGS" | sort -u
`;
}

function qvmTagsScript(log: string, vms: string, tags: string): string {
  return `#!/bin/sh
# STAND-IN for Qubes OS's qvm-tags, in reconcile's test lab: qvm-tags VM add|del TAG.
LOG=${shQuote(log)}
VMS=${shQuote(vms)}
TAGS=${shQuote(tags)}
printf '%s\\n' "qvm-tags $*" >> "$LOG"
vm=$1; action=$2; tag=$3
if ! awk -v vm="$vm" '$0 == vm { found = 1 } END { exit !found }' "$VMS"; then
  echo "qvm-tags: error: no such domain: '$vm'" >&2
  exit 2
fi
tmp="$TAGS.tmp.$$"
awk -v vm="$vm" -v t="$tag" '!($1 == vm && $2 == t)' "$TAGS" > "$tmp"
[ "$action" = del ] || printf '%s %s\\n' "$vm" "$tag" >> "$tmp"
mv "$tmp" "$TAGS"
`;
}

function policyLintScript(log: string): string {
  return `#!/usr/bin/python3
# STAND-IN for qubes-policy-lint (qubes-core-qrexec), in reconcile's test lab. Qubes OS cannot
# run here. This is a real syntax check of qrexec policy v5 files, written after
# qrexec/policy/parser.py; it records each call and prints errors as the real tool does
# (PATH:LINE: error: MESSAGE), exiting 1 when a file has any.
import string, sys

LOG = ${JSON.stringify(log)}
RPCNAME = set(string.ascii_letters + string.digits + "-._+")
PREFIXES = ("@dispvm:@tag:", "@tag:", "@type:", "@dispvm:")
SOURCE_EXACT = {"*", "@anyvm", "@adminvm"}
TARGET_EXACT = {"*", "@anyvm", "@adminvm", "@default", "@dispvm"}
PARAMS = {
    "allow": {"target", "user", "autostart", "notify"},
    "deny": {"notify"},
    "ask": {"target", "default_target", "user", "autostart", "notify"},
}

def token_error(token, exact, what):
    if token == "dom0" or not (token.startswith("@") or token == "*"):
        return None
    if token in exact:
        return None
    for prefix in PREFIXES:
        if token.startswith(prefix):
            value = token[len(prefix):]
            if not value:
                return "invalid empty %s token: %r" % (prefix, token)
            if value.startswith("@"):
                continue
            return None
    return "invalid %s token: %r" % (what, token)

def is_redirect(value):
    if value in ("@adminvm", "@dispvm"):
        return True
    if value.startswith("@dispvm:"):
        return len(value) > len("@dispvm:") and not value.startswith("@dispvm:@")
    return value != "" and value != "*" and not value.startswith("@")

def rule_error(line):
    fields = line.split()
    if fields[0].startswith("!"):
        counts = {"!include": 1, "!include-dir": 1, "!include-service": 3}
        if fields[0] not in counts:
            return "invalid directive"
        if len(fields) - 1 != counts[fields[0]]:
            return "invalid number of params"
        return None
    if len(fields) < 5:
        return "wrong number of fields"
    service, argument, source, target, action = fields[:5]
    if service != "*" and (not set(service) <= RPCNAME or "+" in service):
        return "service %r contains invalid characters" % service
    if argument != "*":
        if not set(argument) <= RPCNAME:
            return "argument %r contains invalid characters" % argument
        if not argument.startswith("+"):
            return "argument %r does not start with +" % argument
        if service == "*":
            return "only * argument allowed for * service"
    err = token_error(source, SOURCE_EXACT, "source") or token_error(target, TARGET_EXACT, "target")
    if err:
        return err
    if action not in PARAMS:
        return "invalid action: %s" % action
    seen = set()
    for param in fields[5:]:
        if "=" not in param or param.startswith("="):
            return "invalid action parameter syntax: %r" % param
        key, value = param.split("=", 1)
        if key in seen:
            return "parameter given twice: %r" % key
        seen.add(key)
        if key not in PARAMS[action]:
            return "invalid parameters for action %s: %s" % (action, fields[5:])
        if key in ("autostart", "notify") and value not in ("yes", "no"):
            return "invalid value for %s: %r" % (key, value)
        if key in ("target", "default_target") and not is_redirect(value):
            return "invalid redirect token: %r" % value
    if target == "@default" and action == "allow" and "target" not in seen:
        return "allow action for @default rule must specify target= option"
    return None

def main(argv):
    with open(LOG, "a") as log:
        log.write(" ".join(["qubes-policy-lint"] + argv) + "\\n")
    files = [a for a in argv if not a.startswith("-")]
    if not files:
        print("usage: qubes-policy-lint [-h] [-s] [-i] FILE [FILE ...]", file=sys.stderr)
        return 2
    errors = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\\n")
        except OSError as e:
            errors.append("%s:0: error: %s" % (path, e.strerror))
            continue
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            err = rule_error(line)
            if err:
                errors.append("%s:%d: error: %s" % (path, lineno, err))
    if errors:
        print("\\n".join(errors))
        return 1
    return 0

sys.exit(main(sys.argv[1:]))
`;
}
