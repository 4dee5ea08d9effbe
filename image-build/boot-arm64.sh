# Boot partition of the arm64 image for the Raspberry Pi 4 (sourced by build.sh).
# The Pi's own firmware (Debian's raspi-firmware) reads config.txt and starts U-Boot
# (Debian's u-boot-rpi, rpi_arm64), which runs boot.scr: it loads the slot's kernel and
# initramfs and boots with the root slot named on the command line. Debian's kernel does
# not implement the Pi's tryboot, so A/B selection and the boot counter (issue 17) live in
# boot.scr and U-Boot's environment.
# shellcheck shell=bash

ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=B921B045-1DF0-41C3-AF44-4C6F280D3FAE   # "root-arm64" (discoverable partitions)
KERNEL_CMDLINE="ro rootfstype=squashfs console=ttyS1,115200 console=tty1"
PI_DTB=bcm2711-rpi-4-b.dtb

# make_boot_files ROOT ESPDIR KERNEL_VERSION
make_boot_files() {
  local r=$1 esp=$2 kver=$3 f dtb
  mkdir -p "$esp/ketang-a"
  for f in bootcode.bin start4.elf fixup4.dat start4x.elf fixup4x.dat LICENCE.broadcom; do
    [[ -f "$r/usr/lib/raspi-firmware/$f" ]] && cp "$r/usr/lib/raspi-firmware/$f" "$esp/"
  done
  [[ -f "$esp/start4.elf" ]] || die "raspi-firmware has no start4.elf (Pi 4 firmware)"
  cp "$r/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$esp/u-boot.bin"
  dtb=$(find "$r/usr/lib/linux-image-$kver" -name "$PI_DTB" | head -n1)
  [[ -n "$dtb" ]] || die "kernel $kver has no $PI_DTB"
  cp "$dtb" "$esp/$PI_DTB"
  # U-Boot's booti takes an uncompressed Image; Debian's vmlinuz may be gzip.
  if gzip -t "$r/boot/vmlinuz-$kver" 2>/dev/null; then
    gzip -dc "$r/boot/vmlinuz-$kver" > "$esp/ketang-a/vmlinuz"
  else
    cp "$r/boot/vmlinuz-$kver" "$esp/ketang-a/vmlinuz"
  fi
  cp "$r/boot/initrd.img-$kver" "$esp/ketang-a/initrd.img"
  cat > "$esp/config.txt" <<EOT
# Ketang $version (Raspberry Pi 4): the firmware starts U-Boot, which boots a root slot.
[pi4]
arm_64bit=1
kernel=u-boot.bin
device_tree=$PI_DTB
enable_uart=1
upstream_kernel=1
disable_overscan=1
[all]
EOT
  # A/B with a boot counter in U-Boot's environment (RAUC's uboot backend, issue 17).
  sed "s|KERNEL_CMDLINE|$KERNEL_CMDLINE|" "$here/rauc/boot-arm64.cmd" > "$esp/boot.cmd"
  mkimage -q -A arm64 -O linux -T script -C none -n "Ketang boot" -d "$esp/boot.cmd" \
    "$esp/boot.scr" >/dev/null
  boot_readme "$esp"
}

boot_readme() {
  cat > "$1/README.txt" <<'EOT'
Ketang 课堂 boot partition / 启动分区

把 ketang-setup.toml 放在这里（与本文件同一文件夹），首次启动时会应用它。
Put ketang-setup.toml here (next to this file); it is applied on first boot.
从 ketang-setup.example.toml 复制一份，改名为 ketang-setup.toml 再编辑。
Copy ketang-setup.example.toml to ketang-setup.toml and edit it. 结果写在
ketang-setup-result.txt / The outcome is written to ketang-setup-result.txt.
See docs/flashing.md. Do not change other files here.
EOT
}

finish_boot_image() { :; }

# write_os_list WORKDIR NAME VERSION: Raspberry Pi Imager's os_list for this image, with
# a file:// url next to the list (docs/flashing.md says how to move it).
write_os_list() {
  local work=$1 name=$2 ver=$3
  python3 - "$work" "$name" "$ver" "$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)" <<'EOT'
import hashlib, json, os, sys
work, name, ver, day = sys.argv[1:]
img, zst = f"{work}/{name}.img", f"{work}/{name}.img.zst"
def sha(p):
    with open(p, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
entry = {
    "name": f"Ketang 课堂 {ver} (Raspberry Pi 4)",
    "description": "离线课堂服务器 Offline classroom lesson server (Debian trixie)",
    "url": f"file://{os.environ.get('KETANG_OS_LIST_DIR', '.')}/{name}.img.zst",
    "extract_size": os.path.getsize(img), "extract_sha256": sha(img),
    "image_download_size": os.path.getsize(zst), "image_download_sha256": sha(zst),
    "release_date": day, "devices": ["pi4-64bit"], "init_format": "none",
}
with open(f"{work}/{name}.os_list.json", "w", encoding="utf-8") as f:
    json.dump({"os_list": [entry]}, f, ensure_ascii=False, indent=2)
    f.write("\n")
EOT
}
