"""Fuzz targets: each takes a ``random.Random`` and runs one input.

An exception out of a target is a finding; what a target may raise by contract (a codec's
MalformedMessage, the loader's ConfigError) is caught inside it. The engines may raise
nothing at all: every input must become a drop, a notify or a state change.
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ikev1.v1pair import make_pair as v1_make_pair
from ikev2.pair import Node, conf, deliver, make_pair, transfer
from ikev2.reseal import AuthRequest, auth_request
from pike.ikev1 import quick_mode
from pike.ikev1.engine import Ikev1Engine
from pike.ikev1.isakmp_sa import IsakmpSa
from pike.ikev1.keys import qm_hash1
from pike.policy.loader import load_config_text
from pike.policy.toml_table import ConfigError
from pike.sa.actions import SendDatagram
from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.isakmp import decode_v1, encode_chain
from pike.wire.isakmp_constants import ExchangeV1
from pike.wire.isakmp_payloads import V1Hash, V1Payload
from pike.wire.payloads import Message, Payload

from .mutate import mutate_bytes, mutate_list, mutate_toml

Target = Callable[[random.Random], bool]  # False: the input was not sent (unencodable)

# What encoding a mutated value may raise in the harness (not a finding: nothing was sent).
UNENCODABLE = (EncodeError, ValueError, OverflowError, TypeError, AttributeError, struct.error)

V1_KW = {"proposals": '"aes128-sha256-ecp256"', "esp": '"aes128-sha256-ecp256"'}
V1_AGGR = {**V1_KW, "extra_conn": "aggressive = true"}


def _recorded_v2() -> list[SendDatagram]:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    a.engine.terminate("gw", 1.0)
    transfer(a, b, 1.0)
    return a.outbox + b.outbox


def _recorded_v1(kw: dict[str, str]) -> list[SendDatagram]:
    a, b = v1_make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.engine.terminate("gw", 1.0)
    transfer(a, b, 1.0)
    return a.outbox + b.outbox


@dataclass
class Corpus:
    v2: list[SendDatagram] = field(default_factory=_recorded_v2)
    v1: list[SendDatagram] = field(
        default_factory=lambda: _recorded_v1(V1_KW) + _recorded_v1(V1_AGGR)
    )


_CORPUS: Corpus | None = None


def corpus() -> Corpus:
    global _CORPUS
    if _CORPUS is None:
        _CORPUS = Corpus()
    return _CORPUS


# -- the codecs ------------------------------------------------------------------------------


def codec(rng: random.Random) -> bool:
    c = corpus()
    d = rng.choice(c.v2 + c.v1)
    data = mutate_bytes(rng, d.data)
    with contextlib.suppress(MalformedMessage):
        decode_message(data)
    with contextlib.suppress(MalformedMessage):
        decode_v1(data)
    return True


# -- IKEv2: IKE_SA_INIT to a long-lived responder ------------------------------------------


class V2Init:
    """Mutated IKE_SA_INIT requests (bytes or payloads) to one responder whose clock moves
    a second per input, so half-open SAs come and go (cookies, limits, timeouts)."""

    def __init__(self) -> None:
        self.node: Node | None = None
        self.now = 0.0
        self.inputs = 0
        a, _ = make_pair()
        a.engine.initiate("gw", 0.0)
        (self.init,) = a.drain()
        self.msg = decode_message(self.init.data)

    def __call__(self, rng: random.Random) -> bool:
        if self.node is None or self.inputs % 500 == 0:
            text = conf(  # no COOKIEs: each input reaches IkeInit and the other tasks
                "192.0.2.2",
                "%any",
                "hq.example.net",
                "branch.example.net",
                extra_daemon="cookie_threshold = 1000000",
            )
            _, self.node = make_pair(None, text)
        self.inputs += 1
        self.now += 1.0
        if rng.random() < 0.5:
            data = mutate_bytes(rng, self.init.data)
        else:
            payloads = mutate_list(rng, list(self.msg.payloads), list(self.msg.payloads))
            msg = Message(
                self.msg.spi_i,
                self.msg.spi_r,
                self.msg.exchange,
                self.msg.message_id,
                True,
                False,
                payloads,
            )
            try:
                data = encode_message(msg)
            except UNENCODABLE:
                return False  # not encodable: no datagram to send
        # Many sources (per-address limits would otherwise answer most with a COOKIE).
        src = (
            f"198.51.100.{rng.randrange(1, 255)}",
            rng.choice((500, 4500, 1024 + rng.randrange(3))),
        )
        eng = self.node.engine
        eng.receive_datagram(data, src, self.init.dst, self.now)
        eng.handle_timer(self.now)
        self.node.drain()
        return True


# -- IKEv2: IKE_AUTH plaintext, re-sealed with the real keys -------------------------------


class V2Auth:
    """The initiator's IKE_AUTH with its plaintext payloads changed and sealed again, so
    every input reaches the responder's tasks (IkeAuth, ChildCreate, certificates, TS)."""

    def __init__(self) -> None:
        self.req: AuthRequest | None = None
        self.pool: list[Payload] = []

    def _fresh(self) -> AuthRequest:
        req = auth_request()
        self.pool = list(req.message.payloads)
        return req

    def __call__(self, rng: random.Random) -> bool:
        req = self.req = self._fresh() if self.req is None else self.req
        payloads = mutate_list(rng, list(req.message.payloads), self.pool)
        try:
            data = req.seal(payloads)
        except UNENCODABLE:
            return False
        answers = req.send(data)
        # The answer goes back to the initiator too (it checks what it receives).
        deliver(answers, req.initiator, 0.0)
        (bsa,) = req.responder.engine.sas.values() or (None,)
        if bsa is None or bsa.tasks.mid_in != 1:
            self.req = None  # consumed (answered, failed or established): a new pair
        return True


