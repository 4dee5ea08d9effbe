# U-Boot script for the Raspberry Pi 4 image (compile: mkimage -A arm64 -T script -d
# boot-arm64.cmd boot.scr). RAUC's `uboot` backend sets BOOT_ORDER ("B A") and
# BOOT_B_LEFT=3 when it installs into B; each boot takes one try from the first slot of
# BOOT_ORDER with tries left; `rauc status mark-good` (run by the health gate's
# success, see docs/updates.md) sets them back to 3. A slot with none left is skipped,
# so the previous slot boots again by itself. Not booted here (no Pi 4 in QEMU).
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3
setenv bootpart
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootpart}" != "x"; then
    # a slot was already chosen
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv bootpart 2
      setenv rauc_slot A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv bootpart 3
      setenv rauc_slot B
    fi
  fi
done
if test -n "${bootpart}"; then
  saveenv
else
  echo "No slot with tries left: resetting the counters and booting A"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  setenv bootpart 2
  setenv rauc_slot A
fi
setenv bootargs "console=serial0,115200 console=tty1 root=/dev/mmcblk0p${bootpart} rootfstype=squashfs ro rauc.slot=${rauc_slot} ketang.slot=${rauc_slot}"
load mmc 0:${bootpart} ${kernel_addr_r} /boot/vmlinuz
load mmc 0:${bootpart} ${ramdisk_addr_r} /boot/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
