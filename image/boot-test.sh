#!/usr/bin/env bash
# Boot the built gateway image under qemu-system-aarch64 (-M virt -cpu cortex-a72, TCG)
# and check that piked comes up:
#
#     image/boot-test.sh [IMAGE]        (default: the newest image/out/pike-*-arm64.img)
#
# The image's own Debian arm64 kernel and initrd are read from its FAT partition with
# mtools and the whole disk is attached as a virtio disk through a qcow2 overlay (the
# image itself is never written), so this boots exactly what would be flashed, minus the
# Raspberry Pi firmware. `pike.selftest` on the kernel command line starts
# pike-selftest.service in the guest, which checks piked's READY, `pikectl status` and the
# metrics port, prints PIKE-SELFTEST lines on the serial console and powers off.
#
# A TPM 2.0 is attached: swtpm on the host (state in the temp dir, ended by PID) behind a
# virtio-serial port, which pike-vtpm.service in the guest (`pike.vtpm` on the command
# line) turns into a kernel TPM chip, /dev/tpmrm0, through the vTPM proxy: Debian
# bookworm's arm64 kernel has no tpm_tis, so qemu's tpm-tis-device would stay invisible.
# First boot then makes the gateway key in it and the self-test checks it.
# PIKE_BOOT_TPM=0 boots without a TPM.
#
# Exit 0 when the self-test passed. Serial log: image/out/boot-test.log. QEMU runs in a
# private network namespace (unshare -n) with restricted user networking: no traffic
# leaves. PIKE_BOOT_TIMEOUT (seconds, default 900) bounds the whole boot.
#
#     image/boot-test.sh --probe
#
# starts the same machine with the same devices (a blank disk, no kernel, paused) and quits
# at once: it needs no image and shows in a second whether this host's qemu has every file
# the boot needs (tests/setup/test_packages.py runs it under strace).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${PIKE_IMAGE_OUT:-$HERE/out}
TIMEOUT=${PIKE_BOOT_TIMEOUT:-900}
TPM=${PIKE_BOOT_TPM:-1}

# The machine and its devices, shared by the boot and the probe. $1: the disk (qcow2),
# $2: the chardev behind the TPM's virtio-serial port (empty: no TPM).
qemu_machine() {
  MACHINE=(
    -M virt -cpu cortex-a72 -smp 2 -m 1024
    -accel tcg,thread=multi,tb-size=256
    -drive "if=none,id=disk,file=$1,format=qcow2,cache=unsafe"
    -device virtio-blk-pci,drive=disk
    # romfile= : no iPXE option ROM (a -kernel boot never network-boots; the ROM lives in
    # ipxe-qemu, which qemu-system-arm only recommends, so a fresh machine lacks it).
    -netdev user,id=net,restrict=on -device virtio-net-pci,netdev=net,romfile=
    -device i6300esb # a PCI hardware watchdog: systemd's RuntimeWatchdogSec feeds it
    -display none -no-reboot
  )
  if [[ -n $2 ]]; then
    MACHINE+=(
      -device virtio-serial-pci
      -chardev "$2"
      -device virtserialport,chardev=vtpm,name=org.pike.vtpm
    )
  fi
}

if [[ ${1:-} == --probe ]]; then
  P=$(mktemp -d /var/tmp/pike-probe.XXXXXX)
  trap 'rm -rf "$P"' EXIT
  qemu-img create -q -f qcow2 "$P/disk.qcow2" 16M
  qemu_machine "$P/disk.qcow2" "null,id=vtpm"
  # -S: devices are created (and their ROMs loaded) but no CPU runs; `quit` ends it.
  echo quit | timeout 60 qemu-system-aarch64 "${MACHINE[@]}" -S -serial null -monitor stdio >"$P/out" 2>&1 ||
    { cat "$P/out" >&2; echo "boot-test: probe FAIL: qemu did not start" >&2; exit 1; }
  echo "boot-test: probe OK"
  exit 0
fi
IMG=${1:-$(ls -t "$OUT"/pike-*-arm64.img 2>/dev/null | head -1)}
[[ -n $IMG && -f $IMG ]] || {
  echo "boot-test: no image (run image/build.sh first)" >&2
  exit 2
}
for tool in qemu-system-aarch64 qemu-img mcopy sfdisk; do
  command -v "$tool" >/dev/null || {
    echo "boot-test: $tool missing (apt-get install qemu-system-arm qemu-utils mtools fdisk)" >&2
    exit 2
  }
done

if [[ $TPM != 0 ]] && ! command -v swtpm >/dev/null; then
  echo "boot-test: swtpm missing (apt-get install swtpm; or PIKE_BOOT_TPM=0)" >&2
  exit 2
fi

T=$(mktemp -d /var/tmp/pike-boot.XXXXXX)
cleanup() {
  if [[ -s $T/swtpm.pid ]]; then kill "$(cat "$T/swtpm.pid")" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
LOG=$OUT/boot-test.log
t0=$SECONDS

# Partition 1 (FAT) starts at sector 8192 (build.sh); read its offset from the table anyway.
boot_start=$(sfdisk -d "$IMG" | sed -n 's/.*1 : start= *\([0-9]*\),.*/\1/p')
mcopy -i "$IMG@@$((boot_start * 512))" ::vmlinuz ::initrd.img "$T/"
qemu-img create -q -f qcow2 -F raw -b "$(realpath "$IMG")" "$T/disk.qcow2"

vtpm_arg="" vtpm_chardev=""
if [[ $TPM != 0 ]]; then
  vtpm_arg=" pike.vtpm"
  vtpm_chardev="socket,id=vtpm,path=$T/tpm.sock"
  mkdir "$T/tpm"
  # allow-set-locality: the kernel's vTPM proxy sets the locality with TPM2_SetLocality.
  swtpm socket --tpm2 --tpmstate dir="$T/tpm" --server type=unixio,path="$T/tpm.sock" \
    --ctrl type=unixio,path="$T/tpm.ctrl" --flags not-need-init,startup-clear \
    --locality allow-set-locality --daemon --pid file="$T/swtpm.pid"
  for _ in $(seq 50); do [[ -S $T/tpm.sock ]] && break; sleep 0.1; done
fi
qemu_machine "$T/disk.qcow2" "$vtpm_chardev"
args=(
  "${MACHINE[@]}"
  -kernel "$T/vmlinuz" -initrd "$T/initrd.img"
  -append "console=ttyAMA0 root=PARTUUID=70696b65-02 rootwait ro pike.selftest systemd.show_status=1$vtpm_arg"
  -serial "file:$LOG"
)
echo "boot-test: booting $(basename "$IMG") (serial log: $LOG)"
rc=0
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null; then
  timeout "$TIMEOUT" unshare --net qemu-system-aarch64 "${args[@]}" || rc=$?
else
  timeout "$TIMEOUT" qemu-system-aarch64 "${args[@]}" || rc=$?
fi
elapsed=$((SECONDS - t0))

grep -a 'PIKE-SELFTEST' "$LOG" | sed 's/^.*PIKE-SELFTEST/PIKE-SELFTEST/' || true
if ((rc == 124)); then
  echo "boot-test: FAIL: no power-off within ${TIMEOUT}s (last serial lines below)"
  tail -n 30 "$LOG"
  exit 1
fi
if grep -aq 'PIKE-SELFTEST: RESULT PASS' "$LOG"; then
  echo "boot-test: PASS in ${elapsed}s (qemu exit $rc)"
  exit 0
fi
echo "boot-test: FAIL in ${elapsed}s (qemu exit $rc; last serial lines below)"
tail -n 40 "$LOG"
exit 1
