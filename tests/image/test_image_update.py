"""The image tier's A/B update proof (marker ``image``): one qemu-system-aarch64 machine
booting the built image through U-Boot (Debian's u-boot-qemu, qemu_arm64) and its A/B
boot script, with a second disk (label PIKETEST) of signed bundles made here from the
build's own root file system:

- ``next.raucb``: the same root, version N+1 (only /usr/lib/pike/firmware-version differs);
- ``broken.raucb``: N+1 with a piked that exits at once;
- ``badsig.raucb``: signed by a key the image's keyring does not know;

and a tunnel (``tunnel.toml``: IKEv2, PSK) to a strongSwan peer this test runs: qemu's NIC
is a tap device in a network namespace made here (dnsmasq hands the guest its address),
charon sits in that namespace with kernel-libipsec (the host kernel has no ESP).

The guest's pike-update-selftest.service (inert without that disk) walks the steps, one a
boot, keeping its place on the boot partition: boot N from slot A, add the tunnel to the
config on the data partition, refuse badsig, install next, reboot into B (piked READY;
charon is started only now, so pike-mark-good must wait for the tunnel before it marks B
good), install broken, reboot into A, which is not marked good and reboots, U-Boot falls
back to B (N+1): config intact, the tunnel up again (the peer pings through it); then a
factory reset keep-keys (stand-in key files kept, config and state gone, piked READY on
the image's config) and a factory reset all (nothing kept), power off. The disk is 1 GiB
larger than the image: the data partition grows.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab, Namespace
from interop.strongswan import (
    Child,
    Connection,
    IkeSaInfo,
    Secret,
    StrongswanNode,
    charon_available,
)
from lib.prereq import require

pytestmark = pytest.mark.image
UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
DEV_SIGNING = Path(os.environ.get("PIKE_IMAGE_CACHE", "/var/cache/pike-image")) / "dev-signing"
TIMEOUT = float(os.environ.get("PIKE_UPDATE_TIMEOUT", "3000"))
# The tap network in the test's namespace, and each side's tunnel (inside) address.
PEER, GUEST, MAC, TAP = "10.99.0.1", "10.99.0.2", "52:54:00:70:6b:02", "piketap"
PEER_INNER, GUEST_INNER = "10.98.1.1", "10.97.0.2"
PROPOSAL, ESP = "aes128gcm16-prfsha256-x25519", "aes128gcm16"
GUEST_ID, PEER_ID = "gateway.piketest", "peer.piketest"


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


def tunnel_files(d: Path, psk: str) -> None:
    """The guest's side of the tunnel, for update-selftest to add to /etc/pike/pike.toml
    (the PSK only in files: never on a command line or in a log)."""
    # Short retransmissions: charon starts after piked's first IKE_SA_INIT went unanswered.
    (d / "tunnel-daemon.toml").write_text(
        'retransmit_timeout = "2s"\nretransmit_base = 1.5\nretransmit_tries = 6\n'
    )
    (d / "tunnel.toml").write_text(
        f"""
[connections.piketest]
version = 2
remote_addrs = ["{PEER}"]
proposals = ["{PROPOSAL}"]
local = {{ auth = "psk", id = "{GUEST_ID}" }}
remote = {{ auth = "psk", id = "{PEER_ID}" }}

[connections.piketest.children.lan]
local_ts = ["{GUEST_INNER}/32"]
remote_ts = ["{PEER_INNER}/32"]
esp_proposals = ["{ESP}"]
start_action = "start"

