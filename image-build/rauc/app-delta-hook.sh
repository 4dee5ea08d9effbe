#!/bin/sh
# RAUC install hook of an app-only bundle (docs/updates.md, "App-only bundles"): the bundle
# carries a zstd patch from the root slot the device runs (the base) to the new root, and
# this hook rebuilds the new root into the idle slot. It runs from the bundle (verified by
# RAUC: signature, then dm-verity over every byte read, this script included) with only
# what every Ketang image has: sh, coreutils, zstd.
#
#   slot-install  (RAUC's `install` hook of image.rootfs): RAUC_IMAGE_NAME (the patch),
#                 RAUC_SLOT_DEVICE (the idle slot), RAUC_SLOT_BOOTNAME, RAUC_BUNDLE_MOUNT_POINT
#   delta.env     beside this script: BASE_SIZE BASE_SHA256 BASE_VERSION NEW_SIZE NEW_SHA256
#
# Refuses, before writing anything, a device whose running root is not the base (another
# build: it needs the whole-OS bundle). The new slot's bytes are hashed while written and
# must match NEW_SHA256, or the install fails and RAUC leaves the slot marked bad (the boot
# selection is not touched). Scratch: one copy of the base on the data partition, removed.
# Tests set KETANG_BOOTED_ROOT (the running slot's device) and KETANG_DELTA_SCRATCH.
set -eu
[ "${1:-}" = slot-install ] || exit 0
say() { echo "ketang app update: $*" >&2; }
fail() { say "$*"; exit 1; }

. "$RAUC_BUNDLE_MOUNT_POINT/delta.env"
booted=$(sed -n 's/.*ketang\.slot=\([a-z]\).*/\1/p' /proc/cmdline)
source=${KETANG_BOOTED_ROOT:-/dev/disk/by-partlabel/ketang-root-$booted}
[ -n "${KETANG_BOOTED_ROOT:-}" ] || [ -n "$booted" ] \
  || fail "无法确定正在运行的系统分区。Cannot tell which root slot is running (no ketang.slot= on the kernel command line); nothing written."
[ "$booted" != "${RAUC_SLOT_BOOTNAME:-}" ] \
  || fail "目标分区正在运行。The target slot $booted is the running one; nothing written."
scratch=${KETANG_DELTA_SCRATCH:-/var/lib/ketang/updates/delta}
mkdir -p "$scratch"
base=$scratch/base.img
trap 'rm -f "$base"' EXIT
free_kb=$(df -Pk "$scratch" | awk 'NR==2 {print $4}')
[ "$free_kb" -gt $((BASE_SIZE / 1024 + 65536)) ] \
  || fail "数据分区空间不足。Not enough room on the data partition for the update's scratch copy ($((BASE_SIZE / 1000000)) MB needed); nothing written."

# The base: the running root's first BASE_SIZE bytes (the slot partition is larger).
got=$(head -c "$BASE_SIZE" "$source" | tee "$base" | sha256sum | cut -d' ' -f1)
[ "$got" = "$BASE_SHA256" ] \
  || fail "此应用更新只适用于 $BASE_VERSION 的系统，未安装。This app-only update applies to the root of version $BASE_VERSION only; this device runs another build, so nothing was written. Install the whole-OS bundle of the same version."

# The new root, hashed on its way into the idle slot.
mmap=
zstd -h 2>&1 | grep -q -- --mmap-dict && mmap=--mmap-dict
got=$( { zstd -q -d -c --long=31 $mmap --patch-from="$base" "$RAUC_IMAGE_NAME" \
           || echo "zstd failed" >&2; } | tee "$RAUC_SLOT_DEVICE" | sha256sum | cut -d' ' -f1)
sync "$RAUC_SLOT_DEVICE" 2>/dev/null || sync
[ "$got" = "$NEW_SHA256" ] \
  || fail "重建的系统与更新包不符，未启用。The rebuilt root does not match the bundle (sha256 $got); the slot is left unbootable and the running system is unchanged."
say "slot ${RAUC_SLOT_BOOTNAME:-?} rebuilt: $NEW_SIZE bytes from a $(stat -c %s "$RAUC_IMAGE_NAME")-byte patch against $BASE_VERSION"
