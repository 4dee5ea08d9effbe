#!/usr/bin/env bash
# Build a flashable Ketang image: image-build/build.sh [amd64|arm64]   (make image ARCH=...)
#
# Writes dist/ketang-<version>-<arch>.img.zst with its .bmap, .sha256 and .packages.txt
# (and, for arm64, the Raspberry Pi Imager .os_list.json). Two cached stages, outside
# the checkout (KETANG_IMAGE_CACHE, default ~/.cache/ketang-image):
#   base-<arch>-<key>.tar   Debian packages (base.sh); key = package lists, scripts, epoch
#   image-<arch>-<key>/     the disk image; key = the base key, image-build/, Ketang's sources
# Unchanged inputs rebuild nothing. See image-build/README.md for the layout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"
. "$here/cache.sh"
arch=${1:-amd64}
[[ -f "$here/packages/$arch.txt" ]] || die "unknown architecture '$arch' (have: amd64, arm64)"
[[ $(id -u) -eq 0 ]] || die "run as root (mmdebstrap, chroot and file ownership need it): sudo make image"
cd "$repo"
# Reproducible byte code: no hash-seeded set order in .pyc, no stray __pycache__ written
# by the commands run in the image at build time.
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

version=$(awk -F'[ =]+' '$1=="version" {print $2; exit}' setup.cfg)
# The epoch every timestamp in the image is clamped to: the last commit that changed
# the Debian base's inputs (so a change to units or to Ketang keeps the cached base).
base_inputs=(image-build/base.sh image-build/lib.sh image-build/packages image-build/initramfs)
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- "${base_inputs[@]}" 2>/dev/null || true)
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1764460800}
fi
export SOURCE_DATE_EPOCH
cache=${KETANG_IMAGE_CACHE:-$HOME/.cache/ketang-image}
dist=${KETANG_IMAGE_DIST:-$repo/dist}
python=${KETANG_PYTHON:-$repo/.venv/bin/python}
[[ -x "$python" ]] || die "no $python: run 'make .venv/.installed' first (it publishes the sample lessons)"
mkdir -p "$cache" "$dist"

# Sizes (MiB). Root slots hold a compressed root (about 0.5 GiB today) with room to grow.
ESP_MB=256
ROOT_MB=1536
DATA_MB=256

base_key=$(printf '%s\n' "$(hash_inputs image-build/base.sh image-build/lib.sh \
  image-build/packages/common.txt "image-build/packages/$arch.txt" image-build/initramfs)" \
  "$arch" "$SOURCE_DATE_EPOCH" "$(host_mirror)" | sha256sum | cut -c1-16)
app_files=$(git ls-files -co --exclude-standard appliance content_cache kiosk_ui provisioning \
  setup.cfg pyproject.toml README.md | grep -v -e '__pycache__' -e '\.pyc$' | LC_ALL=C sort)
# The technician's docs the image carries (/usr/share/doc/ketang/) are inputs too.
image_docs="docs/flashing.md docs/provisioning.md"
# shellcheck disable=SC2086
image_key=$(printf '%s\n' "$base_key" "$(hash_inputs image-build $app_files $image_docs)" "$version" \
  | sha256sum | cut -c1-16)
base_tar=$cache/base-$arch-$base_key.tar
out=$cache/image-$arch-$image_key
name=ketang-$version-$arch

publish_dist() {
  local f
  for f in "$out/$name".img.zst "$out/$name".img.zst.bmap "$out/$name".sha256 \
           "$out/$name".packages.txt "$out/$name".os_list.json; do
    [[ -e "$f" ]] || continue
    rm -f "$dist/$(basename "$f")"
    ln "$f" "$dist/" 2>/dev/null || cp "$f" "$dist/"
  done
  echo "$out" > "$dist/$name.cache-path"
  say "image ready: $dist/$name.img.zst (cache: $out)"
}

