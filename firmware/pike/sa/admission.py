"""Who may make us hold state before authentication: one set of rules for both versions.

A branch gateway answers UDP 500/4500 on the open internet, so a first message (IKEv2
IKE_SA_INIT, IKEv1 MM1/AM1) must cost the sender more than it costs us. The engines ask
``Admission.admit`` before they create a half-open SA and report each one's end
(``closed``); the counts are kept as they change, never by a scan over the SAs.

- ``cookie_threshold`` half-open SAs in all: IKEv2 asks for a COOKIE first (RFC 7296
  §2.6), so spoofed sources make us hold nothing.
- ``block_threshold`` per source address (strongSwan's name and default, 5): a source
  that proved it receives at its address (a valid COOKIE; in IKEv1 it answered our
  first message) and holds that many half-open SAs is refused. Unproven SAs from one
  address never block it: IKEv2 then asks that address for a COOKIE, IKEv1 replaces
  the oldest unproven one, so spoofed first messages carrying a real peer's address
  cannot lock that peer out.
- ``half_open_max`` half-open SAs, ``ike_sa_max`` IKE SAs (per version) and
  ``init_rate`` new half-open SAs per second (a token bucket) in all: refused above.
  IKEv1 first messages from an address a connection names as its peer (a single host)
  pass ``half_open_max``: without a COOKIE, spoofed MM1s from many addresses would
  otherwise fill it and lock every configured peer out; ``block_threshold`` still bounds
  what each such address holds.

Each refusal is a counted drop by reason (``pike_ike_invalid_messages_total{reason}``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pike.policy.config import DaemonConfig
from pike.wire.errors import MalformedMessage


class Verdict(enum.Enum):
    ADMIT = "admit"
    COOKIE = "cookie"  # IKEv2: answer with a COOKIE, keep nothing
    REPLACE = "replace"  # IKEv1: admit after ending ``Admission.oldest_unproven``


_ADMIT = Verdict.ADMIT  # per handshake: an Enum member lookup is slow on 3.11


@dataclass
class Admission:
    half_open: int = 0
    # address -> its half-open SAs, oldest first: unique id -> proven
    _sources: dict[str, dict[int, bool]] = field(default_factory=dict)
    _proven: dict[str, int] = field(default_factory=dict)  # address -> proven ones (> 0)
    _owner: dict[int, str] = field(default_factory=dict)  # unique id -> address
    _tokens: float = 0.0
    _refilled: float | None = None

    def admit(
        self,
        daemon: DaemonConfig,
        addr: str,
        now: float,
        *,
        cookie: bool | None,
        ike_sas: int,
        configured: bool = False,
    ) -> Verdict:
        """May ``addr`` open one more half-open SA? ``cookie``: the request carried a valid
        COOKIE (True), none or a wrong one (False), or the version has none (None: IKEv1).
        ``configured``: ``addr`` is a peer a connection names (IKEv1: past half_open_max).
        Raises MalformedMessage (a counted drop, by reason) when refused."""
        sas = self._sources.get(addr)
        proven = unproven = 0
        if sas is not None:
            proven = self._proven.get(addr, 0)
            unproven = len(sas) - proven
        if proven >= daemon.block_threshold:
            raise MalformedMessage("half_open_blocked", f"{addr}: {proven} half-open IKE SAs")
        verdict = _ADMIT
        if cookie is False:
            if self.half_open >= daemon.cookie_threshold or unproven >= daemon.block_threshold:
                return Verdict.COOKIE  # keep nothing until it shows it receives there
        elif cookie is None and proven + unproven >= daemon.block_threshold:
            verdict = Verdict.REPLACE  # proven < block_threshold: an unproven one goes
        spare = cookie is None and configured  # IKEv1, a named peer: see the module doc
        if verdict is _ADMIT and self.half_open >= daemon.half_open_max and not spare:
            raise MalformedMessage("half_open_limit", f"{self.half_open} half-open IKE SAs")
        if ike_sas >= daemon.ike_sa_max:
            raise MalformedMessage("ike_sa_limit", f"{ike_sas} IKE SAs")
        if daemon.init_rate:
            self._refill(daemon.init_rate, now)
            if self._tokens < 1.0:
                raise MalformedMessage("init_rate_limit", f"over {daemon.init_rate}/s")
            self._tokens -= 1.0
        return verdict

    def _refill(self, rate: int, now: float) -> None:
        if self._refilled is None:
            self._tokens = float(rate)  # a burst of one second's worth
        else:
            self._tokens = min(float(rate), self._tokens + (now - self._refilled) * rate)
        self._refilled = now

    def oldest_unproven(self, addr: str) -> int | None:
        sas = self._sources.get(addr)
        if sas is None:
            return None
        return next((uid for uid, proven in sas.items() if not proven), None)

    def opened(self, addr: str, unique_id: int, proven: bool) -> None:
        sas = self._sources.get(addr)
        if sas is None:
            self._sources[addr] = {unique_id: proven}
        else:
            sas[unique_id] = proven
        if proven:
            self._proven[addr] = self._proven.get(addr, 0) + 1
        self._owner[unique_id] = addr
        self.half_open += 1

    def prove(self, unique_id: int) -> None:
        """The peer of half-open SA ``unique_id`` answered at its address."""
        addr = self._owner.get(unique_id)
        sas = self._sources.get(addr) if addr is not None else None
        if addr is not None and sas is not None and not sas[unique_id]:
            sas[unique_id] = True
            self._proven[addr] = self._proven.get(addr, 0) + 1

    def closed(self, unique_id: int) -> None:
        """Half-open SA ``unique_id`` authenticated or ended (idempotent)."""
        addr = self._owner.pop(unique_id, None)
        if addr is None:
            return
        sas = self._sources[addr]
        if sas.pop(unique_id):
            left = self._proven[addr] - 1
            if left:
                self._proven[addr] = left
            else:
                del self._proven[addr]
        if not sas:
            del self._sources[addr]
        self.half_open -= 1


def check_size(daemon: DaemonConfig, data: bytes) -> None:
    """A datagram larger than ``max_packet`` is dropped before it is decoded."""
    if len(data) > daemon.max_packet:
        raise MalformedMessage("message_too_large", f"{len(data)} bytes > {daemon.max_packet}")
