#!/usr/bin/env bash
# Installs what ariq needs to build, test and run on Debian 12. Idempotent:
# skips apt entirely when everything is already there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libcurl4-openssl-dev libwebsockets-dev libhiredis-dev libjansson-dev
  libevent-dev libcmocka-dev libinih-dev
  redis-server redis-tools
  clang libclang-rt-14-dev
  curl procps prometheus
  python3-yaml python3-jsonschema
  chromium chromium-driver python3-selenium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis on 6379; ariq's tests and demo start their own
# on free ports and never use it.