# After a successful build or reuse: mark this image and its Debian base as just used,
# and delete older cache entries of this architecture (cache.sh: prune_cache).
tidy_cache() {
  touch "$out"
  [[ -f "$base_tar" ]] && touch "$base_tar"
  prune_cache "$cache" "image-$arch-*"
  prune_cache "$cache" "base-$arch-*.tar"
}

# One build per architecture at a time (a second caller waits, then reuses the result).
exec 9>"$cache/lock-$arch"
flock 9
if [[ -f "$out/done" && -z "${KETANG_IMAGE_REBUILD:-}" ]]; then
  say "inputs unchanged (key $image_key): reusing $out"
  publish_dist
  tidy_cache
  exit 0
fi

t0=$(date +%s)
if [[ ! -f "$base_tar" ]]; then
  "$here/base.sh" "$arch" "$base_tar"
else
  say "reusing Debian base $base_tar"
fi
t1=$(date +%s)

work=$(mktemp -d "$cache/work-$arch-XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
R=$work/root
mkdir -p "$R" "$work/esp" "$work/src"
say "unpacking the base"
tar -C "$R" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base_tar"

# --- Ketang: our wheel with --no-deps over Debian's python3-* packages (README: "Python")
say "installing Ketang $version"
# shellcheck disable=SC2086
tar -cf - $app_files | tar -C "$work/src" -xf -
"$python" -m pip wheel --quiet --no-deps -w "$work/wheel" "$work/src" >"$work/wheel.log" 2>&1 \
  || { cat "$work/wheel.log" >&2; die "building Ketang's wheel failed"; }
"$python" -m pip install --quiet --no-deps --no-index --no-compile --target "$work/site" \
  "$work/wheel"/*.whl
# direct_url.json names the temporary wheel path: drop it, and its line in RECORD.
rm -f "$work/site"/*.dist-info/direct_url.json
sed -i '/direct_url\.json,/d' "$work/site"/*.dist-info/RECORD
site=$R/usr/lib/python3/dist-packages
for f in "$work/site"/*; do [[ "$(basename "$f")" == bin ]] || mv "$f" "$site/"; done
# The console script, from the wheel's own entry point (no module path written here).
entry=$(awk -F' *= *' '$1=="ketang" {print $2; exit}' "$site"/ketang-*.dist-info/entry_points.txt)
cat > "$R/usr/bin/ketang" <<EOF
#!/usr/bin/python3
import sys
from ${entry%%:*} import ${entry##*:}
sys.exit(${entry##*:}())
EOF
chmod 755 "$R/usr/bin/ketang"
tops=$(sed 's/#.*//' "$site"/ketang-*.dist-info/top_level.txt 2>/dev/null || true)
[[ -n "$tops" ]] || tops=$(cd "$work/src" && ls -d appliance content_cache kiosk_ui provisioning)
for t in $tops; do
  chroot "$R" env -u PYTHONDONTWRITEBYTECODE python3 -m compileall -q -j 1 --invalidation-mode unchecked-hash \
    "/usr/lib/python3/dist-packages/$t" >/dev/null
done

# --- the image's own files: units, udev rule, users, logs in RAM, mounts
say "configuring the system"
cp -a --no-preserve=ownership "$here/rootfs/." "$R/"
mkdir -p "$R/usr/share/doc/ketang"
# shellcheck disable=SC2086
cp $image_docs "$R/usr/share/doc/ketang/"
# A device's own settings live on the data partition; /etc links to them (data-links.txt).
while read -r link target; do
  case $link in ''|'#'*) continue ;; esac
  mkdir -p "$R$(dirname "$link")"
  rm -f "$R$link"
  ln -s "$target" "$R$link"
done < "$here/data-links.txt"
case $arch in
  amd64) boot_dir=/boot/efi ;;
  arm64) boot_dir=/boot/firmware ;;
