"""The image tier's A/B update proof (marker ``image``): one qemu-system-aarch64 machine
booting the built image through U-Boot (Debian's u-boot-qemu, qemu_arm64) and its A/B
boot script, with a second disk (label PIKETEST) of signed bundles made here from the
build's own root file system:

- ``next.raucb``: the same root, version N+1 (only /usr/lib/pike/firmware-version differs);
- ``broken.raucb``: N+1 with a piked that exits at once;
- ``badsig.raucb``: signed by a key the image's keyring does not know.

The guest's pike-update-selftest.service (inert without that disk) walks the steps, one a
boot, keeping its place on the data partition: boot N from slot A, refuse badsig, install
next, reboot into B (piked READY, marked good), install broken, reboot into A, which is
not marked good and reboots, U-Boot falls back to B (N+1), the config written at step one
still there, power off. The disk is 1 GiB larger than the image: the data partition grows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.prereq import require

pytestmark = pytest.mark.image
UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
DEV_SIGNING = Path(os.environ.get("PIKE_IMAGE_CACHE", "/var/cache/pike-image")) / "dev-signing"
TIMEOUT = float(os.environ.get("PIKE_UPDATE_TIMEOUT", "3000"))


def run(argv: list[str], timeout: float = 600) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv[0]}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture
def work() -> Iterator[Path]:
    # Large sparse files: /var/tmp, not a tmpfs.
    d = Path(tempfile.mkdtemp(prefix="pike-update.", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def edit_root(src: Path, dst: Path, files: dict[str, tuple[str, int]], tmp: Path) -> None:
    """A copy of the root file system image with ``files`` (path -> text, mode) replaced,
    through debugfs: nothing is mounted."""
    run(["cp", "--sparse=always", str(src), str(dst)])
    cmds = []
    for i, (path, (text, mode)) in enumerate(files.items()):
        local = tmp / f"edit{i}"
        local.write_text(text)
        cmds += [f"rm {path}", f"write {local} {path}", f"sif {path} mode 0{0o100000 | mode:o}"]
    script = tmp / "debugfs.cmds"
    script.write_text("\n".join(cmds) + "\n")
    out = subprocess.run(
        ["debugfs", "-w", "-f", str(script), str(dst)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "Could not" not in out.stderr, out.stderr


def bundle(root: Path, version: str, cert: Path, key: Path, out: Path) -> None:
    d = out.with_suffix(".d")
    d.mkdir()
    os.link(root, d / "rootfs.ext4")
    (d / "manifest.raucm").write_text(
        f"[update]\ncompatible=pike-gateway-arm64\nversion={version}\n\n"
        "[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    run(
        [
            "rauc",
            "bundle",
            f"--cert={cert}",
            f"--key={key}",
            "--mksquashfs-args=-comp lz4",
            str(d),
            str(out),
        ]
    )
    shutil.rmtree(d)


def test_ab_update_and_rollback_under_qemu(image: Path, work: Path) -> None:
    for tool in ("qemu-system-aarch64", "qemu-img", "rauc", "mksquashfs", "debugfs", "openssl"):
        require(shutil.which(tool) is not None, f"{tool} missing (tests/lib/setup.sh)")
    require(UBOOT.is_file(), f"{UBOOT} missing (package u-boot-qemu)")
    cert = Path(os.environ.get("PIKE_SIGNING_CERT", DEV_SIGNING / "pike-DEVELOPMENT-ONLY.cert.pem"))
    key = Path(os.environ.get("PIKE_SIGNING_KEY", DEV_SIGNING / "pike-DEVELOPMENT-ONLY.key.pem"))
    require(cert.is_file() and key.is_file(), f"signing key of the build missing ({cert})")
    stem = image.name.removesuffix(".img")
    rootfs = image.with_name(stem + ".rootfs.ext4")
    shipped = image.with_name(stem + ".raucb")
    assert rootfs.is_file() and shipped.is_file(), "build.sh made no root image or bundle"
    info = run(["rauc", "info", f"--keyring={cert}", "--output-format=shell", str(shipped)])
    version = re.search(r"RAUC_MF_VERSION='([^']*)'", info)
    assert version, info
    n = version.group(1)
    n1, broken_v = f"{n}.next", f"{n}.broken"

    t0 = time.monotonic()
    bundles = work / "bundles"
    bundles.mkdir()
    nxt, broken = work / "next.ext4", work / "broken.ext4"
    edit_root(rootfs, nxt, {"/usr/lib/pike/firmware-version": (n1 + "\n", 0o644)}, work)
    edit_root(
        nxt,
        broken,
        {
            "/usr/lib/pike/firmware-version": (broken_v + "\n", 0o644),
            "/opt/pike/bin/piked": (
                "#!/bin/sh\necho 'piked: broken on purpose' >&2\nexit 1\n",
                0o755,
            ),
        },
        work,
    )
    bundle(nxt, n1, cert, key, bundles / "next.raucb")
    bundle(broken, broken_v, cert, key, bundles / "broken.raucb")
    # A stranger's key: a small image is enough, the signature is checked first.
    run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=not the pike signer",
            "-keyout", str(work / "bad.key"), "-out", str(work / "bad.crt"),
        ]
    )  # fmt: skip
    # (random bytes: squashfs must not shrink it to one block; it is never written anyway)
    small = work / "small.ext4"
    small.write_bytes(os.urandom(2**20))
    bundle(small, n1, work / "bad.crt", work / "bad.key", bundles / "badsig.raucb")
    nxt.unlink()
    broken.unlink()
    size_mb = sum(f.stat().st_size for f in bundles.iterdir()) // 2**20 + 64
    upd = work / "piketest.ext4"
    run(
        [
            "mke2fs",
            "-q",
            "-t",
            "ext4",
            "-L",
            "PIKETEST",
            "-d",
            str(bundles),
            str(upd),
            f"{size_mb}M",
        ]
    )
    shutil.rmtree(bundles)
    print(f"\nbundles made in {time.monotonic() - t0:.0f}s (N={n})")

    disk = work / "disk.qcow2"
    grown = image.stat().st_size + 2**30
    base = str(image.resolve())
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, str(disk), str(grown)])
    log = work / "serial.log"
    argv = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
        "-accel", "tcg,thread=multi,tb-size=256", "-bios", str(UBOOT),
        "-drive", f"if=none,id=disk,file={disk},format=qcow2,cache=unsafe",
        "-device", "virtio-blk-pci,drive=disk",
        "-drive", f"if=none,id=upd,file={upd},format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=upd",
        "-netdev", "user,id=net,restrict=on", "-device", "virtio-net-pci,netdev=net,romfile=",
        "-device", "i6300esb", "-display", "none", "-serial", f"file:{log}",
    ]  # fmt: skip
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", *argv]
    t_boot = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[tuple[float, str]] = []
    try:
        while proc.poll() is None and time.monotonic() - t_boot < TIMEOUT:
            time.sleep(2)
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = [
                ln.strip()
                for ln in text.splitlines()
                if ln.startswith("pike-boot:") or "PIKE-UPDATE:" in ln or "pike-mark-good:" in ln
            ]
            for ln in lines[len(seen) :]:
                seen.append((time.monotonic() - t_boot, ln))
                print(f"  {seen[-1][0]:6.0f}s  {ln}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    text = log.read_text(errors="replace")
    shutil.copy(log, image.with_name("update-test.log"))
    print(f"qemu exit {proc.returncode} after {time.monotonic() - t_boot:.0f}s")
    assert proc.returncode is not None and proc.returncode >= 0, "timed out: " + text[-3000:]

    boots = re.findall(r"PIKE-UPDATE: BOOT slot=(\w+) version=(\S+) step=(\d)", text)
    assert boots == [("A", n, "0"), ("B", n1, "1"), ("A", broken_v, "2"), ("B", n1, "2")], (
        boots,
        text[-3000:],
    )
    good = re.findall(r"PIKE-UPDATE: GOOD slot=(\w+) version=(\S+)", text)
    assert good == [("A", n), ("B", n1), ("B", n1)], good
    # The broken slot never got marked good: piked's start limit or pike-mark-good's
    # failure rebooted it (whichever came first; the NOT-GOOD line only in the latter case).
    assert not re.search(rf"pike-mark-good: slot A \({re.escape(broken_v)}\) marked good", text)
    refused = re.search(r"PIKE-UPDATE: REFUSED badsig.raucb: (.*) \(t=", text)
    assert refused and "signature" in refused.group(1).lower(), (
        "no refusal line naming the signature"
    )
    print(f"wrongly signed bundle: {refused.group(1)}")
    assert text.count("PIKE-UPDATE: CONFIG kept") == 2
    assert not [ln for _, ln in seen if "PIKE-UPDATE: FAIL" in ln or "RESULT FAIL" in ln]
    assert re.search(rf"PIKE-UPDATE: RESULT PASS slot=B version={re.escape(n1)}", text)
    assert f'PIKE-UPDATE: METRIC pike_firmware_info{{slot="B",version="{n1}"}} 1.0' in text
    # U-Boot gave the broken slot its one try, then booted B without being told.
    assert "pike-boot: slot A (order A B, tries left A=0 B=" in text
    sizes = [int(m) for m in re.findall(r"step=\d data=(\d+)MiB", text)]
    assert sizes and min(sizes) > 512, f"data partition did not grow: {sizes} MiB"
