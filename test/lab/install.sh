#!/usr/bin/env bash
# Installs what the test lab needs, from Debian's packages, when it is missing:
# openssh (sshd + client), incus from bookworm-backports, LXD, prometheus (+ promtool), GNU time,
# and a compiler for ssh2's native crypto.
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/libexec/incus/incusd ] || [ -x /usr/lib/incus/incusd ] || need+=(incus-base)
command -v incus >/dev/null 2>&1 || need+=(incus-client)
# LXD hosts: Debian's LXD 5.0 LTS (daemon and lxc client), from bookworm's main.
[ -x /usr/bin/lxd ] || need+=(lxd)
command -v lxc >/dev/null 2>&1 || need+=(lxd-client)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Jump-only hosts live in a private network namespace (unshare, nsenter, ip).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v ssh-agent >/dev/null 2>&1 || need+=(openssh-client)
# GNU time: `npm run bench` reads the tool's peak memory (max RSS) from it.
[ -x /usr/bin/time ] || need+=(time)
# A compiler for ssh2's native crypto, built by its install script during npm ci (without it ssh2
# falls back to JavaScript AES-GCM: a cipher per packet, three writes per packet; BENCHMARKS.md).
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# ansible-inventory: the reference the inventory tests compare reconcile against.
command -v ansible-inventory >/dev/null 2>&1 || need+=(ansible-core)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install.sh: missing ${need[*]}; run as root to install them" >&2
  exit 1
fi

echo "install.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
if ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian ${codename}-backports main" \
    > /etc/apt/sources.list.d/backports.list
fi
apt-get update -qq
# Packages start their services on install; the lab runs its own copies instead.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
others=()
incus=()
for p in "${need[@]}"; do
  case "$p" in incus-*) incus+=("$p") ;; *) others+=("$p") ;; esac
done
[ ${#others[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${others[@]}" >/dev/null
[ ${#incus[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends -t "${codename}-backports" "${incus[@]}" >/dev/null
echo "install.sh: done"
