#!/usr/bin/env bash
# Stage 1 of the image: a Debian root file system with every package of the image,
# made by mmdebstrap from Debian's archive, written as a tarball.
#   image-build/base.sh ARCH OUT.tar
# The initramfs is built once, at the end (package triggers would otherwise build it
# several times, which under qemu-user emulation costs many minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
arch=${1:?usage: base.sh ARCH OUT.tar}
out=${2:?usage: base.sh ARCH OUT.tar}
[[ -f "$here/packages/$arch.txt" ]] || die "unknown architecture '$arch' (have: amd64, arm64)"
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
export SOURCE_DATE_EPOCH

# A foreign architecture runs its package scripts under qemu-user: make sure the
# kernel knows the interpreter (qemu-user-static's binfmt entry).
if [[ "$arch" != "$(dpkg --print-architecture)" ]]; then
  qarch=$( [[ "$arch" == arm64 ]] && echo aarch64 || echo "$arch")
  [[ -e /proc/sys/fs/binfmt_misc/register ]] \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [[ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qarch" ]]; then
    [[ -f "/usr/lib/binfmt.d/qemu-$qarch.conf" ]] \
      || die "no qemu-user-static for $arch (apt-get install qemu-user-static)"
    grep -v '^#' "/usr/lib/binfmt.d/qemu-$qarch.conf" > /proc/sys/fs/binfmt_misc/register
  fi
fi

mirror=$(host_mirror)
security=$(host_security_mirror)
sources=("deb $mirror $SUITE main non-free-firmware"
         "deb $mirror $SUITE-updates main non-free-firmware")
[[ -n "$security" ]] && sources+=("deb $security $SUITE-security main non-free-firmware")

# /boot/firmware exists so raspi-firmware's kernel hooks (arm64) have somewhere to copy to;
# build.sh fills the real boot partition itself.
divert='mkdir -p "$1/boot/firmware"
chroot "$1" dpkg-divert --quiet --local --rename --add \
  --divert /usr/sbin/update-initramfs.ketang-real /usr/sbin/update-initramfs
printf "#!/bin/sh\nexit 0\n" > "$1/usr/sbin/update-initramfs"
chmod 755 "$1/usr/sbin/update-initramfs"'
undivert='rm -f "$1/usr/sbin/update-initramfs"
chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs'

say "mmdebstrap $SUITE $arch -> $out"
mmdebstrap --variant=apt --architectures="$arch" \
  --include="$(package_list "$here/packages/common.txt" "$here/packages/$arch.txt")" \
  --aptopt='Acquire::Languages "none"' \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/zh_CN/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --essential-hook="$divert" \
  --customize-hook="$undivert" \
  --customize-hook="sync-in $here/initramfs /etc/initramfs-tools" \
  --customize-hook='chroot "$1" update-initramfs -c -k all' \
  "$SUITE" "${out%.tar}.tmp.tar" "${sources[@]}"
mv "${out%.tar}.tmp.tar" "$out"
