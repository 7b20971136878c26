"""Two IKEv2 engines wired back to back: fixed randomness, a fake clock, a lossy wire.

The helpers move SendDatagram actions from one engine to the other and keep every other
action for the test to inspect, so each step of an exchange can be asserted exactly.
A node answers the engine's SignRequest actions at once, as the runtime does from its
executor (``auto_sign``); with ``auto_sign=False`` they wait in ``sign_requests`` for the
test to answer with ``sign``/``engine.sign_done``.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from typing import TypeVar

from lib.pikeconf import PikeConf, psk_tunnel, rendered
from pike.hsm.signer import SignerError
from pike.ikev2.engine import Ikev2Engine
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.sa.actions import Action, SendDatagram, SignRequest
from pike.sa.credentials import CredentialError
from pike.sa.ports import SpiSource
from pike.sa.revocation import RevocationCache

PSK = "test-only-psk-7f3a9c"
ActionT = TypeVar("ActionT")


def _list(items: str) -> list[str]:
    """A TOML array's items as the callers write them (``'"a", "b"'``)."""
    values: list[str] = tomllib.loads(f"v = [{items}]")["v"]
    return values


def psk_conf(
    local: str,
    remote: str,
    local_id: str,
    remote_id: str,
    *,
    proposals: str = '"aes128gcm16-prfsha256-x25519"',
    esp: str = '"aes128gcm16"',
    local_ts: str = '"10.1.0.0/24"',
    remote_ts: str = '"10.2.0.0/24"',
    start: str = "none",
    mode: str = "tunnel",
    psk: str = PSK,
    extra_conn: str = "",
    extra_daemon: str = "",
    extra_child: str = "",
    version: int = 2,
) -> PikeConf:
    """PSK connection ``gw`` with child ``net``; list arguments are TOML array items, the
    ``extra_*`` ones TOML lines added to that table."""
    return psk_tunnel(
        local=local,
        remote=remote,
        local_id=local_id,
        remote_id=remote_id,
        psk=psk,
        version=version,
        proposals=_list(proposals),
        esp_proposals=_list(esp),
        local_ts=_list(local_ts),
        remote_ts=_list(remote_ts),
        start_action=start,
        mode=mode,
        name="gw",
        child_name="net",
        secret_name="gw",
        daemon={"control_socket": "/tmp/unused.sock"},
        daemon_raw=extra_daemon,
        conn_raw=extra_conn,
        child_raw=extra_child,
    )


conf = rendered(psk_conf)  # the same, as TOML text


def engine(text: str, seed: int, esp: bool = True, spis: SpiSource | None = None) -> Ikev2Engine:
    rng = random.Random(seed)
    caps = KernelCaps(True) if esp else KernelCaps(False, ("ESP (CONFIG_INET_ESP)",))
    return Ikev2Engine(load_config_text(text), random=rng.randbytes, kernel_caps=caps, spis=spis)


@dataclass
class Node:
    engine: Ikev2Engine
    events: list[Action] = field(default_factory=list)
    outbox: list[SendDatagram] = field(default_factory=list)
    auto_sign: bool = True
    sign_requests: list[SignRequest] = field(default_factory=list)  # unanswered
    signed: list[SignRequest] = field(default_factory=list)  # answered, in order
    now: float = 0.0  # the time signatures are answered at (set by deliver/transfer)

    def drain(self) -> list[SendDatagram]:
        """Move new actions into ``events``/``outbox``; return the new datagrams."""
        new: list[SendDatagram] = []
        while (a := self.engine.next_action()) is not None:
            if isinstance(a, SendDatagram):
                new.append(a)
                self.outbox.append(a)
            elif isinstance(a, SignRequest):
                self.sign_requests.append(a)
                if self.auto_sign:
                    self.sign(a, self.now)
            else:
                self.events.append(a)
        return new

    def sign(self, req: SignRequest, now: float, result: bytes | Exception | None = None) -> None:
        """Answer ``req`` (with the store's signature unless ``result`` is given), as the
        runtime does once its executor is done; new actions wait for the next drain."""
        self.sign_requests.remove(req)
        self.signed.append(req)
        if result is None:
            try:
                result = self.engine.ctx.credentials.sign(req.key, req.spki, req.data, req.scheme)
            except (SignerError, CredentialError) as exc:
                result = exc
        self.engine.sign_done(req.ref, result, now)

    def of(self, cls: type[ActionT]) -> list[ActionT]:
        return [e for e in self.events if isinstance(e, cls)]

    def sa(self):
        sas = self.engine.list_sas()
        assert len(sas) == 1, sas
        return sas[0]


