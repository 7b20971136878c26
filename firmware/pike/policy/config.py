"""The configuration model: what ``pike.toml`` means, after validation.

The loader (``pike.policy.loader``) builds these from TOML and reports errors with file,
key and line; engines and the daemon only ever see these validated values.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from pike.crypto.proposal import ProposalSpec
from pike.frozen import frozen
from pike.policy.ipsec import NO_MARK, Lifetime, Mark, Mode, Offload
from pike.policy.paths import DEFAULT_SOCKET
from pike.policy.ts import TrafficSelector

StartAction = Literal["none", "start", "trap"]
DpdAction = Literal["clear", "trap", "restart"]
CloseAction = Literal["none", "trap", "start"]
AuthKind = Literal["psk", "pubkey"]


def _by_init(self: object) -> tuple[type, tuple[object, ...]]:
    """``__reduce__`` of the per-connection classes: pickled as a call of the class, which
    loads far faster than the frozen dataclass's field-by-field ``__setstate__`` (the
    config cache, ``pike.policy.config_cache``, reads 10 000 connections at start)."""
    return type(self), tuple(getattr(self, name) for name in self.__match_args__)  # type: ignore[attr-defined]


@frozen
class Identity:
    """An IKE identity (RFC 7296 §3.5): its ID type and the bytes that go on the wire."""

    id_type: int
    data: bytes
    text: str  # as configured, for logs and matching
    __reduce__ = _by_init

    def __str__(self) -> str:
        return self.text


@frozen
class AuthConfig:
    auth: AuthKind
    id: Identity | None = None  # None: the local/remote address is used
    certs: tuple[str, ...] = ()  # absolute paths (the loader resolves relative ones)
    key: str | None = None  # a PEM file path, or a pkcs11: URI once tokens land
    cacerts: tuple[str, ...] = ()
    rsa_pss: bool = False  # sign with RSASSA-PSS rather than PKCS#1 v1.5 (RFC 7427)
    # remote only: strongSwan's revocation policy, and where to look beside the
    # certificate's own CRL distribution points and OCSP responders (pike.sa.revocation)
    revocation: Literal["strict", "ifuri", "relaxed"] = "relaxed"
    crls: tuple[str, ...] = ()  # CRL files (DER or PEM)
    crl_uris: tuple[str, ...] = ()  # http:// CRLs fetched beside the CDPs
    ocsp_uris: tuple[str, ...] = ()  # http:// OCSP responders used instead of the AIA's
    __reduce__ = _by_init


@frozen
class EnrollConfig:
    """``[enroll]``: where ``pikectl keys renew`` (the daily pike-renew.timer) renews our
    certificate over EST (RFC 7030) before it expires."""

    url: str  # https:// EST server (and label)
    ca: str  # PEM: the CA(s) of the EST server's TLS certificate
    key: str  # the key's PEM file or pkcs11: URI
    cert: str  # the certificate renewed and replaced (the one local.certs names)
    user: str | None = None  # HTTP basic auth
    password_file: str | None = None
    within_days: float = 45.0
    import_cert: bool = False  # also store the new certificate on the token


@frozen
class AuthorityConfig:
    """``[authorities.NAME]``: where revocation of what one CA issued is looked up, for
    every connection (strongSwan's ``authorities`` section)."""

    name: str
    cacert: str  # the CA certificate file
    crl_uris: tuple[str, ...] = ()  # http:// CRLs of this CA, beside each certificate's CDPs
    ocsp_uris: tuple[str, ...] = ()  # http:// OCSP responders for its certificates


@frozen
class ChildConfig:
    name: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    esp_proposals: tuple[ProposalSpec, ...]
    mode: Mode = "tunnel"
    start_action: StartAction = "none"
    close_action: CloseAction = "none"  # when the peer deletes it (strongSwan's meaning)
    rekey_time: int = 3600  # strongSwan's defaults
    life_time: int = 3960
    rand_time: int = 360
    # Volume limits (strongSwan's meaning; 0 = none): the kernel's soft limit at rekey_*
    # minus up to rand_* starts a rekey, its hard limit at life_* ends the SA.
    rekey_bytes: int = 0
    life_bytes: int = 0
    rand_bytes: int = 0
    rekey_packets: int = 0
    life_packets: int = 0
    rand_packets: int = 0
    hw_offload: Offload = "no"
    replay_window: int = 32
    # Route-based tunnels: SAs and policies bound to an XFRM interface (if_id) or to a VTI
    # (marks), so routes, not selectors, decide what enters the tunnel.
    if_id_in: int = 0
    if_id_out: int = 0
    mark_in: Mark = NO_MARK
    mark_out: Mark = NO_MARK
    interface: str = ""  # created by piked: an XFRM interface (if_id) or a VTI (marks)
    updown: str = ""  # script run on child up/down with strongSwan's PLUTO_* environment
    # pike.sa.child_sa keeps the SAs' kernel limits here when they have no volume jitter
    # (the default): one per child config, made on first use (not a config value)
    kernel_lifetime: Lifetime | None = field(default=None, init=False, repr=False, compare=False)
    __reduce__ = _by_init


@frozen
class ConnectionConfig:
    name: str
    version: Literal[1, 2]
    local_addrs: tuple[str, ...]
    remote_addrs: tuple[str, ...]
    proposals: tuple[ProposalSpec, ...]
    local: AuthConfig
    remote: AuthConfig
    children: tuple[ChildConfig, ...]
    local_port: int = 500
    remote_port: int = 500
    encap: bool = False
    fragmentation: bool = True  # RFC 7383, announced and used when the peer supports it
    mobike: bool = True  # RFC 4555 (IKEv2): announced; the IKE SA follows our address changes
    dpd_delay: int = 0
    dpd_timeout: int = 0  # IKEv1 only (strongSwan's meaning): dead after this long unheard
    dpd_action: DpdAction = "clear"
    keyingtries: int = 1
    rekey_time: int = 14400
    reauth_time: int = 0
    aggressive: bool = False
    # RFC 8784 post-quantum preshared key: the PPK_ID we use (a [secrets.ppk*] entry with
    # that id holds the key), and whether an IKE SA without it is refused
    ppk_id: str | None = None
    ppk_required: bool = False
    # Set from the [connections.X] table's TOML line for diagnostics.
    source_line: int | None = field(default=None, compare=False)
    __reduce__ = _by_init

    @property
    def isakmp_lifetime(self) -> int:
        """IKEv1 has no phase-1 rekey: the ISAKMP SA lives until reauth_time, else
        rekey_time (strongSwan's choice; 0 when neither is set)."""
        return self.reauth_time or self.rekey_time

    def child(self, name: str) -> ChildConfig | None:
        for c in self.children:
            if c.name == name:
                return c
        return None


@frozen
class Secret:
    name: str
    ids: tuple[str, ...]
    secret: bytes = field(repr=False)  # never in logs or exceptions
    # The file it was read from (the config itself when inline): piked warns when others
    # may read it (pike.daemon.secret_files).
    file: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"Secret({self.name}, ids={list(self.ids)})"

    @property
    def is_ppk(self) -> bool:
        """A post-quantum preshared key (RFC 8784), named like strongSwan's ``ppk<suffix>``
        sections: never used as an IKE PSK."""
        return self.name.startswith("ppk")


@frozen
class DaemonConfig:
    control_socket: str = DEFAULT_SOCKET
    metrics_listen: str = ""  # "HOST:PORT" of the Prometheus endpoint; "" disables it
    save_keys_dir: str = ""  # Wireshark key tables (debugging only); "" disables it
    ike_port: int = 500
    natt_port: int = 4500
    retransmit_timeout: float = 4.0  # strongSwan's defaults
    retransmit_base: float = 1.8
    retransmit_tries: int = 5
    fragment_size: int = 1280  # largest IKE datagram before fragmenting (strongSwan's)
    max_packet: int = 10000  # largest IKE message taken, whole or reassembled (strongSwan's)
    # Before authentication (pike.sa.admission): strongSwan's names and defaults where it
    # has them.
    cookie_threshold: int = 10  # half-open IKE SAs in all before IKEv2 asks for COOKIEs
    block_threshold: int = 5  # half-open IKE SAs per proven source address
    half_open_max: int = 1000  # half-open IKE SAs in all (per daemon)
    ike_sa_max: int = 20000  # IKE SAs per IKE version (~10 KiB each: MemoryMax 256M)
    init_rate: int = 0  # new half-open IKE SAs per second (0: no limit, as strongSwan)
    keepalive: float = 20.0  # NAT-T keepalive interval while behind a NAT (strongSwan's)
    log_level: str = "info"  # debug|info|warning|error; piked --log-level overrides it
    # pike-keyd (pike.keyd): "spawn" (piked starts it), "off" (keys in piked), or the
    # Unix socket of a helper its own unit runs
    key_helper: str = "spawn"

    def retransmit_span(self) -> float:
        """Seconds from a request's first send until it is given up (165.06 by default)."""
        return sum(
            self.retransmit_timeout * self.retransmit_base**n
            for n in range(self.retransmit_tries + 1)
        )


@frozen
class Config:
    daemon: DaemonConfig
    connections: dict[str, ConnectionConfig]
    secrets: tuple[Secret, ...] = ()
    path: str = ""
    enroll: EnrollConfig | None = None
    authorities: tuple[AuthorityConfig, ...] = ()
    # pike.sa.conn_index keeps its lookups here, built on first use (not a config value)
    index: object = field(default=None, init=False, repr=False, compare=False)
    _psk_index: object = field(default=None, init=False, repr=False, compare=False)

    def psk_for(self, local: str, remote: str) -> bytes | None:
        """The shared key for a pair of identities, strongSwan-style best match.

        A secret whose ids include both identities wins over one that names only one;
        a secret with no ids matches any pair.
        """
        by_id, no_ids, _ = self._secrets_by_id()
        mine, theirs = by_id.get(local), by_id.get(remote)
        if not mine and not theirs:  # only secrets without ids match: the first of them
            return self.secrets[no_ids[0]].secret if no_ids else None
        positions = set(mine or ()) | set(theirs or ()) | set(no_ids)
        best: tuple[int, int] | None = None  # (score, -position): ties go to the first
        for pos in positions:
            ids = self.secrets[pos].ids
            score = (2 if local in ids else 0) + (2 if remote in ids else 0) if ids else 1
            if best is None or (score, -pos) > best:
                best = (score, -pos)
        return None if best is None else self.secrets[-best[1]].secret

    @property
    def has_ppk(self) -> bool:
        """Any ``[secrets.ppk*]``: asked by every IKE_SA_INIT, so from the index, not a
        walk over all secrets."""
        return self._secrets_by_id()[2]

    def ppk_for(self, ppk_id: str) -> bytes | None:
        """The post-quantum preshared key whose ``[secrets.ppk*]`` entry has ``ppk_id``."""
        for s in self.secrets:
            if s.is_ppk and ppk_id in s.ids:
                return s.secret
        return None

    def _secrets_by_id(self) -> tuple[dict[str, list[int]], list[int], bool]:
        """Secret positions by id, those with no ids, and whether there are PPKs; built on
        first use so that a handshake costs the same with 10 000 secrets as with one."""
        if self._psk_index is None:
            by_id: dict[str, list[int]] = {}
            no_ids = []
            has_ppk = False
            for pos, s in enumerate(self.secrets):
                if s.is_ppk:
                    has_ppk = True
                    continue
                for i in dict.fromkeys(s.ids):
                    by_id.setdefault(i, []).append(pos)
                if not s.ids:
                    no_ids.append(pos)
            index = (by_id, no_ids, has_ppk)
            object.__setattr__(self, "_psk_index", index)  # a cache, not a value
        return self._psk_index  # type: ignore[return-value]
