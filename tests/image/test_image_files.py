"""Fast checks of the image recipe (no build): units pass `systemd-analyze verify`, the
default config loads, the scripts parse, SSH is hardened, strongSwan stays out."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pike.hsm.uri import parse
from pike.policy.loader import load_config

IMAGE = Path(__file__).resolve().parents[2] / "image"
ROOTFS = IMAGE / "rootfs"
UNITS = ROOTFS / "etc/systemd/system"
# Executables the units name, stubbed under tmp_path so verify can check them.
EXECUTABLES = (
    "/opt/pike/bin/piked",
    "/opt/pike/bin/pikectl",
    "/opt/pike/bin/python3",
    "/usr/local/sbin/pike-firstboot",
    "/usr/lib/pike/selftest",
    "/usr/lib/pike/vtpm-relay",
    "/usr/lib/pike/data-setup",
    "/usr/lib/pike/mark-good",
    "/usr/lib/pike/update-selftest",
)


def unit(name: str) -> dict[str, list[str]]:
    """``Key`` -> values of a unit file (sections merged: keys are unique enough here)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_units_pass_systemd_analyze_verify(
    tmp_path: Path, require: Callable[[bool, str], None]
) -> None:
    require(
        shutil.which("systemd-analyze") is not None, "systemd-analyze missing (package systemd)"
    )
    for exe in EXECUTABLES:
        stub = tmp_path / exe.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    files = []
    for path in sorted([*UNITS.glob("*.service"), *UNITS.glob("*.timer")]):
        text = path.read_text()
        for exe in EXECUTABLES:
            text = text.replace(exe, f"{tmp_path}{exe}")
        (tmp_path / path.name).write_text(text)
        files.append(str(tmp_path / path.name))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *files], capture_output=True, text=True, check=False
    )
    # verify exits 0 on unknown keys too: any output at all is a finding.
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr


def test_renewal_timer_is_daily_spread_and_enabled() -> None:
    t = unit("pike-renew.timer")
    assert t["OnCalendar"] == ["daily"] and t["Persistent"] == ["true"]
    assert t["RandomizedDelaySec"] == ["6h"]  # a fleet does not hit the EST server at once
    s = unit("pike-renew.service")
    assert s["ExecCondition"] == [
        "/opt/pike/bin/pikectl --config /etc/pike/pike.toml keys renew --configured"
    ]
    assert s["ExecStart"] == ["/opt/pike/bin/pikectl --config /etc/pike/pike.toml keys renew"]
    assert "systemctl enable pike-renew.timer" in (IMAGE / "hooks/customize.sh").read_text()


def test_piked_unit_is_notify_with_watchdog_and_hardening() -> None:
    u = unit("piked.service")
    assert u["Type"] == ["notify"]
    assert u["WatchdogSec"] == ["30"]
    assert u["NoNewPrivileges"] == ["yes"]
    assert u["ProtectSystem"] == ["strict"]
    assert u["PrivateTmp"] == ["yes"]
    assert u["ReadWritePaths"] == ["/run/pike /var/lib/pike"]
    caps = "CAP_NET_ADMIN CAP_NET_BIND_SERVICE"  # no NET_RAW; BIND_SERVICE dropped once bound
    assert u["CapabilityBoundingSet"] == [caps]
    assert u["AmbientCapabilities"] == [caps]
    assert u["MemoryMax"] == ["256M"] and u["MemoryHigh"] == ["192M"]
    assert u["TasksMax"] == ["64"]
    assert u["User"] == ["pike"]
    assert u["StartLimitAction"] == ["reboot"]
    assert u["ExecStart"] == ["/opt/pike/bin/piked --config /etc/pike/pike.toml"]