[secrets.ike-piketest]
id = ["{GUEST_ID}", "{PEER_ID}"]
secret = "{psk}"
"""
    )
    (d / "inner-address").write_text(f"{GUEST_INNER}/32\n")


def peer_network(lab: Lab, work: Path) -> Namespace:
    """The namespace qemu runs in: its tap device with the peer's address, the peer's inside
    address on lo, and dnsmasq giving the guest (by its MAC) its address and route."""
    ns = lab.add_ns("peer")
    ns.ip("tuntap", "add", "dev", TAP, "mode", "tap")
    ns.ip("addr", "add", f"{PEER}/24", "dev", TAP)
    ns.ip("link", "set", TAP, "up")
    ns.ip("addr", "add", f"{PEER_INNER}/32", "dev", "lo")
    dhcp = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--pid-file",
        "--user=root", f"--interface={TAP}", "--bind-interfaces", "--dhcp-ignore-clid",
        f"--dhcp-range={GUEST},{GUEST},255.255.255.0,12h", f"--dhcp-host={MAC},{GUEST}",
        f"--dhcp-option=option:router,{PEER}", f"--dhcp-leasefile={work / 'leases'}",
        f"--log-facility={work / 'dnsmasq.log'}",
    ]  # fmt: skip
    ns.popen(dhcp)
    return ns


def peer_node(ns: Namespace, work: Path, psk: str) -> StrongswanNode:
    conn = Connection(
        name="gateway",
        local_addrs=[PEER],
        remote_addrs=[GUEST],
        proposals=[PROPOSAL],
        local_id=PEER_ID,
        remote_id=GUEST_ID,
        children=[
            Child("lan", local_ts=[f"{PEER_INNER}/32"], remote_ts=[f"{GUEST_INNER}/32"],
                  esp_proposals=[ESP])
        ],
        # a new IKE SA from the rebooted gateway replaces the one it left behind
        extra={"unique": "replace"},
    )  # fmt: skip
    return StrongswanNode(
        ns=ns,
        workdir=work,
        name="peer",
        connections=[conn],
        secrets=[Secret("gateway", psk, ids=[GUEST_ID, PEER_ID])],
    )


def tunnel_up(sas: list[IkeSaInfo]) -> bool:
    return any(
        sa.state == "ESTABLISHED" and any(c.state == "INSTALLED" for c in sa.children) for sa in sas
    )


def boots_of(seen: list[tuple[float, str]]) -> list[list[tuple[float, str]]]:
    """The console lines split at each boot (U-Boot's boot script prints ``pike-boot:``)."""
    out: list[list[tuple[float, str]]] = []
    for t, ln in seen:
        if ln.startswith("pike-boot:"):
            out.append([])
        if out:
            out[-1].append((t, ln))
    return out


def first(lines: list[tuple[float, str]], needle: str) -> tuple[int, float]:
    """Index and time of the first line holding ``needle``."""
    for i, (t, ln) in enumerate(lines):
        if needle in ln:
            return i, t
    raise AssertionError(f"no line with {needle!r} in {[ln for _, ln in lines]}")


def test_ab_update_and_rollback_under_qemu(image: Path, work: Path) -> None:
    for tool in (
        "qemu-system-aarch64", "qemu-img", "rauc", "mksquashfs", "debugfs", "openssl",
        "dnsmasq", "ping", "swanctl",
    ):  # fmt: skip
        require(shutil.which(tool) is not None, f"{tool} missing (tests/lib/setup.sh)")
    require(charon_available(), "strongSwan's charon missing (tests/lib/setup.sh)")
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
    psk = "0x" + secrets.token_hex(32)
    tunnel_files(bundles, psk)
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
        "-netdev", f"tap,id=net,ifname={TAP},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net,mac={MAC},romfile=",
        "-device", "i6300esb", "-display", "none", "-serial", f"file:{log}",
    ]  # fmt: skip
    with Lab.create() as lab:
        ns = peer_network(lab, work)
        peer = peer_node(ns, work, psk)
        run_guest(ns, peer, argv, log, image, n, n1, broken_v)


