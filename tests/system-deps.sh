#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only where they are missing.
# Each line of tests/system-packages.txt (or the list given as $1) is "command package": if the command is
# not on PATH (or, for a command starting with "/", that file is missing), the
# package is installed with apt-get (as root).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r cmd pkg; do
  [[ -z "${cmd}" || "${cmd}" == \#* ]] && continue
  if [[ "${cmd}" == /* ]]; then
    [[ -e "${cmd}" ]] || missing+=("${pkg}")
  else
    command -v "${cmd}" >/dev/null 2>&1 || missing+=("${pkg}")
  fi
done < "${1:-system-packages.txt}"
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "The test suite needs these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages the tests need: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
