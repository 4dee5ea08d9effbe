# The build cache's housekeeping (sourced by build.sh and update-bundle.sh, not run).
# Kept out of lib.sh: lib.sh is an input of the Debian base, and a change here must not
# rebuild the base.
# shellcheck shell=bash

# Keep the build cache from growing without end (image-build/README.md, "Caching"): of the
# entries matching PATTERN (e.g. "image-amd64-*"), keep the KETANG_IMAGE_CACHE_KEEP (default
# 3) most recently used, and any used in the last hour (another build or test may be using
# it now); delete the rest. A build touches what it reuses, so "used" is the mtime.
# Unfinished leftovers of killed builds (work-*, *.tmp, *.tmp.tar) go after a day.
prune_cache() {
  local cache=$1 pattern=$2 keep=${KETANG_IMAGE_CACHE_KEEP:-3} path
  [[ "$keep" =~ ^[1-9][0-9]*$ ]] \
    || die "KETANG_IMAGE_CACHE_KEEP must be a whole number of at least 1, not '$keep'"
  find "$cache" -mindepth 1 -maxdepth 1 -name "$pattern" ! -name '*.tmp' ! -name '*.tmp.tar' \
      -printf '%T@ %p\n' | LC_ALL=C sort -rn | tail -n +$((keep + 1)) | cut -d' ' -f2- \
    | while IFS= read -r path; do
        [[ -n "$(find "$path" -maxdepth 0 -mmin -60)" ]] && continue
        say "cache: removing $(basename "$path") (not among the $keep most recently used)"
        rm -rf -- "$path"
      done
  find "$cache" -mindepth 1 -maxdepth 1 \( -name 'work-*' -o -name '*.tmp' -o -name '*.tmp.tar' \) \
    -mmin +1440 -exec rm -rf -- {} +
}
