#!/bin/bash
# mmdebstrap --customize-hook (chroot at $1; ROOT HERE WORK CACHE SITE PY PYVER from
# build.sh):
# the pike user, the /opt/pike venv, enabled units, per-device secrets removed.
set -euo pipefail
r=$1

chroot "$r" useradd --system --user-group --home-dir /var/lib/pike --no-create-home \
  --shell /usr/sbin/nologin --comment "pike IKE daemon" pike
# pike-keyd.service (not enabled; README "The key helper"): the key helper as its own user.
chroot "$r" useradd --system --user-group --home-dir /nonexistent --no-create-home \
  --shell /usr/sbin/nologin --comment "pike key helper" pike-keyd
# Members of pike may look (pikectl status, list-sas, log); pike-admin may also change
# state (initiate, terminate, rekey, reload: pike.daemon.peercred).
chroot "$r" groupadd --system pike-admin
# The config may hold PSKs: root writes it, piked (group pike) reads it, nobody else.
chroot "$r" chown root:pike /etc/pike/pike.toml
chmod 0640 "$r/etc/pike/pike.toml"

# The venv: created by the target's python (emulated, about a second), filled from the
# host with the arm64 wheels (pip never runs emulated) and byte-compiled by the host's
# CPython 3.11 (same bytecode magic as bookworm's 3.11; unchecked-hash pycs do not depend
# on file times).
chroot "$r" python3 -m venv --without-pip /opt/pike
"$PY" -m pip install -q --no-deps --no-index --no-compile --only-binary=:all: \
  --platform manylinux2014_aarch64 --python-version "$PYVER" --implementation cp \
  --target "$r$SITE" "$WORK"/wheels/*.whl
rm -rf "$r$SITE/bin" # pip's scripts point at the host's python
for tool in piked pikectl; do
  printf '#!/opt/pike/bin/python3\nimport sys\n\nfrom pike.cli.%s import main\n\nsys.exit(main())\n' \
    "$tool" >"$r/opt/pike/bin/$tool"
  chmod 755 "$r/opt/pike/bin/$tool"
done
"$PY" -m compileall -q -j0 --invalidation-mode unchecked-hash "$r$SITE" >/dev/null
cp "${SRC:-$ROOT}/README.md" "$r/opt/pike/README.md"
# The manual pages (docs/man, generated from --help and the README): mmdebstrap's
# path-exclude keeps Debian's out, these are pike's own.
install -m 0644 -D -t "$r/usr/share/man/man8" "${SRC:-$ROOT}"/docs/man/*.8
install -m 0644 -D -t "$r/usr/share/man/man5" "${SRC:-$ROOT}"/docs/man/*.5
ln -sf /opt/pike/bin/pikectl "$r/usr/local/sbin/pikectl"

chroot "$r" systemctl enable piked.service pike-firstboot.service pike-selftest.service pike-vtpm.service \
  pike-data.service pike-mark-good.service pike-update-selftest.service \
  ssh-hostkeys.service systemd-networkd.service >/dev/null 2>&1
chroot "$r" systemctl enable pike-renew.timer >/dev/null 2>&1 # runs only with [enroll]

# The root is read-only at run time: directories units name in StateDirectory= must
# exist already (systemd-logind's linger list; it stays empty, nobody lingers).
mkdir -p "$r/var/lib/systemd/linger"

# Per-device identity is made at first boot: SSH host keys (ssh-hostkeys.service),
# machine-id (mmdebstrap leaves it empty). No root password: SSH keys only.
rm -f "$r"/etc/ssh/ssh_host_*
chroot "$r" passwd --lock root >/dev/null

# The initramfs, once: from the cache when the packages and the initramfs configuration
# are the same as last time (the key), else built (emulated, a minute or two).
rm -f "$r/usr/sbin/update-initramfs"
chroot "$r" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.pike \
  --remove /usr/sbin/update-initramfs
kver=$(basename "$(ls -d "$r"/lib/modules/* | sort -V | tail -1)")
key=$({
  dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Package} ${Version}\n'
  tar -C "$r/etc/initramfs-tools" --sort=name --mtime=@0 --owner=0 --group=0 -cf - .
} | sha256sum | cut -c1-16)
cached=$CACHE/initrd/initrd.img-$kver-$key
if [[ -f $cached ]]; then
  echo "I: initramfs from the cache ($cached)"
  cp "$cached" "$r/boot/initrd.img-$kver"
else
  chroot "$r" update-initramfs -c -k "$kver"
  mkdir -p "$CACHE/initrd"
  rm -f "$CACHE/initrd/initrd.img-$kver-"*
  cp "$r/boot/initrd.img-$kver" "$cached"
fi

# raspi-firmware's hooks copy the firmware to /boot/firmware; build.sh makes the FAT
# partition from that, and in the root file system it is only a mount point.
mkdir -p "$WORK/firmware"
cp -a "$r/boot/firmware/." "$WORK/firmware/"
find "$r/boot/firmware" -mindepth 1 -delete
