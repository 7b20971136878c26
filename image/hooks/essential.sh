#!/bin/bash
# mmdebstrap --essential-hook (chroot at $1; HERE from build.sh): the overlay image/rootfs
# goes in before the remaining packages, so the kernel's postinst already builds the
# small initramfs (etc/initramfs-tools) and units/config are in place. Owned by root
# whatever the checkout's owner; directories that exist keep their modes.
set -euo pipefail
tar -C "$HERE/rootfs" --owner=0 --group=0 -cf - . | tar -C "$1" --no-overwrite-dir -xf -

# update-initramfs would run two or three times during the install (the kernel's postinst,
# then triggers from udev, kmod, raspi-firmware...), each costing minutes under emulation:
# divert it to a no-op now; customize.sh restores it and builds the initramfs once (or
# takes it from the cache).
chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.pike \
  --add /usr/sbin/update-initramfs
printf '#!/bin/sh\n# pike image build: diverted during mmdebstrap (image/hooks)\nexit 0\n' \
  >"$1/usr/sbin/update-initramfs"
chmod 755 "$1/usr/sbin/update-initramfs"