def test_keyd_unit_is_the_one_the_readme_switches_to() -> None:
    """pike-keyd.service (own-unit mode, issue 13): its own user, no capability, the
    socket path and peer user the README's switch gives piked; shipped, not enabled."""
    u = unit("pike-keyd.service")
    sock = "/run/pike-keyd/keyd.sock"
    assert u["ExecStart"] == [
        f"/opt/pike/bin/python3 -m pike.cli.keyd --socket {sock} --peer-user pike"
    ]
    assert u["User"] == ["pike-keyd"] and u["RuntimeDirectory"] == ["pike-keyd"]
    assert u["CapabilityBoundingSet"] == [""] and u["NoNewPrivileges"] == ["yes"]
    assert u["Before"] == ["piked.service"]
    hook = (IMAGE / "hooks/customize.sh").read_text()
    assert '--comment "pike key helper" pike-keyd' in hook
    enable = next(ln for ln in hook.replace("\\\n", " ").splitlines() if "systemctl enable" in ln)
    assert "pike-keyd" not in enable  # the image ships the spawned mode
    readme = (IMAGE.parent / "README.md").read_text()
    assert f'key_helper = "{sock}"' in readme
    assert "Requires=pike-keyd.service" in readme and "chown pike-keyd:pike-keyd" in readme


def test_config_is_root_pike_0640_and_pike_admin_exists() -> None:
    """The config may hold PSKs: not readable by others (issue 13)."""
    hook = (IMAGE / "hooks/customize.sh").read_text()
    assert 'chroot "$r" chown root:pike /etc/pike/pike.toml' in hook
    assert 'chmod 0640 "$r/etc/pike/pike.toml"' in hook
    assert 'chroot "$r" groupadd --system pike-admin' in hook
    assert hook.index("groupadd --system pike-admin") > hook.index("useradd --system")


def test_firstboot_is_conditional_and_once() -> None:
    u = unit("pike-firstboot.service")
    assert "!/var/lib/pike/.firstboot-done" in u["ConditionPathExists"]
    assert u["Type"] == ["oneshot"]
    assert u["After"] == ["local-fs.target systemd-udev-trigger.service"]  # no device wait
    assert u["Before"] == ["piked.service"]


def test_example_key_uri_is_the_one_first_boot_makes() -> None:
    """pike.toml's commented key URI parses and names the token, key, module, TCTI, PIN
    file and store that pike-firstboot uses by default."""
    toml = (ROOTFS / "etc/pike/pike.toml").read_text()
    m = re.search(r'^# key = "(pkcs11:[^"]+)"$', toml, re.M)
    assert m, "no example key URI in pike.toml"
    key = parse(m.group(1))
    assert (key.token, key.object, key.pin_source) == (
        "pike", "gateway", "file:/etc/pike/token.pin"
    )  # fmt: skip
    script = (ROOTFS / "usr/local/sbin/pike-firstboot").read_text()

    def default(var: str) -> str:
        found = re.search(rf"^\w+=\$\{{{var}:-(.*)\}}$", script, re.M)
        assert found, var
        return found.group(1)

    assert key.module_path == default("PIKE_TPM_MODULE")
    assert key.tcti == default("PIKE_TPM_TCTI").replace("$TPM_DEVICE", default("PIKE_TPM_DEVICE"))
    assert (default("PIKE_TOKEN"), default("PIKE_KEY")) == ("pike", "gateway")
    assert default("PIKE_ETC") == "/etc/pike" and default("PIKE_STATE") == "/var/lib/pike"
    env = unit("piked.service")["Environment"]
    assert "TPM2_PKCS11_STORE=/var/lib/pike/tpm2-pkcs11" in env
    assert default("PIKE_TPM_STORE") == "$STATE/tpm2-pkcs11"


def test_watchdog_config_feeds_the_hardware() -> None:
    text = (ROOTFS / "etc/systemd/system.conf.d/pike-watchdog.conf").read_text()
    assert re.search(r"^RuntimeWatchdogSec=15s$", text, re.M)
    assert re.search(r"^WatchdogDevice=/dev/watchdog$", text, re.M)


def test_default_config_loads() -> None:
    cfg = load_config(str(ROOTFS / "etc/pike/pike.toml"))
    assert cfg.daemon.control_socket == "/run/pike/pike.sock"
    assert cfg.connections == {}


def test_ssh_is_hardened() -> None:
    text = (ROOTFS / "etc/ssh/sshd_config.d/pike-hardening.conf").read_text()
    for line in (
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey",
    ):
        assert re.search(rf"^{line}$", text, re.M), line


