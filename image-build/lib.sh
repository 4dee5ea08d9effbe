# Shared helpers for the image build scripts (sourced, not run).
# shellcheck shell=bash

SUITE=trixie

die() { echo "image-build: $*" >&2; exit 1; }
say() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# The Debian archive and security archive this machine's apt already uses
# (KETANG_DEBIAN_MIRROR / KETANG_DEBIAN_SECURITY override them). Read from the
# host so no mirror name is written into the repository.
host_mirror() {
  if [[ -n "${KETANG_DEBIAN_MIRROR:-}" ]]; then echo "${KETANG_DEBIAN_MIRROR}"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {u=$2} /^Suites:/ && $0 !~ /-security/ {print u; exit}')
  [[ -z "${uri}" ]] && uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' \
        /etc/apt/sources.list 2>/dev/null)
  [[ -n "${uri}" ]] || die "no Debian archive found in /etc/apt (set KETANG_DEBIAN_MIRROR)"
  echo "${uri}"
}

host_security_mirror() {
  if [[ -n "${KETANG_DEBIAN_SECURITY:-}" ]]; then echo "${KETANG_DEBIAN_SECURITY}"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {u=$2} /^Suites:/ && $0 ~ /-security/ {print u; exit}')
  [[ -z "${uri}" ]] && uri=$(awk '$1=="deb" && $0 ~ /security/ {print $2; exit}' \
        /etc/apt/sources.list 2>/dev/null)
  echo "${uri}"
}

# Package names from the lists (comments and blank lines dropped), comma-separated.
package_list() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | grep -v '^$' | sort -u | paste -sd, -
}

# sha256 of the given files' names and contents (directories recursed, sorted).
hash_inputs() {
  local f
  for f in "$@"; do
    if [[ -d "$f" ]]; then find "$f" -type f -o -type l; else echo "$f"; fi
  done | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"
    if [[ -L "$f" ]]; then readlink "$f"; else sha256sum < "$f"; fi
    stat -c '%a' "$f"
  done | sha256sum | cut -c1-16
}
