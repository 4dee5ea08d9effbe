# U-Boot script for the Raspberry Pi 4 image with A/B boot counting, for RAUC's `uboot`
# backend (docs/updates.md). The layout is boot-arm64.sh's: slots `a`/`b` named by GPT
# label, each slot's kernel and initramfs in ketang-<slot>/ on the boot partition.
# RAUC sets BOOT_ORDER ("b a") and BOOT_b_LEFT when it installs into b; each boot takes
# one try from the first slot of BOOT_ORDER with tries left; `rauc status mark-good`
# (when the health gate passes) refills it. A slot with none left is skipped, so the
# previous slot boots again by itself. To replace boot-arm64.sh's fixed-slot boot.cmd
# (KERNEL_CMDLINE is filled in there). Structural: no Pi 4 boots in QEMU here.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "a b"
test -n "${BOOT_a_LEFT}" || setenv BOOT_a_LEFT 3
test -n "${BOOT_b_LEFT}" || setenv BOOT_b_LEFT 3
setenv ketang_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${ketang_slot}" != "x"; then
    # a slot was already chosen
  elif test "x${BOOT_SLOT}" = "xa" && test ${BOOT_a_LEFT} -gt 0; then
    setexpr BOOT_a_LEFT ${BOOT_a_LEFT} - 1
    setenv ketang_slot a
  elif test "x${BOOT_SLOT}" = "xb" && test ${BOOT_b_LEFT} -gt 0; then
    setexpr BOOT_b_LEFT ${BOOT_b_LEFT} - 1
    setenv ketang_slot b
  fi
done
if test "x${ketang_slot}" = "x"; then
  echo "No slot has tries left: refilling both and booting a"
  setenv BOOT_a_LEFT 3
  setenv BOOT_b_LEFT 3
  setenv ketang_slot a
fi
saveenv
setenv bootargs "root=PARTLABEL=ketang-root-${ketang_slot} ketang.slot=${ketang_slot} rauc.slot=${ketang_slot} KERNEL_CMDLINE"
load ${devtype} ${devnum}:1 ${kernel_addr_r} ketang-${ketang_slot}/vmlinuz
load ${devtype} ${devnum}:1 ${ramdisk_addr_r} ketang-${ketang_slot}/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