esac
cat > "$R/usr/lib/ketang/image.env" <<EOF
# What the Ketang image looks like, for provisioning and updates (image-build/README.md).
KETANG_IMAGE_VERSION=$version
KETANG_IMAGE_ARCH=$arch
KETANG_BOOT_DIR=$boot_dir
KETANG_BOOT_PART=/dev/disk/by-partlabel/ketang-boot
KETANG_ROOT_A=/dev/disk/by-partlabel/ketang-root-a
KETANG_ROOT_B=/dev/disk/by-partlabel/ketang-root-b
KETANG_DATA_PART=/dev/disk/by-partlabel/ketang-data
KETANG_DATA_DIR=/var/lib/ketang
KETANG_SETUP_FILE=$boot_dir/ketang-setup.toml
KETANG_BOOT_TRIES=${KETANG_BOOT_TRIES:-2}
EOF
# Software updates (docs/updates.md): RAUC's slots and boot selection for this architecture.
install -D -m 0644 "$here/rauc/system-$arch.conf" "$R/etc/rauc/system.conf"
if [[ $arch == arm64 ]]; then
  # RAUC's uboot backend counts boot tries in U-Boot's environment with fw_printenv and
  # fw_setenv (libubootenv): U-Boot (rpi_arm64) keeps it in uboot.env on the boot
  # partition, CONFIG_ENV_SIZE 0x4000; boot.scr saves it at every boot. Writers go
  # through boot-rw (the partition is read-only), hence fw_setenv's wrapper.
  printf '# U-Boot environment of the Raspberry Pi 4 image (docs/updates.md)\n%s\n' \
    "$boot_dir/uboot.env 0x0000 0x4000" > "$R/etc/fw_env.config"
  install -D -m 0755 "$here/rauc/fw_setenv" "$R/usr/local/sbin/fw_setenv"
  # RAUC's handlers that copy an installed slot's kernel and initramfs to ketang-<slot>/
  # on the boot partition, where boot.scr loads them (provisioning/pislot.py).
  install -D -m 0755 "$here/rauc/pi-slot-handler" "$R/usr/lib/ketang/rauc-pre-install"
  install -D -m 0755 "$here/rauc/pi-slot-handler" "$R/usr/lib/ketang/rauc-post-install"
fi
cat > "$R/etc/fstab" <<EOF
# Ketang image (image-build/README.md). / is the root slot (squashfs) under a RAM overlay.
PARTLABEL=ketang-data  /var/lib/ketang  ext4  noatime,noinit_itable,x-systemd.growfs,x-systemd.after=ketang-grow-data.service  0  2
# The boot partition is read-only: a read-write FAT writes its "dirty" flag when mounted and
# unmounted (invariant 4). Its few writers run under /usr/lib/ketang/boot-rw.
PARTLABEL=ketang-boot  $boot_dir  vfat  ro,noatime,umask=0077,noauto,x-systemd.automount,x-systemd.idle-timeout=30  0  0
tmpfs  /tmp  tmpfs  mode=1777,nosuid,nodev,size=25%  0  0
EOF
mkdir -p "$R/var/lib/ketang" "$R$boot_dir"
# /etc/hostname links to the data partition, which holds "ketang" until provisioning.
printf '127.0.0.1\tlocalhost\n127.0.1.1\tketang\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  > "$R/etc/hosts"
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
chroot "$R" systemd-sysusers >/dev/null
chroot "$R" systemctl enable --quiet systemd-networkd.service ketang-grow-data.service \
  ketang-machine-id.service ketang-serve.service ketang-drives.service ketang-health.service \
  ketang-dnsmasq.service ketang-update-ready.path
# The first-boot hook runs only when this ketang has `ketang provision` (asked here once,
# not at every boot: starting Python costs seconds on a Pi).
if chroot "$R" ketang provision --help >/dev/null 2>&1; then
  chroot "$R" systemctl enable --quiet ketang-provision.service
fi
chroot "$R" systemctl mask --quiet hostapd.service 2>/dev/null || true
# The machine id is empty in the slot, so systemd sees every boot as a first boot: its
# console wizard must never wait for someone to type a time zone on a classroom device.
chroot "$R" systemctl mask --quiet systemd-firstboot.service

