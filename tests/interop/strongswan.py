"""A strongSwan charon as a test peer inside a :class:`~.netns.Namespace`.

Each node has its own directory holding ``strongswan.conf``, ``swanctl/`` (SWANCTL_DIR),
the vici socket, ``run/`` (bind-mounted over ``/run`` in a private mount namespace, because
charon's pid file is fixed at ``/var/run/charon.pid``) and ``charon.log`` (filelog with
ike/knl/cfg at level 2).  charon never forks and every wrapper execs, so the PID we hold
is charon's and it is stopped by that PID.

``swanctl`` runs outside the namespace: it only needs the node's vici socket.

Measured on the development machine (Debian 12, strongSwan 5.9.8, kernel-libipsec, two
charons, PSK, 10 rounds each; see :attr:`StrongswanNode.timings`): charon start to vici
ready ~45 ms (first start ~130 ms); ``swanctl --initiate`` (IKE_SA + CHILD_SA, blocking)
median 25 ms with the default proposals (x25519), 32 ms aes128gcm16-prfsha256-x25519,
55 ms aes256-sha256-modp3072, 53 ms IKEv1 main + quick mode modp3072.  Inside the UML guest
(kernel-netlink, real ESP) everything is several times slower.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .netns import Namespace, NetnsError, kill_pid

CHARON = Path("/usr/lib/ipsec/charon")
SWANCTL = "swanctl"

BASE_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey "
    "curve25519 gmp aes sha1 sha2 hmac gcm kdf"
)
TAIL_PLUGINS = "socket-default vici updown"
# tests/peers/build-strongswan6.sh's charon: OpenSSL for the classic algorithms, `ml` for ML-KEM
BUILT_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey kdf drbg ml"
)


def charon_available() -> bool:
    return CHARON.exists() and shutil.which(SWANCTL) is not None


def kernel_has_esp(ns: Namespace) -> bool:
    """Probe (inside ``ns``, so nothing leaks) whether the kernel can hold an ESP SA."""
    args = [
        "ip",
        "xfrm",
        "state",
        "add",
        "src",
        "192.0.2.250",
        "dst",
        "192.0.2.251",
        "proto",
        "esp",
        "spi",
        "0x1000",
        "mode",
        "tunnel",
        "enc",
        "cbc(aes)",
        "0x" + "00" * 16,
        "auth-trunc",
        "hmac(sha256)",
        "0x" + "00" * 32,
        "128",
    ]
    ok = ns.run(args, check=False).returncode == 0
    if ok:
        ns.run(["ip", "xfrm", "state", "flush"], check=False)
    return ok


# -- swanctl.conf generation -------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_.:/@*%,+-]+$")


def _value(v: str | int | bool | Sequence[str]) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if not isinstance(v, str):
        v = ",".join(v)
    if _BARE.match(v):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


Settings = dict[str, "str | int | bool | Sequence[str] | Settings"]


def render_settings(settings: Settings, indent: int = 0) -> str:
    """Render nested dicts in strongswan.conf / swanctl.conf syntax."""
    pad = "  " * indent
    out = []
    for key, val in settings.items():
        if isinstance(val, dict):
            out.append(f"{pad}{key} {{")
            out.append(render_settings(val, indent + 1))
            out.append(f"{pad}}}")
        else:
            out.append(f"{pad}{key} = {_value(val)}")
    return "\n".join(line for line in out if line)


@dataclass
class Child:
    """One ``connections.<conn>.children.<name>`` section."""

    name: str
    local_ts: Sequence[str] = ("dynamic",)
    remote_ts: Sequence[str] = ("dynamic",)
    esp_proposals: Sequence[str] = ("default",)
    mode: str = "tunnel"
    start_action: str = "none"
    dpd_action: str | None = None
    close_action: str | None = None
    rekey_time: str | None = None
    updown: str | None = None
    extra: Settings = field(default_factory=dict)

    def settings(self) -> Settings:
        s: Settings = {
            "local_ts": self.local_ts,
            "remote_ts": self.remote_ts,
            "esp_proposals": self.esp_proposals,
            "mode": self.mode,
            "start_action": self.start_action,
        }
        for k in ("dpd_action", "close_action", "rekey_time", "updown"):
            v = getattr(self, k)
            if v is not None:
                s[k] = v
        s.update(self.extra)
        return s


@dataclass
class Connection:
    """One ``connections.<name>`` section (IKEv1 or IKEv2; PSK or pubkey).

    ``local_auth``/``remote_auth`` are ``psk`` or ``pubkey``; for pubkey put the cert file
    names (installed with :meth:`StrongswanNode.install_cert`) in ``local_certs``.
    """

    name: str
    local_addrs: Sequence[str] = ()
    remote_addrs: Sequence[str] = ()
    version: int = 2
    proposals: Sequence[str] = ("default",)
    local_auth: str = "psk"
    remote_auth: str = "psk"
    local_id: str | None = None
    remote_id: str | None = None
    local_certs: Sequence[str] = ()
    children: Sequence[Child] = ()
    dpd_delay: str | None = None
    dpd_timeout: str | None = None
    aggressive: bool = False
    encap: bool = False
    mobike: bool | None = None
    rekey_time: str | None = None
    extra: Settings = field(default_factory=dict)

    def settings(self) -> Settings:
        local: Settings = {"auth": self.local_auth}
        if self.local_id is not None:
            local["id"] = self.local_id
        if self.local_certs:
            local["certs"] = self.local_certs
        remote: Settings = {"auth": self.remote_auth}
        if self.remote_id is not None:
            remote["id"] = self.remote_id
        s: Settings = {"version": self.version}
        if self.local_addrs:
            s["local_addrs"] = self.local_addrs
        if self.remote_addrs:
            s["remote_addrs"] = self.remote_addrs
        s["proposals"] = self.proposals
        for k in ("dpd_delay", "dpd_timeout", "rekey_time"):
            v = getattr(self, k)
            if v is not None:
                s[k] = v
        if self.aggressive:
            s["aggressive"] = True
        if self.encap:
            s["encap"] = True
        if self.mobike is not None:
            s["mobike"] = self.mobike
        s["local"] = local
        s["remote"] = remote
        s["children"] = {c.name: c.settings() for c in self.children}
        s.update(self.extra)
        return s


@dataclass
class Secret:
    """A ``secrets`` entry: ``ike-<name>`` PSK for ``ids`` (or any peer when empty)."""

    name: str
    secret: str
    ids: Sequence[str] = ()
    kind: str = "ike"

    def settings(self) -> Settings:
        s: Settings = {f"id-{i + 1}": ident for i, ident in enumerate(self.ids)}
        s["secret"] = self.secret
        return s


def render_swanctl(connections: Sequence[Connection], secrets: Sequence[Secret] = ()) -> str:
    conf: Settings = {
        "connections": {c.name: c.settings() for c in connections},
        "secrets": {f"{s.kind}-{s.name}": s.settings() for s in secrets},
    }
    return render_settings(conf) + "\n"


# -- parsed list-sas ---------------------------------------------------------------------

RawValue = str | list[str] | dict[str, "RawValue"]


class RawParseError(ValueError):
    pass


# A key=value's value ends before " <vici key>=" / " <vici key> {" or at a section end.
# vici keys are lowercase ASCII with '-'/'_', so values with spaces (e.g. DN identities
# "C=CH, O=strongSwan, CN=moon") do not end early.
_VALUE_END = re.compile(r" (?=[a-z0-9][a-z0-9_-]*(?:=| \{))|(?=\})")


def parse_raw_message(line: str) -> tuple[str, dict[str, RawValue]]:
    """Parse one ``swanctl --raw`` message line ``label {k=v sec {..} list=[a b]}``."""
    line = line.rstrip("\n")
    brace = line.find(" {")
    if brace < 0 or not line.endswith("}"):
        raise RawParseError(f"not a vici raw message: {line!r}")
    label = line[:brace]
    body, pos = _parse_section(line, brace + 2)
    if pos != len(line):
        raise RawParseError(f"trailing data at {pos} in {line!r}")
    return label, body


def _parse_section(s: str, pos: int) -> tuple[dict[str, RawValue], int]:
    out: dict[str, RawValue] = {}
    first = True
    while True:
        if pos >= len(s):
            raise RawParseError(f"unterminated section in {s!r}")
        if s[pos] == "}":
            return out, pos + 1
        if not first and s[pos] == " ":
            pos += 1
        first = False
        eq = s.find("=", pos)
        sec = s.find(" {", pos)
        if sec >= 0 and (eq < 0 or sec < eq):
            name = s[pos:sec]
            out[name], pos = _parse_section(s, sec + 2)
            continue
        if eq < 0:
            raise RawParseError(f"expected key at {pos} in {s!r}")
        name = s[pos:eq]
        pos = eq + 1
        if s.startswith("[", pos):
            end = s.find("]", pos)
            if end < 0:
                raise RawParseError(f"unterminated list in {s!r}")
            inner = s[pos + 1 : end]
            out[name] = inner.split(" ") if inner else []
            pos = end + 1
            continue
        m = _VALUE_END.search(s, pos)
        if m is None:
            raise RawParseError(f"unterminated value at {pos} in {s!r}")
        out[name] = s[pos : m.start()]
        pos = m.start()


def _s(d: dict[str, RawValue], key: str, default: str = "") -> str:
    v = d.get(key, default)
    return v if isinstance(v, str) else default


def _l(d: dict[str, RawValue], key: str) -> list[str]:
    v = d.get(key, [])
    return v if isinstance(v, list) else []


def _i(d: dict[str, RawValue], key: str) -> int:
    v = _s(d, key, "0")
    return int(v) if v.isdigit() else 0


@dataclass
class ChildSaInfo:
    name: str
    state: str
    mode: str
    protocol: str
    spi_in: str
    spi_out: str
    local_ts: list[str]
    remote_ts: list[str]
    encr_alg: str
    integ_alg: str
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    raw: dict[str, RawValue]

    @classmethod
    def from_raw(cls, d: dict[str, RawValue]) -> ChildSaInfo:
        return cls(
            name=_s(d, "name"),
            state=_s(d, "state"),
            mode=_s(d, "mode"),
            protocol=_s(d, "protocol"),
            spi_in=_s(d, "spi-in"),
            spi_out=_s(d, "spi-out"),
            local_ts=_l(d, "local-ts"),
            remote_ts=_l(d, "remote-ts"),
            encr_alg=_s(d, "encr-alg"),
            integ_alg=_s(d, "integ-alg"),
            bytes_in=_i(d, "bytes-in"),
            bytes_out=_i(d, "bytes-out"),
            packets_in=_i(d, "packets-in"),
            packets_out=_i(d, "packets-out"),
            raw=d,
        )


@dataclass
class IkeSaInfo:
    name: str
    uniqueid: str
    version: int
    state: str
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    local_id: str
    remote_id: str
    initiator: bool
    initiator_spi: str
    responder_spi: str
    encr_alg: str
    encr_keysize: int
    integ_alg: str
    prf_alg: str
    dh_group: str
    nat_any: bool
    children: list[ChildSaInfo]
    raw: dict[str, RawValue]

    @classmethod
    def from_raw(cls, name: str, d: dict[str, RawValue]) -> IkeSaInfo:
        kids = d.get("child-sas", {})
        children = (
            [ChildSaInfo.from_raw(v) for v in kids.values() if isinstance(v, dict)]
            if isinstance(kids, dict)
            else []
        )
        return cls(
            name=name,
            uniqueid=_s(d, "uniqueid"),
            version=_i(d, "version"),
            state=_s(d, "state"),
            local_host=_s(d, "local-host"),
            local_port=_i(d, "local-port"),
            remote_host=_s(d, "remote-host"),
            remote_port=_i(d, "remote-port"),
            local_id=_s(d, "local-id"),
            remote_id=_s(d, "remote-id"),
            initiator=_s(d, "initiator") == "yes",
            initiator_spi=_s(d, "initiator-spi"),
            responder_spi=_s(d, "responder-spi"),
            encr_alg=_s(d, "encr-alg"),
            encr_keysize=_i(d, "encr-keysize"),
            integ_alg=_s(d, "integ-alg"),
            prf_alg=_s(d, "prf-alg"),
            dh_group=_s(d, "dh-group"),
            nat_any=_s(d, "nat-any") == "yes",
            children=children,
            raw=d,
        )

    def child(self, name: str) -> ChildSaInfo | None:
        for c in self.children:
            if c.name == name:
                return c
        return None


def parse_list_sas(output: str) -> list[IkeSaInfo]:
    """Parse ``swanctl --list-sas --raw`` output (one ``list-sa event`` line per IKE_SA)."""
    sas: list[IkeSaInfo] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        label, body = parse_raw_message(line)
        if label != "list-sa event":
            continue
        for name, val in body.items():
            if isinstance(val, dict):
                sas.append(IkeSaInfo.from_raw(name, val))
    return sas


# -- charon's key dumps (log level 4) ---------------------------------------------------

_DUMP_HEAD = re.compile(
    r"\[(?P<grp>IKE|CHD)\] <(?P<sa>[^>]*)> (?P<label>[A-Za-z_ ]+?) => (?P<n>\d+) bytes @"
)
_DUMP_LINE = re.compile(r"\] <[^>]*> +(?P<off>\d+): (?P<hex>.*)$")
_KEY_LABEL = re.compile(r"(secret|SKEYSEED|SKEYID\w*|key)$")


def parse_key_dumps(log: str) -> dict[str, list[str]]:
    """``{label: [hex, ...]}`` for every key-like hex dump charon logged (in order)."""
    out: dict[str, list[str]] = {}
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        m = _DUMP_HEAD.search(lines[i])
        i += 1
        if not m or not _KEY_LABEL.search(m["label"]):
            continue
        need = int(m["n"])
        buf = bytearray()
        while len(buf) < need and i < len(lines):
            lm = _DUMP_LINE.search(lines[i])
            if not lm:
                break
            k = min(16, need - len(buf))
            buf += bytes.fromhex(lm["hex"][: 3 * k - 1])
            i += 1
        if len(buf) == need:
            out.setdefault(m["label"].strip(), []).append(buf.hex())
    return out


# -- the node ----------------------------------------------------------------------------


class PeerNode:
    """What every IKE daemon node offers tests: SAs in one shape, waits, logs.

    Subclasses (:class:`StrongswanNode`, ``piked.PikedNode``, dataclasses with the fields
    below) implement :meth:`list_sas` and :attr:`log_path`.
    """

    name: str
    connections: list[Connection]
    secrets: list[Secret]
    proc: subprocess.Popen[bytes] | None

    def list_sas(self) -> list[IkeSaInfo]:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def add(self, *items: Connection | Secret) -> None:
        """Add connections/secrets to the config (a running charon: :meth:`load_all`)."""
        for it in items:
            if isinstance(it, Connection):
                self.connections.append(it)
            else:
                self.secrets.append(it)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def ike_sa(self, name: str) -> IkeSaInfo | None:
        for sa in self.list_sas():
            if sa.name == name:
                return sa
        return None

    def wait_established(
        self, ike: str, timeout: float = 10.0, *, child: str | None = None
    ) -> IkeSaInfo:
        """Wait until IKE_SA ``ike`` is ESTABLISHED (and ``child`` INSTALLED, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            last = self.list_sas()
            for sa in last:
                if sa.name != ike or sa.state != "ESTABLISHED":
                    continue
                if child is None:
                    return sa
                c = sa.child(child)
                if c is not None and c.state == "INSTALLED":
                    return sa
            if time.monotonic() > deadline:
                states = [(s.name, s.state, [(c.name, c.state) for c in s.children]) for s in last]
                raise TimeoutError(
                    f"{self.name}: {ike} not established in {timeout}s; SAs: {states}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_no_sas(self, timeout: float = 10.0, *, ike: str | None = None) -> None:
        """Wait until no IKE_SA (named ``ike``, if given) is left."""
        deadline = time.monotonic() + timeout
        while True:
            left = [sa for sa in self.list_sas() if ike is None or sa.name == ike]
            if not left:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: SAs still there after {timeout}s: "
                    f"{[(s.name, s.state) for s in left]}\n{self.log_tail()}"
                )
            time.sleep(0.05)


class SwanctlError(RuntimeError):
    pass


@dataclass
class Timing:
    what: str
    seconds: float


@dataclass
class StrongswanNode(PeerNode):
    """charon in ``ns`` with everything private under ``workdir``.

    ``libipsec=True`` loads ``kernel-libipsec`` before ``kernel-netlink`` (ESP in user space
    over TUN, for kernels without ESP); ``libipsec=False`` loads only ``kernel-netlink``
    (use inside the ESP kernel guest).
    """

    ns: Namespace
    workdir: Path
    name: str = "charon"
    libipsec: bool = True
    extra_plugins: Sequence[str] = ()
    log_levels: dict[str, int] = field(default_factory=lambda: {"ike": 2, "knl": 2, "cfg": 2})
    charon_settings: Settings = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    # A strongSwan built from source (tests/peers/build-strongswan6.sh) instead of Debian's:
    # its charon and swanctl, and its pid directory PREFIX/run in place of /run.
    prefix: Path | None = None

    # paths
    @property
    def charon_path(self) -> Path:
        return CHARON if self.prefix is None else self.prefix / "libexec" / "ipsec" / "charon"

    @property
    def swanctl_path(self) -> str:
        return SWANCTL if self.prefix is None else str(self.prefix / "sbin" / "swanctl")

    @property
    def dir(self) -> Path:
        return self.workdir / self.name

    @property
    def conf_path(self) -> Path:
        return self.dir / "strongswan.conf"

    @property
    def swanctl_dir(self) -> Path:
        return self.dir / "swanctl"

    @property
    def vici_path(self) -> Path:
        return self.dir / "charon.vici"

    @property
    def vici_uri(self) -> str:
        return f"unix://{self.vici_path}"

    @property
    def log_path(self) -> Path:
        return self.dir / "charon.log"

    @property
    def stdout_path(self) -> Path:
        return self.dir / "charon.stdout"

    def plugins(self) -> str:
        kernel = "kernel-libipsec kernel-netlink" if self.libipsec else "kernel-netlink"
        extra = " ".join(self.extra_plugins)
        # a source build has OpenSSL do what Debian splits into aes, sha2, gmp... plugins
        base = BASE_PLUGINS if self.prefix is None else BUILT_PLUGINS
        return " ".join(p for p in (base, extra, kernel, TAIL_PLUGINS) if p)

    def strongswan_conf(self) -> str:
        charon: Settings = {
            "load": self.plugins(),
            "filelog": {
                "main": {
                    "path": str(self.log_path),
                    "time_format": "%T",
                    "ike_name": True,
                    "append": False,
                    "flush_line": True,
                    "default": 1,
                    **self.log_levels,
                }
            },
            "syslog": {"daemon": {"default": -1}},
            "plugins": {"vici": {"socket": self.vici_uri}},
        }
        if any(c.aggressive for c in self.connections):
            # charon refuses Aggressive Mode PSK without this switch (the PSK hash is open
            # to offline attack); a connection asking for Aggressive Mode means it
            charon["i_dont_care_about_security_and_use_aggressive_mode_psk"] = True
        charon.update(self.charon_settings)
        conf: Settings = {"charon": charon, "swanctl": {"socket": self.vici_uri}}
        return render_settings(conf) + "\n"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["STRONGSWAN_CONF"] = str(self.conf_path)
        env["SWANCTL_DIR"] = str(self.swanctl_dir)
        return env

    # configuration
    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        for sub in ("x509", "x509ca", "private", "rsa", "ecdsa", "pubkey", "conf.d"):
            (self.swanctl_dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.strongswan_conf())
        (self.swanctl_dir / "swanctl.conf").write_text(
            render_swanctl(self.connections, self.secrets)
        )

    def install_cert(self, path: Path, *, ca: bool = False) -> str:
        """Copy a PEM/DER cert into ``x509/`` (or ``x509ca/``); returns its file name."""
        dest = self.swanctl_dir / ("x509ca" if ca else "x509") / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return path.name

    def install_key(self, path: Path) -> None:
        dest = self.swanctl_dir / "private" / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)

    def start_with(self, cert: Path, key: Path, *cas: Path) -> None:
        """Start with our certificate and key and the CA certificates installed."""
        self.write_config()
        for ca in cas:
            self.install_cert(ca, ca=True)
        self.install_cert(cert)
        self.install_key(key)
        self.start()

    # lifecycle
    def start(self, timeout: float = 10.0) -> None:
        """Write config, start charon in its private /run, wait for vici, load config."""
        self.write_config()
        if self.vici_path.exists():
            self.vici_path.unlink()
        run = self.dir / "run"
        piddir = "/run" if self.prefix is None else self.prefix / "run"
        script = f"mount --bind {run} {piddir} && exec {self.charon_path}"
        t0 = time.monotonic()
        with self.stdout_path.open("wb") as out:
            self.proc = self.ns.popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                stdout=out,
                env=self.env(),
            )
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise SwanctlError(
                    f"charon {self.name} exited {self.proc.returncode}:\n{self.diagnostics()}"
                )
            if self.vici_path.exists() and self.swanctl("--stats", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SwanctlError(f"charon {self.name}: no vici socket\n{self.diagnostics()}")
            time.sleep(0.02)
        self.timings.append(Timing("start", time.monotonic() - t0))
        self.load_all()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_pid(self.proc.pid, grace=5.0)
            self.proc.wait(timeout=5)

    def __enter__(self) -> StrongswanNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # swanctl
    def swanctl(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.swanctl_path, *args, "--uri", self.vici_uri]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise SwanctlError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def load_all(self) -> str:
        """(Re)write swanctl.conf and ``swanctl --load-all``; returns its output."""
        (self.swanctl_dir / "swanctl.conf").write_text(
            render_swanctl(self.connections, self.secrets)
        )
        return self.swanctl("--load-all", "--noprompt").stdout

    def initiate(
        self, child: str, *, ike: str | None = None, timeout: int = 10, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``swanctl --initiate --child CHILD`` (blocks until established or failed)."""
        args = ["--initiate", "--child", child, "--timeout", str(timeout)]
        if ike:
            args += ["--ike", ike]
        t0 = time.monotonic()
        proc = self.swanctl(*args, check=check, timeout=timeout + 5)
        self.timings.append(Timing(f"initiate {child}", time.monotonic() - t0))
        return proc

    def initiate_ike(self, ike: str, *, timeout: int = 10) -> subprocess.CompletedProcess[str]:
        """Initiate only the IKE_SA of connection ``ike`` (no CHILD_SA)."""
        t0 = time.monotonic()
        proc = self.swanctl("--initiate", "--ike", ike, "--timeout", str(timeout))
        self.timings.append(Timing(f"initiate ike {ike}", time.monotonic() - t0))
        return proc

    def terminate(
        self, ike: str, *, timeout: int = 10, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.swanctl("--terminate", "--ike", ike, "--timeout", str(timeout), check=check)

    def terminate_child(self, child: str, *, timeout: int = 10) -> None:
        self.swanctl("--terminate", "--child", child, "--timeout", str(timeout))

    def list_sas(self) -> list[IkeSaInfo]:
        return parse_list_sas(self.swanctl("--list-sas", "--raw").stdout)

    # logs
    def loaded_plugins(self) -> list[str]:
        """Plugins charon reports as loaded (a missing .so is skipped silently by charon)."""
        for line in self.log_text().splitlines():
            if "loaded plugins:" in line:
                return line.split("loaded plugins:", 1)[1].split()
        return []

    def key_dumps(self) -> dict[str, list[str]]:
        """Keys charon logged (needs ``log_levels`` ike/chd at 4): see parse_key_dumps."""
        return parse_key_dumps(self.log_text())

    def diagnostics(self) -> str:
        out = ""
        if self.stdout_path.exists():
            out += self.stdout_path.read_text(errors="replace")[-4000:]
        return out + "\n" + self.log_tail()


__all__ = [
    "Child",
    "ChildSaInfo",
    "Connection",
    "IkeSaInfo",
    "NetnsError",
    "PeerNode",
    "Secret",
    "StrongswanNode",
    "SwanctlError",
    "charon_available",
    "kernel_has_esp",
    "parse_key_dumps",
    "parse_list_sas",
    "parse_raw_message",
    "render_swanctl",
]