def run_guest(
    ns: Namespace, peer: StrongswanNode, argv: list[str], log: Path, image: Path, n: str,
    n1: str, broken_v: str,
) -> None:  # fmt: skip
    t_boot = time.monotonic()
    with (log.parent / "qemu.out").open("wb") as qout:
        proc = ns.popen(argv, stdout=qout)
    seen: list[tuple[float, str]] = []
    t_charon: float | None = None
    peer_states: list[tuple[float, bool]] = []  # (time, IKE + CHILD SA up) at each change
    pinged: subprocess.CompletedProcess[str] | None = None
    sas_at_ping: list[IkeSaInfo] = []
    on_b1 = False
    try:
        while proc.poll() is None and time.monotonic() - t_boot < TIMEOUT:
            time.sleep(2)
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = [
                ln.strip()
                for ln in text.splitlines()
                if ln.startswith("pike-boot:")
                or "PIKE-UPDATE:" in ln
                or "pike-mark-good:" in ln
                or "pike-data: factory reset" in ln
            ]
            now = time.monotonic() - t_boot  # read time: every line here was written before
            for ln in lines[len(seen) :]:
                seen.append((now, ln))
                print(f"  {now:6.0f}s  {ln}")
                on_b1 = on_b1 or ("BOOT slot=B" in ln and "step=1" in ln)
                if on_b1 and t_charon is None and "pike-mark-good: piked READY" in ln:
                    # piked on B is READY and its tunnel cannot be up: there is no peer yet.
                    peer.start()
                    t_charon = time.monotonic() - t_boot
                    print(f"  {t_charon:6.0f}s  (host) charon started in {ns.name}")
                if "TUNNEL step=2 installed" in ln:
                    pinged = ns.run(
                        ["ping", "-n", "-c", "3", "-i", "0.5", "-W", "5", "-I", PEER_INNER,
                         GUEST_INNER],
                        check=False, timeout=30,
                    )  # fmt: skip
                    sas_at_ping = peer.list_sas()
                    print(f"  {time.monotonic() - t_boot:6.0f}s  (host) ping: {pinged.stdout}")
            # After reading the console: an SA the console already counts on is seen here.
            if t_charon is not None:
                up = tunnel_up(peer.list_sas())
                if not peer_states or peer_states[-1][1] != up:
                    peer_states.append((time.monotonic() - t_boot, up))
                    print(f"  {peer_states[-1][0]:6.0f}s  (host) peer: tunnel up={up}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        peer.stop()
    text = log.read_text(errors="replace")
    shutil.copy(log, image.with_name("update-test.log"))
    if peer.log_path.exists():
        shutil.copy(peer.log_path, image.with_name("update-test-charon.log"))
    print(f"qemu exit {proc.returncode} after {time.monotonic() - t_boot:.0f}s")
    assert proc.returncode is not None and proc.returncode >= 0, "timed out: " + text[-3000:]

    boots = re.findall(r"PIKE-UPDATE: BOOT slot=(\w+) version=(\S+) step=(\d)", text)
    assert boots == [
        ("A", n, "0"), ("B", n1, "1"), ("A", broken_v, "2"), ("B", n1, "2"), ("B", n1, "3"),
        ("B", n1, "4"),
    ], (boots, text[-3000:])  # fmt: skip
    good = re.findall(r"PIKE-UPDATE: GOOD slot=(\w+) version=(\S+)", text)
    assert good == [("A", n), ("B", n1), ("B", n1), ("B", n1)], good
    # The broken slot never got marked good: piked's start limit or pike-mark-good's
    # failure rebooted it (whichever came first; the NOT-GOOD line only in the latter case).
    assert not re.search(rf"pike-mark-good: slot A \({re.escape(broken_v)}\) marked good", text)
    refused = re.search(r"PIKE-UPDATE: REFUSED badsig.raucb: (.*) \(t=", text)
    assert refused and "signature" in refused.group(1).lower(), (
        "no refusal line naming the signature"
    )
    print(f"wrongly signed bundle: {refused.group(1)}")
    assert re.search(r"PIKE-UPDATE: TUNNEL configured: .*OK, 1 connection", text), text[-3000:]
    assert text.count("PIKE-UPDATE: CONFIG kept") == 2
    assert not [ln for _, ln in seen if "PIKE-UPDATE: FAIL" in ln or "RESULT FAIL" in ln]
    assert f'PIKE-UPDATE: METRIC pike_firmware_info{{slot="B",version="{n1}"}} 1.0' in text
    # U-Boot gave the broken slot its one try, then booted B without being told.
    assert "pike-boot: slot A (order A B, tries left A=0 B=" in text
    sizes = [int(m) for m in re.findall(r"step=\d data=(\d+)MiB", text)]
    assert sizes and min(sizes) > 512, f"data partition did not grow: {sizes} MiB"

    segs = boots_of(seen)
    assert len(segs) == 6, [s[0][1] for s in segs]
    _, b1, broken, b2, keep, wiped = segs
    mg = "pike-mark-good: "
    # (a) B is marked good only once its tunnel is up, and the tunnel came up only after
    # the peer was started, which was after piked on B was READY.
    assert t_charon is not None
    i_ready, _ = first(b1, mg + "piked READY")
    i_up, _ = first(b1, mg + "tunnels up: 1 of 1")
    i_good, t_good = first(b1, f"{mg}slot B ({n1}) marked good")
    assert i_ready < i_up < i_good, b1
    # (Console lines carry the time they were read: "marked good" read before the peer
    # ran would have been written before it, too.)
    assert t_good > t_charon, "B was marked good before the peer even ran"
    ups = [t for t, up in peer_states if up]
    assert ups and t_charon < ups[0] < broken[0][0], (t_charon, peer_states)
    first(b1, "TUNNEL step=1 installed 1 of 1")
    # (b) after the fallback to B the tunnel is up again: a new IKE SA and CHILD SA at the
    # peer, installed in the guest's kernel, mark-good waited for it, a ping crosses it.
    t_fallback = b2[0][0]
    assert [t for t in ups if t > t_fallback], (t_fallback, peer_states)
    first(b2, mg + "tunnels up: 1 of 1")
    first(b2, "TUNNEL step=2 installed 1 of 1")
    assert pinged is not None and pinged.returncode == 0, pinged
    assert " 0% packet loss" in pinged.stdout, pinged.stdout
    assert tunnel_up(sas_at_ping), sas_at_ping
    carried = re.search(r"TUNNEL carried (\d+) ESP packets", text)
    assert carried and int(carried.group(1)) >= 6, "the guest's SAs carried no ping"
    first(b2, f"FALLBACK OK slot=B version={n1}")
    assert len(re.findall(r"CHILD_SA lan\{\d+\} established", peer.log_text())) >= 2
    # (c) factory reset: keep-keys keeps the key files and wipes config and state, and piked
    # comes up on the image's config; all keeps nothing.
    first(keep, "pike-data: factory reset (keep-keys)")
    first(keep, "RESET keep-keys kept=3 of 3 wiped-left=0 of 2 config=default")
    first(keep, f"{mg}slot B ({n1}) marked good")
    first(keep, "KEEP-KEYS OK slot=B piked READY on the image's config, tunnels 0 of 0")
    first(wiped, "pike-data: factory reset (all)")
    first(wiped, "RESET all kept=0 of 5 config=default factory-reset-file=0")
    first(wiped, f"RESULT PASS slot=B version={n1}")

    # Each step's time, from qemu's start (the closing note of issue 18).
    names = ["N on A", "N+1 on B", "broken on A", "fallback to B", "keep-keys", "reset all"]
    for name, seg in zip(names, segs, strict=True):
        goods = [t for t, ln in seg if "marked good" in ln and mg in ln]
        end = seg[-1][0]
        print(
            f"step {name}: boot at {seg[0][0]:.0f}s, "
            + (f"marked good at {goods[0]:.0f}s, " if goods else "")
            + f"last line at {end:.0f}s"
        )