class V2AuthResponse:
    """The responder's IKE_AUTH response, changed and sealed again, to the initiator."""

    def __call__(self, rng: random.Random) -> bool:
        req = auth_request()
        (resp,) = deliver([req.datagram], req.responder, 0.0)
        (bsa,) = req.responder.engine.sas.values()
        asa = req.sealer
        assert asa.cipher_in is not None and bsa.cipher_out is not None
        plain = decrypt_message(resp.data, decode_message(resp.data), asa.cipher_in)
        payloads = mutate_list(rng, list(plain.payloads), list(plain.payloads))
        msg = Message(
            plain.spi_i, plain.spi_r, plain.exchange, plain.message_id, False, True, payloads, True
        )
        try:
            data = encode_message(msg, bsa.cipher_out)
        except UNENCODABLE:
            return False
        req.initiator.engine.receive_datagram(data, resp.src, resp.dst, 0.0)
        req.initiator.engine.handle_timer(40.0)
        req.initiator.drain()
        return True


# -- IKEv1: messages of recorded exchanges, at every stage ---------------------------------


def v1_clear(rng: random.Random) -> bool:
    kw = rng.choice((V1_KW, V1_AGGR))
    a, b = v1_make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0, rounds=rng.randrange(7))
    d = rng.choice(corpus().v1)
    bad = mutate_bytes(rng, d.data)
    for node in (a, b):
        node.engine.receive_datagram(bad, d.src, d.dst, 0.5)
        node.engine.handle_timer(0.5)
        node.drain()
    return True


# -- IKEv1 Quick Mode, sealed with the real keys and a valid HASH(1) ------------------------


class V1Quick:
    """Quick Mode first messages with changed payloads, HASH(1) computed over them with
    SKEYID_a and sealed with the phase-1 keys: they reach the responder's QM code."""

    def __init__(self) -> None:
        self.pair: tuple[Node, Node] | None = None
        self.rest: list[V1Payload] = []
        self.uses = 0

    def _fresh(self) -> tuple[Node, Node]:
        captured: list[list[V1Payload]] = []
        real = quick_mode._seal

        def spy(sa: IsakmpSa, mid: int, hash_of_rest: bytes, rest: list[V1Payload]) -> bytes:
            captured.append(list(rest))
            return real(sa, mid, hash_of_rest, rest)

        quick_mode._seal = spy
        try:
            a, b = v1_make_pair(V1_KW, V1_KW)
            a.engine.initiate("gw", 0.0, "net")
            transfer(a, b, 0.0)
        finally:
            quick_mode._seal = real
        self.rest = captured[0]
        self.uses = 0
        return a, b

    def __call__(self, rng: random.Random) -> bool:
        if self.pair is None or self.uses >= 50:
            self.pair = self._fresh()
        self.uses += 1
        a, b = self.pair
        assert isinstance(a.engine, Ikev1Engine)
        (asa,) = a.engine.table.all()
        assert asa.prf is not None and asa.keys is not None
        rest = mutate_list(rng, self.rest, self.rest)
        mid = asa.message_id()
        try:
            _, rest_b = encode_chain(rest)
            h = qm_hash1(asa.prf, asa.keys.skeyid_a, mid, rest_b)
            data = asa.encode(ExchangeV1.QUICK, mid, [V1Hash(h), *rest])
        except UNENCODABLE:
            return False
        b.engine.receive_datagram(data, asa.local, asa.remote, 1.0)
        answers = b.drain()
        for d in answers:
            a.engine.receive_datagram(d.data, d.src, d.dst, 1.0)
        a.drain()
        return True


# -- the config loader ----------------------------------------------------------------------


class Config:
    def __init__(self) -> None:
        self.texts = [
            conf("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net"),
            conf("192.0.2.2", "%any", "hq.example.net", "branch.example.net", version=1),
        ]

    def __call__(self, rng: random.Random) -> bool:
        text = mutate_toml(rng, rng.choice(self.texts))
        with contextlib.suppress(ConfigError):
            load_config_text(text)
        return True


def make_targets() -> dict[str, Target]:
    return {
        "codec": codec,
        "v2_init": V2Init(),
        "v2_auth": V2Auth(),
        "v2_auth_response": V2AuthResponse(),
        "v1_clear": v1_clear,
        "v1_quick": V1Quick(),
        "config": Config(),
    }
