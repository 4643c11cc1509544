#!/usr/bin/env bash
# Make a fresh clone ready to run the demo and the tests: the Debian tools the
# e2e tests drive, node_modules, and the build. Safe to run again: each step
# is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "meshnet: the demo and the tests create network namespaces and must run as root" >&2
  exit 1
fi

# Debian packages, by the command each provides.
declare -A pkg_for=(
  [ip]=iproute2 [nft]=nftables [ping]=iputils-ping [iperf3]=iperf3 [tcpdump]=tcpdump
  [nsenter]=util-linux [podman]=podman [ctr]=containerd [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins [busybox]=busybox-static
  [chromium]=chromium [systemd-analyze]=systemd [ethtool]=ethtool
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  if [[ $cmd == /* ]]; then [ -e "$cmd" ] || missing+=("${pkg_for[$cmd]}")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "meshnet: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "meshnet: npm ci" >&2
  npm ci --no-audit --no-fund >/dev/null
fi

echo "meshnet: building" >&2
npm run --silent build
