"""An IKE_AUTH message waiting for its CERT chain to be checked off the event loop.

In piked (``ctx.offload_chains``) the engine does not parse or verify a peer's
certificates on the loop: an authenticated IKE_AUTH request or response carrying CERT
payloads is parked on its SA (``IkeSa.chain``) and a ``CheckChain`` goes out with the
certificates and the CAs of the connections it may be for (the responder does not know
which one yet: IDi picks it). The answer comes back through ``Ikev2Engine.chain_checked``,
which hands the same message to the task manager; ``IkeAuth._verify`` then takes the
verdict from here (``checked``) instead of validating, and requires that the path ends at
a CA of the connection it chose. Copies of the message that arrive meanwhile are dropped
(the peer retransmits; the answer follows the check). Cheap refusals (too many CERT
payloads, a non-X.509 encoding) stay inline, so they cost no round trip.

In-memory engines (tests, ``pikectl``) keep ``offload_chains`` off and validate inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.sa.chain_check import ChainWait as ChainWait
from pike.sa.chain_check import anchors_of, offloadable, trust_key, verdict
from pike.wire.constants import ExchangeType
from pike.wire.payloads import CertPayload, Message

if TYPE_CHECKING:
    from cryptography import x509

    from pike.ikev2.ike_sa import IkeSa
    from pike.policy.config import ConnectionConfig


def _conns(sa: IkeSa, msg: Message) -> list[ConnectionConfig]:
    if msg.is_response:
        return [sa.conn] if sa.conn is not None else []
    return list(sa.candidates.distinct(trust_key)) if sa.candidates is not None else []


def wanted(sa: IkeSa, msg: Message) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
    """(certificates, anchors) when ``msg``'s chain is to be checked off the loop."""
    if not sa.ctx.offload_chains or msg.exchange != ExchangeType.IKE_AUTH:
        return None
    if msg.first(CertPayload) is None:
        return None  # no certificates (a PSK's IKE_AUTH): nothing to check
    tasks = sa.tasks
    if msg.is_response:
        if not tasks.active or msg.message_id != tasks.mid_out:
            return None  # the task manager drops it
    elif msg.message_id != tasks.mid_in or tasks.held is not None:
        return None  # a retransmission: answered from the cache or held
    payloads = msg.all(CertPayload)
    if not offloadable(payloads):
        return None
    anchors = anchors_of(sa.ctx.credentials, _conns(sa, msg))
    if not anchors:
        return None  # validated inline: fails at once with the reason
    return tuple(p.data for p in payloads), anchors


def checked(
    sa: IkeSa, msg: Message, cas: tuple[x509.Certificate, ...]
) -> list[x509.Certificate] | None:
    """The path (end entity to trusted CA) of ``msg``'s checked chain, None when it was not
    checked off the loop; raises CertError when the check failed or its path ends at a CA
    the chosen connection (``cas``) does not trust."""
    wait = sa.chain
    if wait is None or wait.msg is not msg:
        return None
    return verdict(wait, tuple(p.data for p in msg.all(CertPayload)), cas)
