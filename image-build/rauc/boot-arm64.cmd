# U-Boot script for the Raspberry Pi 4 image with A/B boot counting, for RAUC's `uboot`
# backend (docs/updates.md). The layout is boot-arm64.sh's: slots `a`/`b` named by GPT
# label, each slot's kernel and initramfs in ketang-<slot>/ on the boot partition.
# RAUC sets BOOT_ORDER ("b a") and BOOT_b_LEFT when it installs into b; each boot takes
# one try from the first slot of BOOT_ORDER with tries left and a kernel on the boot
# partition (an empty slot is never chosen); `rauc status mark-good` (when the health gate
# passes, `ketang update health-check`) refills it. A slot with none left is skipped, so the
# previous slot boots again by itself. boot-arm64.sh compiles it into boot.scr (filling in
# KERNEL_CMDLINE); tests/image/test_uboot_counter.py runs that boot.scr in a real U-Boot
# (QEMU's arm64 virt machine; no Pi 4 exists in QEMU).
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "a b"
test -n "${BOOT_a_LEFT}" || setenv BOOT_a_LEFT 3
test -n "${BOOT_b_LEFT}" || setenv BOOT_b_LEFT 3
setenv ketang_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${ketang_slot}" != "x"; then
    # a slot was already chosen
  elif test "x${BOOT_SLOT}" = "xa" && test ${BOOT_a_LEFT} -gt 0 && test -e ${devtype} ${devnum}:1 ketang-a/vmlinuz; then
    setexpr BOOT_a_LEFT ${BOOT_a_LEFT} - 1
    setenv ketang_slot a
  elif test "x${BOOT_SLOT}" = "xb" && test ${BOOT_b_LEFT} -gt 0 && test -e ${devtype} ${devnum}:1 ketang-b/vmlinuz; then
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
echo "Ketang: booting slot ${ketang_slot} (tries left: a=${BOOT_a_LEFT} b=${BOOT_b_LEFT}, order ${BOOT_ORDER})"
saveenv
setenv bootargs "root=PARTLABEL=ketang-root-${ketang_slot} ketang.slot=${ketang_slot} rauc.slot=${ketang_slot} KERNEL_CMDLINE"
load ${devtype} ${devnum}:1 ${kernel_addr_r} ketang-${ketang_slot}/vmlinuz
load ${devtype} ${devnum}:1 ${ramdisk_addr_r} ketang-${ketang_slot}/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