# --- the data partition: the bundled sample lessons, verified and imported by the
# image's own ketang (so a broken Debian dependency fails here, not on the device)
say "importing the sample lessons"
sample=content_cache/sample_pack
for source in "$sample"/*/source.json; do   # one folder per channel (docs/sample-pack.md)
  channel=$(basename "$(dirname "$source")")
  "$(dirname "$python")/ketang" publish "$(dirname "$source")" --channel "$channel" \
    --version 1 --key "$sample/demo-key/DEMO-ONLY-publisher.key" --out "$R/tmp/bundle" \
    >/dev/null
done
mkdir -p "$R/tmp/keys" "$R/tmp/data"
cp "$sample/demo-key/DEMO-ONLY-publisher.pub" "$R/tmp/keys/"
printf '[device]\ndata_dir = "/tmp/data"\n[trust]\nkeys_dir = "/tmp/keys"\n' > "$R/tmp/build.toml"
unshare --mount --propagation private sh -c "
  mount -t proc proc '$R/proc' && mount --rbind /dev '$R/dev' &&
  chroot '$R' env KETANG_CONFIG=/tmp/build.toml ketang import /tmp/bundle --data-dir /tmp/data"
mv "$R/tmp/data" "$work/data"
# The DEMO-ONLY key signed what was imported here; the device trusts nobody until
# provisioning installs the school's keys (anyone can sign with the demo key).
mkdir -p "$work/data/trusted-keys"
chown -R 990:990 "$work/data"
# The device's settings (the /etc links' targets, data-links.txt): the image's defaults
# until provisioning changes them; root's, so the lesson server cannot rewrite them.
cp -a --no-preserve=ownership "$here/data/." "$work/data/"
ln -sfn /usr/share/zoneinfo/Etc/UTC "$work/data/etc/localtime"
chown -R 0:0 "$work/data/etc"
chown 0:990 "$work/data/config" "$work/data/config/ketang.toml"
chmod 0755 "$work/data/config" "$work/data/etc"
chmod 0640 "$work/data/config/ketang.toml"
# The same defaults in the root slot: the provision hook adds any the data partition lacks
# at every boot, so an updated slot can bring a new one (it never overwrites a file).
mkdir -p "$R/usr/share/ketang/data-defaults"
cp -a "$work/data/config" "$work/data/etc" "$R/usr/share/ketang/data-defaults/"
rm -rf "${R:?}"/tmp/* "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/* "$R"/var/log/* \
  "$R"/var/cache/ldconfig/aux-cache "$R"/etc/apt/sources.list "$R"/etc/apt/sources.list.d/* \
  "$R"/var/lib/systemd/random-seed "$R"/etc/*-

rm -rf "${R:?}"/boot/firmware/*   # raspi-firmware's copies; the boot partition has its own

# --- SBOM: every package and version, for a technician to diff between releases
{
  echo "# Ketang $version $arch image ($SUITE), SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
  echo "# package	version	architecture"
  echo "ketang	$version$(git describe --always --dirty 2>/dev/null | sed 's/^/+g/')	all"
  dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' \
    | LC_ALL=C sort
} > "$work/$name.packages.txt"

# --- boot partition contents (per architecture)
kver=$(basename "$(ls "$R"/boot/vmlinuz-* | LC_ALL=C sort | tail -n1)" | sed 's/^vmlinuz-//')
. "$here/boot-$arch.sh"
make_boot_files "$R" "$work/esp" "$kver"
# The technician's starting point: a commented example to copy to ketang-setup.toml.
cp provisioning/ketang-setup.example.toml "$work/esp/ketang-setup.example.toml"

say "making the root slot (squashfs)"
env -u SOURCE_DATE_EPOCH mksquashfs "$R" "$work/root.squashfs" -quiet -noappend -comp zstd -Xcompression-level 10 -b 256K \
  -mkfs-time "$SOURCE_DATE_EPOCH" -all-time "$SOURCE_DATE_EPOCH" -xattrs >/dev/null
squash_mb=$(( ($(stat -c %s "$work/root.squashfs") + 1048575) / 1048576 ))
(( squash_mb <= ROOT_MB )) || die "root slot image is ${squash_mb} MiB, more than the ${ROOT_MB} MiB slot"

say "making the boot and data file systems"
# --invariant: the label entry gets a fixed time, not the build's (the boot partition reproduces)
mkfs.vfat --invariant -C -F 32 -n KETANG-BOOT -i 4B544E47 "$work/esp.img" $((ESP_MB * 1024)) >/dev/null
find "$work/esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$work/esp" && for f in *; do mcopy -s -p -m -i "$work/esp.img" "$f" ::/; done)
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -L KETANG-DATA \
  -U 6b657461-6e67-4461-8461-746100000001 -E lazy_itable_init=0,lazy_journal_init=0,root_owner=990:990 \
  -d "$work/data" "$work/data.img" "${DATA_MB}M"

say "assembling the disk"
esp_start=1; a_start=$((esp_start + ESP_MB)); b_start=$((a_start + ROOT_MB))
d_start=$((b_start + ROOT_MB)); total=$((d_start + DATA_MB + 1))
img=$work/$name.img
truncate -s "${total}M" "$img"
sfdisk --quiet "$img" <<EOF
label: gpt
label-id: 6B657461-6E67-4469-736B-000000000000
unit: sectors
start=$((esp_start * 2048)), size=$((ESP_MB * 2048)), type=$ESP_TYPE, uuid=6B657461-6E67-4469-736B-000000000001, name="ketang-boot"
start=$((a_start * 2048)), size=$((ROOT_MB * 2048)), type=$ROOT_TYPE, uuid=6B657461-6E67-4469-736B-00000000000A, name="ketang-root-a"
start=$((b_start * 2048)), size=$((ROOT_MB * 2048)), type=$ROOT_TYPE, uuid=6B657461-6E67-4469-736B-00000000000B, name="ketang-root-b"
start=$((d_start * 2048)), size=$((DATA_MB * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6B657461-6E67-4469-736B-00000000000D, name="ketang-data"
EOF
dd if="$work/esp.img" of="$img" bs=1M seek=$esp_start conv=notrunc,sparse status=none
dd if="$work/root.squashfs" of="$img" bs=1M seek=$a_start conv=notrunc,sparse status=none
dd if="$work/data.img" of="$img" bs=1M seek=$d_start conv=notrunc,sparse status=none
finish_boot_image "$img" "$work"

say "compressing, bmap, checksums"
bmaptool -q create -o "$img.zst.bmap" "$img"
zstd -q -T0 -3 -f "$img" -o "$img.zst"
(cd "$work" && sha256sum "$name.img.zst" "$name.img" > "$name.sha256")
KETANG_OS_LIST_DIR=${KETANG_OS_LIST_DIR:-$dist} write_os_list "$work" "$name" "$version"

t2=$(date +%s)
mkdir -p "$out.tmp"
mv "$img" "$img.zst" "$img.zst.bmap" "$work/$name.sha256" "$work/$name.packages.txt" \
  "$work/root.squashfs" "$out.tmp/"
[[ -f "$work/$name.os_list.json" ]] && mv "$work/$name.os_list.json" "$out.tmp/"
cat > "$out.tmp/build.json" <<EOF
{"arch": "$arch", "version": "$version", "source_date_epoch": $SOURCE_DATE_EPOCH,
 "base_key": "$base_key", "image_key": "$image_key", "kernel": "$kver",
 "base_seconds": $((t1 - t0)), "image_seconds": $((t2 - t1)),
 "root_slot_bytes": $(stat -c %s "$out.tmp/root.squashfs"),
 "root_slot_sha256": "$(sha256sum "$out.tmp/root.squashfs" | cut -d' ' -f1)"}
EOF
touch "$out.tmp/done"
rm -rf "$out"
mv "$out.tmp" "$out"
say "built in $((t2 - t0)) s (base $((t1 - t0)) s)"
publish_dist
tidy_cache