def test_package_list_is_strongswan_free() -> None:
    packages = [
        line.split("#")[0].strip()
        for line in (IMAGE / "packages").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert {"systemd", "python3", "iproute2", "openssh-server", "raspi-firmware"} <= set(packages)
    assert not [p for p in packages if "strongswan" in p or "libreswan" in p or "charon" in p]


def test_boot_files() -> None:
    config = (IMAGE / "boot/config.txt").read_text()
    assert re.search(r"^arm_64bit=1$", config, re.M)
    # The Pi firmware starts U-Boot (u-boot-rpi), which runs the A/B boot script.
    assert re.search(r"^kernel=u-boot.bin$", config, re.M)
    assert not re.search(r"^initramfs", config, re.M)  # the slot's own, loaded by U-Boot
    assert "u-boot-rpi" in (IMAGE / "packages").read_text().split()
    assert (
        '"$ROOTFS/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$FW/u-boot.bin"'
        in (IMAGE / "build.sh").read_text()
    )
    cmdline = (IMAGE / "boot/cmdline.txt").read_text()
    assert cmdline.count("\n") == 1  # the firmware wants one line
    # The board's part only: U-Boot appends root= and rauc.slot= of the slot it picked (the
    # first rauc.slot= would win, so none may come from here).
    assert not [a for a in cmdline.split() if a.startswith(("root=", "rauc.slot="))]


def test_ab_slots_agree() -> None:
    """RAUC's slots, U-Boot's boot script, the disk id build.sh writes and the boot
    counters' file name one layout: A = partition 2, B = 3, data = 4 on disk 0x70696b65."""
    conf = (ROOTFS / "etc/rauc/system.conf").read_text()
    slots = re.findall(
        r"device=/dev/disk/by-partuuid/70696b65-0(\d)\s+type=ext4\s+bootname=(\w)", conf
    )
    assert slots == [("2", "A"), ("3", "B")]
    assert re.search(r"^bootloader=uboot$", conf, re.M)
    assert re.search(r"^boot-attempts-primary=1$", conf, re.M)  # a new slot gets one try
    script = (IMAGE / "boot/boot.cmd").read_text()
    assert "setenv pike_slot A\n      setenv pike_part 2" in script
    assert "setenv pike_slot B\n      setenv pike_part 3" in script
    assert "root=PARTUUID=70696b65-0${pike_part}" in script and "rauc.slot=${pike_slot}" in script
    assert "DISK_ID=0x70696b65" in (IMAGE / "build.sh").read_text()
    assert "70696b65-04" in (ROOTFS / "usr/lib/pike/data-setup").read_text()
    env = (ROOTFS / "etc/fw_env.config").read_text().split("\n")
    assert "/boot/firmware/pikeboot.env 0x0000 0x4000" in env
    assert "pikeboot.env 0x4000" in script
    # Not uboot.env: U-Boot for the Pi loads that file as its whole environment.
    assert '-o "$FW/pikeboot.env"' in (IMAGE / "build.sh").read_text()
    assert not re.search(r"(load|fatwrite) .*uboot\.env", script)
    fstab = (ROOTFS / "etc/fstab").read_text()
    assert re.search(r"^/dev/root\s+/\s+ext4\s+ro,", fstab, re.M)  # read-only root


def test_mark_good_reboots_on_failure_and_runs_after_piked() -> None:
    u = unit("pike-mark-good.service")
    assert u["FailureAction"] == ["reboot"]
    assert "piked.service" in u["After"][0].split()


def test_vtpm_relay_compiles_and_is_inert_without_pike_vtpm() -> None:
    relay = ROOTFS / "usr/lib/pike/vtpm-relay"
    assert relay.stat().st_mode & 0o111
    compile(relay.read_text(), str(relay), "exec")
    u = unit("pike-vtpm.service")
    assert u["ConditionKernelCommandLine"] == ["pike.vtpm"]
    assert u["Before"] == ["pike-firstboot.service"]


@pytest.mark.parametrize(
    "script",
    [
        "build.sh",
        "boot-test.sh",
        "hooks/essential.sh",
        "hooks/customize.sh",
        "rootfs/usr/lib/pike/selftest",
        "rootfs/usr/local/sbin/pike-firstboot",
        "rootfs/usr/lib/pike/data-setup",
        "rootfs/usr/lib/pike/mark-good",
        "rootfs/usr/lib/pike/update-selftest",
    ],
)
def test_scripts_parse(script: str) -> None:
    path = IMAGE / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    shell = "bash" if path.read_text().startswith("#!/bin/bash") or script.endswith(".sh") else "sh"
    proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
