# Boot partition of the amd64 image (sourced by build.sh): an EFI system partition
# with systemd-boot, and per root slot its kernel and initramfs. The loader entry of
# slot A names its root by GPT name; an update writes ketang-b+2.conf (boot counting)
# with a higher `version` (the generation that boots first), see provisioning/bootentries.py.
# shellcheck shell=bash

ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709   # "root-x86-64" (discoverable partitions)
KERNEL_CMDLINE="ro rootfstype=squashfs console=tty0 console=ttyS0,115200"

# make_boot_files ROOT ESPDIR KERNEL_VERSION
make_boot_files() {
  local r=$1 esp=$2 kver=$3
  mkdir -p "$esp/EFI/BOOT" "$esp/EFI/systemd" "$esp/loader/entries" "$esp/ketang-a"
  cp "$r/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/BOOT/BOOTX64.EFI"
  cp "$r/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/systemd/systemd-bootx64.efi"
  cp "$r/boot/vmlinuz-$kver" "$esp/ketang-a/vmlinuz"
  cp "$r/boot/initrd.img-$kver" "$esp/ketang-a/initrd.img"
  # editor no: nobody at the keyboard may edit the kernel command line (init=/bin/sh).
  printf 'default ketang-*\ntimeout 0\neditor no\nconsole-mode keep\n' > "$esp/loader/loader.conf"
  cat > "$esp/loader/entries/ketang-a.conf" <<EOT
title   Ketang $version (slot A)
sort-key ketang
version 1
linux   /ketang-a/vmlinuz
initrd  /ketang-a/initrd.img
options root=PARTLABEL=ketang-root-a ketang.slot=a rauc.slot=a $KERNEL_CMDLINE
EOT
  boot_readme "$esp"
}

boot_readme() {
  cat > "$1/README.txt" <<'EOT'
Ketang 课堂 boot partition / 启动分区

把 ketang-setup.toml 放在这里（与本文件同一文件夹），首次启动时会应用它。
Put ketang-setup.toml here (next to this file); it is applied on first boot.
See docs/flashing.md. Do not change other files here.
EOT
}

finish_boot_image() { :; }
write_os_list() { :; }