def make_pair(
    a_text: str | None = None, b_text: str | None = None, *, a_esp: bool = True, b_esp: bool = True
) -> tuple[Node, Node]:
    a_text = a_text or conf("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
    b_text = b_text or conf(
        "192.0.2.2",
        "192.0.2.1",
        "hq.example.net",
        "branch.example.net",
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
    )
    return Node(engine(a_text, 1, a_esp)), Node(engine(b_text, 2, b_esp))


def deliver(dgrams: list[SendDatagram], to: Node, now: float) -> list[SendDatagram]:
    to.now = now
    for d in dgrams:
        to.engine.receive_datagram(d.data, d.src, d.dst, now)
    return to.drain()


def kernel_reports(
    node: Node, now: float, *, packets: int = 0, last_use: float | None = None
) -> None:
    """What piked's runtime does before each timer (``DataPlane.report_esp``): the
    kernel's counters of the inbound SAs the engine's DPD decisions want, here the same
    ``packets`` and ``last_use`` (engine clock) for each."""
    for spec in node.engine.esp_wanted(now):
        node.engine.esp_seen(spec.spi, packets, last_use, now)


def transfer(
    a: Node,
    b: Node,
    now: float = 0.0,
    rounds: int = 20,
    in_flight: list[SendDatagram] | None = None,
) -> int:
    """Ping-pong until both sides are quiet; returns how many datagrams crossed.

    ``in_flight`` are datagrams from ``a`` already drained by the test, still to deliver."""
    a.now = b.now = now
    pending = (in_flight or []) + a.drain()
    pending_b = b.drain()
    crossed = 0
    for _ in range(rounds):
        if not pending and not pending_b:
            break
        crossed += len(pending) + len(pending_b)
        got_b = deliver(pending, b, now)
        got_a = deliver(pending_b, a, now)
        pending, pending_b = got_a, got_b
    return crossed


def send_informational(node: Node, now: float) -> SendDatagram:
    """An empty INFORMATIONAL request (a DPD probe) from ``node``'s only IKE SA."""
    from pike.ikev2.tasks.ike_delete import Informational

    (sa,) = node.engine.sas.values()
    sa.tasks.queue(Informational(sa, True))
    sa.tasks.initiate(now)
    (probe,) = node.drain()
    return probe


def revocation_cache(node: Node) -> RevocationCache:
    return node.engine.ctx.credentials.revocation


def installed(node: Node) -> list[str]:
    """The INSTALLED children of ``node``'s one IKE SA, which must be ESTABLISHED."""
    (sa,) = node.engine.list_sas()
    assert sa.state == "ESTABLISHED"
    return sorted(c.name for c in sa.children if c.state == "INSTALLED")


def nothing_in_flight(node: Node) -> bool:
    """No request of ours awaits an answer (rekey/DPD timers may still be armed)."""
    return all(sa.tasks.deadline is None for sa in node.engine.sas.values())


def until_restarted(node: Node) -> tuple[float, list[SendDatagram]]:
    """Run ``node``'s timers, nothing answering, until its only IKE SA was found dead and a
    new one started (dpd_action = restart); the time and the new SA's first datagrams."""
    (old,) = node.engine.list_sas()
    while True:
        t = node.engine.get_timer()
        assert t is not None and t < 1000.0, node.engine.list_sas()
        node.engine.handle_timer(t)
        pending = node.drain()
        if any(sa.spi_i != old.spi_i for sa in node.engine.list_sas()):
            return t, pending
