#!/usr/bin/env bash
# Build the flashable pike gateway image (arm64, Debian bookworm), as root on x86_64 Debian:
#
#     image/build.sh
#
# -> image/out/pike-<version>-arm64.img         MBR disk (id 0x70696b65): 1 FAT boot
#                                                (Raspberry Pi firmware, U-Boot for the
#                                                Pi, kernel, initrd, config.txt,
#                                                cmdline.txt, the A/B boot.scr
#                                                and pikeboot.env), 2 root slot A (ext4,
#                                                LABEL=pikeroot), 3 root slot B (empty),
#                                                4 data (ext4 LABEL=pikedata, grows at boot)
#    image/out/pike-<version>-arm64.raucb       signed RAUC update bundle of the same root
#    image/out/pike-<version>-arm64.rootfs.ext4 that root file system (bundles, tests)
#    image/out/pike-<version>-arm64.sbom.txt    Debian packages with versions + pip freeze
#    image/out/pike-<version>-arm64.sha256
#
# Steps: host tools (apt) and binfmt_misc for qemu-user-static; pike's wheel and its
# arm64 wheels (pip download --platform, no emulated pip); mmdebstrap --variant=apt with
# the packages in image/packages, the overlay image/rootfs and the venv /opt/pike; FAT by
# mtools and ext4 by `mke2fs -d` (nothing is mounted: this kernel has no VFAT); sfdisk + dd.
#
# Cache (apt .debs and wheels): $PIKE_IMAGE_CACHE, default /var/cache/pike-image; a second
# build downloads nothing. PIKE_IMAGE_KEEP=1 keeps image/out/work (the rootfs tree).
# PIKE_IMAGE_MIRROR overrides the Debian mirror. Signing: PIKE_SIGNING_KEY and
# PIKE_SIGNING_CERT (PEM; PKCS#11 URIs work too, RAUC takes them) sign the bundle, and
# PIKE_SIGNING_KEYRING (default: the certificate) is baked into the image as RAUC's keyring;
# without them a DEVELOPMENT key is made once in $CACHE/dev-signing and used (never ship
# it). PIKE_FIRMWARE_VERSION (default <version>+g<commit>) names the build in the bundle
# and /usr/lib/pike/firmware-version. PIKE_BUNDLE_SQUASHFS_ARGS (default -comp lz4). SOURCE_DATE_EPOCH (default: the last
# commit's time) fixes file times and the file system UUIDs. pike itself is built from the
# checked-out commit (git archive HEAD), not from uncommitted changes, unless
# PIKE_IMAGE_SOURCE=worktree.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${PIKE_IMAGE_OUT:-$HERE/out}
CACHE=${PIKE_IMAGE_CACHE:-/var/cache/pike-image}
MIRROR=${PIKE_IMAGE_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PYVER=3.11 # bookworm's python3
BOOT_MB=256
HOST_PACKAGES=(mmdebstrap qemu-user-static mtools fdisk e2fsprogs arch-test python3-venv
  rauc squashfs-tools u-boot-tools openssl)
DISK_ID=0x70696b65 # "pike": fixed, root=PARTUUID=70696b65-0N and RAUC's slots name it
DATA_MB=64         # grows to the end of the card at first boot

t_start=$SECONDS
step() { printf '==> %s (%ds)\n' "$*" $((SECONDS - t_start)); }
die() {
  echo "image/build.sh: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap --mode=root, chroot, mke2fs -d)"
[[ $(uname -m) == x86_64 || $(uname -m) == aarch64 ]] || die "build host must be x86_64 or arm64"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
VERSION=$(python3 -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")
NAME=pike-$VERSION-arm64
WORK=$OUT/work
ROOTFS=$WORK/rootfs

# One build at a time per output directory: two would share (and delete) one work tree.
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock -n 9 || die "another image build is running on $OUT (lock $OUT/.build.lock)"

# Remove a work tree without ever following a mount out of it (an interrupted mmdebstrap
# can leave /proc, /sys, /dev mounted in the root file system).
clean_work() {
  [[ -d $WORK ]] || return 0
  local m
  for m in $(findmnt -rn -o TARGET | { grep -F "$WORK/" || true; } | sort -r); do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$WORK"
}

# -- host tools -----------------------------------------------------------------------------
step "host tools"
missing=()
for pkg in "${HOST_PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "    installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# qemu-user-static runs the arm64 maintainer scripts through binfmt_misc; containers often
# have it unmounted, and without systemd-binfmt nobody registers the interpreter.
if [[ $(uname -m) != aarch64 ]]; then
  [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [[ -r $conf ]] || die "qemu-user-static did not install $conf"
    cat "$conf" >/proc/sys/fs/binfmt_misc/register
  fi
  arch-test arm64 >/dev/null || die "arm64 binaries do not run here (binfmt_misc/qemu-aarch64)"
fi

# -- signing key of the update bundle ---------------------------------------------------------
step "signing key"
FWVERSION=${PIKE_FIRMWARE_VERSION:-$VERSION+g$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
SIGN_KEY=${PIKE_SIGNING_KEY:-}
SIGN_CERT=${PIKE_SIGNING_CERT:-}
if [[ -z $SIGN_KEY || -z $SIGN_CERT ]]; then
  [[ -z $SIGN_KEY && -z $SIGN_CERT ]] || die "PIKE_SIGNING_KEY and PIKE_SIGNING_CERT go together"
  # One development key per build host (cached), so development images update each other.
  dev=$CACHE/dev-signing
  SIGN_KEY=$dev/pike-DEVELOPMENT-ONLY.key.pem
  SIGN_CERT=$dev/pike-DEVELOPMENT-ONLY.cert.pem
  if [[ ! -s $SIGN_CERT ]]; then
    mkdir -p "$dev" && chmod 0700 "$dev"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/O=pike/CN=pike DEVELOPMENT update signing key - NOT FOR PRODUCTION" \
      -keyout "$SIGN_KEY.tmp" -out "$SIGN_CERT.tmp" 2>/dev/null
    mv "$SIGN_KEY.tmp" "$SIGN_KEY" && mv "$SIGN_CERT.tmp" "$SIGN_CERT"
  fi
  echo "    WARNING: no PIKE_SIGNING_KEY/PIKE_SIGNING_CERT: bundle signed with the DEVELOPMENT key $SIGN_CERT"
fi
SIGN_KEYRING=${PIKE_SIGNING_KEYRING:-$SIGN_CERT}
[[ -r $SIGN_KEYRING ]] || die "keyring $SIGN_KEYRING not readable"
echo "    firmware version $FWVERSION, signer: $(openssl x509 -noout -subject -in "$SIGN_CERT" 2>/dev/null || echo "$SIGN_CERT")"

# -- pike's wheel and its arm64 dependencies -------------------------------------------------
step "wheels"
mkdir -p "$CACHE/apt" "$CACHE/wheels" "$OUT"
clean_work
mkdir -p "$WORK/wheels"
PY=$ROOT/.venv/bin/python
if [[ ! -x $PY ]]; then
  python3 -m venv "$CACHE/hostvenv"
  PY=$CACHE/hostvenv/bin/python
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
SRC=$ROOT
if [[ ${PIKE_IMAGE_SOURCE:-head} != worktree ]] && git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null; then
  SRC=$WORK/src
  mkdir -p "$SRC"
  git -C "$ROOT" archive --format=tar HEAD | tar -C "$SRC" -xf -
  echo "    pike from commit $(git -C "$ROOT" rev-parse --short HEAD)"
fi
"$PY" -m pip wheel -q --no-deps -w "$WORK/wheels" "$SRC"
# Binary wheels for the target only (never built here): manylinux aarch64, CPython 3.11.
# Resolved into a directory of this build's own, so only what pike depends on now goes into
# the image (the cache also holds wheels older builds needed); the cache keeps them all.
mkdir -p "$WORK/deps"
"$PY" -m pip download -q --only-binary=:all: --dest "$WORK/deps" \
  --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
  --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
  --find-links "$CACHE/wheels" --find-links "$WORK/wheels" "$WORK/wheels"/pike-*.whl
# pike's own wheel is the one just built from this commit, never a copy of it; and a pike
# wheel in the cache (same version, same file name) could be an older commit's.
rm -f "$WORK/deps"/pike-*.whl "$CACHE/wheels"/pike-*.whl
cp "$WORK/deps"/*.whl "$CACHE/wheels/"
cp "$WORK/deps"/*.whl "$WORK/wheels/"

# -- root file system -------------------------------------------------------------------------
step "mmdebstrap $SUITE arm64"
mapfile -t PACKAGES < <(sed -e 's/#.*//' -e '/^\s*$/d' "$HERE/packages")
include=$(IFS=,; echo "${PACKAGES[*]}")
SITE=/opt/pike/lib/python$PYVER/site-packages

# The hooks (image/hooks/*.sh) run with the chroot as $1 and these in the environment.
export HERE ROOT SRC WORK CACHE SITE PY PYVER

mmdebstrap --mode=root --arch=arm64 --variant=apt --components=main,non-free-firmware \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --include="$include" \
  --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $CACHE/apt /var/cache/apt/archives/" \
  --essential-hook="$HERE/hooks/essential.sh" \
  --customize-hook="sync-out /var/cache/apt/archives $CACHE/apt" \
  --customize-hook="$HERE/hooks/customize.sh" \
  "$SUITE" "$ROOTFS" "$MIRROR"
rm -f "$CACHE/apt/lock"
rm -rf "$CACHE/apt/partial"

# -- A/B and data partition pieces of the root --------------------------------------------------
step "A/B root"
# The keyring bundles are checked against, the build's name, the kernel and initrd under
# fixed names (U-Boot's boot.scr loads them from the slot it boots), and the mount points
# of the data partition's directories (the root is read-only at run time).
install -m 0644 "$SIGN_KEYRING" "$ROOTFS/etc/rauc/keyring.pem"
echo "$FWVERSION" >"$ROOTFS/usr/lib/pike/firmware-version"
kver=$(basename "$(ls -d "$ROOTFS"/lib/modules/* | sort -V | tail -1)")
ln -f "$ROOTFS/boot/vmlinuz-$kver" "$ROOTFS/boot/vmlinuz"
ln -f "$ROOTFS/boot/initrd.img-$kver" "$ROOTFS/boot/initrd.img"
mkdir -p "$ROOTFS/data" "$ROOTFS/var/lib/pike" "$ROOTFS/var/lib/rauc" "$ROOTFS/etc/ssh/keys"

# -- units -------------------------------------------------------------------------------------
step "systemd-analyze verify"
units=()
for u in "$HERE"/rootfs/etc/systemd/system/*.service; do units+=("/etc/systemd/system/$(basename "$u")"); done
# verify exits 0 on unknown keys and bad values: any output at all fails the build.
verify=$(systemd-analyze verify --root="$ROOTFS" "${units[@]}" 2>&1) || true
[[ -z $verify ]] || die "systemd-analyze verify: $verify"

# -- SBOM ---------------------------------------------------------------------------------------
step "SBOM"
{
  echo "# $NAME: Debian $SUITE arm64 packages (dpkg-query), then /opt/pike (pip freeze format)"
  dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f='deb ${Package} ${Version} ${Architecture}\n' | sort
  "$PY" - "$ROOTFS$SITE" <<'EOF'
import importlib.metadata as md
import sys

for d in sorted(md.distributions(path=[sys.argv[1]]), key=lambda d: d.metadata["Name"].lower()):
    print(f"pip {d.metadata['Name']}=={d.version}")
EOF
} >"$OUT/$NAME.sbom.txt"

# -- boot partition (FAT, mtools) ---------------------------------------------------------------
step "boot partition"
FW=$WORK/firmware
kver=$(basename "$(ls -d "$ROOTFS"/lib/modules/* | sort -V | tail -1)")
# Whatever raspi-firmware's hooks put there (nothing when /boot/firmware was not a mount
# point), then what the Pi needs, from the packages themselves.
cp "$ROOTFS"/usr/lib/raspi-firmware/* "$FW/"
cp "$ROOTFS/boot/vmlinuz-$kver" "$FW/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$kver" "$FW/initrd.img"
cp "$ROOTFS"/usr/lib/linux-image-"$kver"/broadcom/bcm27*-rpi-*.dtb \
  "$ROOTFS"/usr/lib/linux-image-"$kver"/broadcom/bcm2837-rpi-*.dtb "$FW/"  # Pi 4/400/CM4, Pi 3
rm -f "$FW"/config.txt "$FW"/cmdline.txt "$FW"/vmlinuz-* "$FW"/initrd.img-*
cp "$HERE/boot/config.txt" "$HERE/boot/cmdline.txt" "$FW/"
# U-Boot for the Pi (config.txt: kernel=u-boot.bin; qemu's virt machine brings its own),
# the A/B boot script both run, and its boot counters.
cp "$ROOTFS/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$FW/u-boot.bin"
mkimage -q -A arm64 -O linux -T script -C none -n "pike A/B boot" -d "$HERE/boot/boot.cmd" "$FW/boot.scr"
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' >"$WORK/uboot-env.txt"
mkenvimage -s 0x4000 -o "$FW/pikeboot.env" "$WORK/uboot-env.txt"
find "$FW" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
boot_sectors=$((BOOT_MB * 2048))
truncate -s 0 "$WORK/boot.vfat"
truncate -s "${BOOT_MB}M" "$WORK/boot.vfat"
serial=$(printf '%08x' $((SOURCE_DATE_EPOCH & 0xffffffff)))
mformat -i "$WORK/boot.vfat" -F -v PIKEBOOT -N "$serial" -H 8192 ::
mcopy -i "$WORK/boot.vfat" -s -m -Q "$FW"/* ::

# -- root file system (ext4, mke2fs -d): slot A, and the bundle's image ------------------------
step "root file system"
used_kb=$(du -skx "$ROOTFS" | cut -f1)
root_mb=$(((used_kb * 11 / 10) / 1024 + 64)) # read-only at run time: 10 % + 64 MiB slack
# A slot holds this root and room for later, bigger ones (RAUC's resize=true grows the
# ext4 to the slot after writing it).
slot_mb=${PIKE_SLOT_MB:-$(((root_mb * 2 + 511) / 512 * 512))}
((slot_mb >= root_mb)) || die "PIKE_SLOT_MB=$slot_mb is smaller than the root ($root_mb MiB)"
root_uuid=$(printf '%s' "pikeroot-$VERSION-$SOURCE_DATE_EPOCH" | sha256sum |
  sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
ROOTIMG=$OUT/$NAME.rootfs.ext4
rm -f "$ROOTIMG"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L pikeroot -U "$root_uuid" \
  -E "root_owner=0:0,hash_seed=$root_uuid" -d "$ROOTFS" "$ROOTIMG" "${root_mb}M"
data_uuid=$(printf '%s' "pikedata-$VERSION-$SOURCE_DATE_EPOCH" | sha256sum |
  sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
rm -f "$WORK/data.ext4"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L pikedata -U "$data_uuid" \
  -E "root_owner=0:0,hash_seed=$data_uuid" "$WORK/data.ext4" "${DATA_MB}M"

# -- update bundle (RAUC, verity format, signed) -------------------------------------------------
step "update bundle"
BUNDLE=$OUT/$NAME.raucb
rm -rf "$WORK/bundle" "$BUNDLE"
mkdir -p "$WORK/bundle"
ln "$ROOTIMG" "$WORK/bundle/rootfs.ext4" 2>/dev/null || cp --sparse=always "$ROOTIMG" "$WORK/bundle/rootfs.ext4"
cat >"$WORK/bundle/manifest.raucm" <<EOF
[update]
compatible=pike-gateway-arm64
version=$FWVERSION
description=pike gateway firmware $FWVERSION (Debian $SUITE arm64)

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
EOF
# shellcheck disable=SC2086 # the arguments are a list
rauc bundle --cert="$SIGN_CERT" --key="$SIGN_KEY" --keyring="$SIGN_KEYRING" \
  --mksquashfs-args="${PIKE_BUNDLE_SQUASHFS_ARGS:--comp lz4}" "$WORK/bundle" "$BUNDLE" >/dev/null
rm -rf "$WORK/bundle"

# -- disk image -----------------------------------------------------------------------------
step "disk image"
IMG=$OUT/$NAME.img
a_start=$((2048 * 4 + boot_sectors))
slot_sectors=$((slot_mb * 2048))
b_start=$((a_start + slot_sectors))
data_start=$((b_start + slot_sectors))
data_sectors=$((DATA_MB * 2048))
rm -f "$IMG"
truncate -s $(((data_start + data_sectors) * 512)) "$IMG"
sfdisk -q "$IMG" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=8192, size=$boot_sectors, type=c, bootable
start=$a_start, size=$slot_sectors, type=83
start=$b_start, size=$slot_sectors, type=83
start=$data_start, size=$data_sectors, type=83
EOF
dd if="$WORK/boot.vfat" of="$IMG" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$IMG" bs=1M seek=$((a_start / 2048)) conv=notrunc,sparse status=none
dd if="$WORK/data.ext4" of="$IMG" bs=1M seek=$((data_start / 2048)) conv=notrunc,sparse status=none
(cd "$OUT" && sha256sum "$NAME.img" "$NAME.raucb" "$NAME.sbom.txt" >"$NAME.sha256")

[[ -n ${PIKE_IMAGE_KEEP:-} ]] || clean_work
step "done"
ls -l "$IMG" "$BUNDLE" "$OUT/$NAME.sbom.txt"
printf 'image: %s (%d MiB, %d MiB allocated), %d Debian packages, built in %ds\n' \
  "$IMG" $(($(stat -c %s "$IMG") / 1048576)) $(($(du -k "$IMG" | cut -f1) / 1024)) \
  "$(grep -c '^deb ' "$OUT/$NAME.sbom.txt")" $((SECONDS - t_start))
