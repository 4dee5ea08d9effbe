#!/usr/bin/env bash
# Build a signed whole-OS update bundle (RAUC, verity format) from the built image's root
# slot: image-build/update-bundle.sh [amd64|arm64]   (make update-bundle)
#
#   KETANG_UPDATE_VERSION  the bundle's version (default: setup.cfg's); written into the
#                          new root's /usr/lib/ketang/image.env, which the device reports
#   KETANG_UPDATE_CERT     the signing certificate (PEM) and its key, from the key
#   KETANG_UPDATE_KEY      ceremony (docs/updates.md); default: a DEV-ONLY pair made once
#                          under the cache (devices provisioned with its CA only)
#   KETANG_UPDATE_OVERLAY  a folder copied over the root before it is packed (tests use it
#                          to make a version whose `ketang serve` fails)
#
# Writes dist/ketang-<version>-<arch>.raucb and .raucb.json (version, compatible, size,
# sha256, what it was built from). Cached by inputs under KETANG_IMAGE_CACHE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"
arch=${1:-amd64}
[[ -f "$here/rauc/system-$arch.conf" ]] || die "unknown architecture '$arch' (have: amd64, arm64)"
[[ $(id -u) -eq 0 ]] || die "run as root (the root file system's owners must be kept): sudo make update-bundle"
command -v rauc >/dev/null || die "rauc is not installed (make system-deps)"
cd "$repo"
base_version=$(awk -F'[ =]+' '$1=="version" {print $2; exit}' setup.cfg)
version=${KETANG_UPDATE_VERSION:-$base_version}
cache=${KETANG_IMAGE_CACHE:-$HOME/.cache/ketang-image}
dist=${KETANG_IMAGE_DIST:-$repo/dist}
mkdir -p "$cache" "$dist"
compatible=$(awk -F= '$1=="compatible" {print $2; exit}' "$here/rauc/system-$arch.conf")

# The image this bundle updates: the one make image built last (its cache folder).
image_name=ketang-$base_version-$arch
[[ -f "$dist/$image_name.cache-path" ]] || die "no built image for $arch: run make image first"
image=$(cat "$dist/$image_name.cache-path")
[[ -f "$image/root.squashfs" ]] || die "$image has no root.squashfs: run make image again"

cert=${KETANG_UPDATE_CERT:-}
key=${KETANG_UPDATE_KEY:-}
if [[ -z "$cert" ]]; then
  # A DEV-ONLY software-update CA and signer, made once (docs/updates.md, "Key ceremony"
  # says how a real one is made, offline). Anyone with this cache can sign with it.
  dev=$cache/DEV-ONLY-update-keys
  if [[ ! -f "$dev/signer.pem" ]]; then
    say "making a DEV-ONLY software-update CA and signing certificate in $dev"
    bash "$here/update-keys.sh" "$dev" "Ketang DEV-ONLY" >/dev/null 2>&1
  fi
  cert=$dev/signer.pem key=$dev/signer.key
fi
[[ -f "$cert" && -f "$key" ]] || die "signing certificate or key missing: $cert $key"

overlay=${KETANG_UPDATE_OVERLAY:-}
overlay_hash=none
[[ -n "$overlay" ]] && overlay_hash=$(cd "$overlay" && hash_inputs .)   # contents, not where
key_hash=$(printf '%s\n' "$(sha256sum < "$image/root.squashfs" | cut -c1-16)" "$version" \
  "$overlay_hash" "$(sha256sum < "$cert")" "$compatible" \
  "$(hash_inputs image-build/update-bundle.sh)" | sha256sum | cut -c1-16)
out=$cache/bundle-$arch-$key_hash
name=ketang-$version-$arch
publish() {
  rm -f "$dist/$name.raucb" "$dist/$name.raucb.json"
  ln "$out/$name.raucb" "$dist/" 2>/dev/null || cp "$out/$name.raucb" "$dist/"
  cp "$out/$name.raucb.json" "$dist/"
  say "bundle ready: $dist/$name.raucb ($(stat -c %s "$out/$name.raucb") bytes)"
}
if [[ -f "$out/done" ]]; then
  say "inputs unchanged (key $key_hash): reusing $out"
  publish
  exit 0
fi

t0=$(date +%s)
work=$(mktemp -d "$cache/work-bundle-XXXXXX")
trap 'rm -rf "$work"' EXIT
R=$work/root
say "unpacking the root slot of $image"
unsquashfs -q -n -d "$R" "$image/root.squashfs" >/dev/null
sed -i "s/^KETANG_IMAGE_VERSION=.*/KETANG_IMAGE_VERSION=$version/" "$R/usr/lib/ketang/image.env"
grep -q "^KETANG_IMAGE_VERSION=$version\$" "$R/usr/lib/ketang/image.env" \
  || die "could not write the version into image.env"
if [[ -n "$overlay" ]]; then
  say "copying $overlay over the root"
  cp -a --no-preserve=ownership "$overlay/." "$R/"
fi
epoch=$(grep -o '"source_date_epoch": *[0-9]*' "$image/build.json" | grep -o '[0-9]*$' || true)
epoch=${epoch:-1764460800}
t1=$(date +%s)
say "packing the new root slot (squashfs)"
mkdir -p "$work/bundle"
mksquashfs "$R" "$work/bundle/root.img" -quiet -noappend -comp zstd -Xcompression-level 10 \
  -b 256K -mkfs-time "$epoch" -all-time "$epoch" -xattrs >/dev/null
t2=$(date +%s)
cat > "$work/bundle/manifest.raucm" <<EOF
[update]
compatible=$compatible
version=$version
description=Ketang $version ($arch) whole root slot
build=$(git describe --always --dirty 2>/dev/null || echo unknown)

[bundle]
format=verity

[image.rootfs]
filename=root.img
EOF
say "signing the bundle (RAUC, verity format)"
rauc bundle --cert="$cert" --key="$key" "$work/bundle" "$work/$name.raucb" >"$work/rauc.log" 2>&1 \
  || { cat "$work/rauc.log" >&2; die "rauc bundle failed"; }
t3=$(date +%s)
size=$(stat -c %s "$work/$name.raucb")
cat > "$work/$name.raucb.json" <<EOF
{"name": "$name.raucb", "version": "$version", "arch": "$arch", "compatible": "$compatible",
 "kind": "whole-os", "size": $size, "sha256": "$(sha256sum < "$work/$name.raucb" | cut -d' ' -f1)",
 "root_image_bytes": $(stat -c %s "$work/bundle/root.img"),
 "from_image": "$(basename "$image")", "overlay": "$overlay_hash",
 "unpack_seconds": $((t1 - t0)), "pack_seconds": $((t2 - t1)), "sign_seconds": $((t3 - t2))}
EOF
mkdir -p "$out.tmp"
mv "$work/$name.raucb" "$work/$name.raucb.json" "$out.tmp/"
touch "$out.tmp/done"
rm -rf "$out"; mv "$out.tmp" "$out"
say "bundle built in $((t3 - t0)) s (pack $((t2 - t1)) s, sign $((t3 - t2)) s)"
publish
