"""Create a CHILD_SA inside IKE_AUTH (RFC 7296 §1.2, §2.9 narrowing, §1.3.1 later).

The responder narrows the initiator's selectors to its own, picks an ESP proposal and
installs; an unacceptable child is answered with TS_UNACCEPTABLE or NO_PROPOSAL_CHOSEN
while the IKE SA stays up. Without ESP in the kernel, the responder answers
NO_PROPOSAL_CHOSEN as strongSwan does when its SAD install fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from ipaddress import ip_address
from typing import TYPE_CHECKING

from pike.crypto.ids import TransformType
from pike.crypto.kdf import derive_child_keys
from pike.crypto.proposal import ProposalSpec
from pike.crypto.sizes import encr_key_size, integ_key_size
from pike.ikev2.actions import ChildSaEstablished, ChildSaFailed, InstallChildSa
from pike.ikev2.child_sa import ChildSa
from pike.ikev2.negotiate import Chosen, check_reply, select, to_wire
from pike.ikev2.state import ChildState, IkeState, log
from pike.ikev2.tasks.base import Task
from pike.policy.config import ChildConfig
from pike.policy.ipsec import UdpEncap
from pike.policy.ts import TrafficSelector
from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType, ProtocolId, TsType
from pike.wire.payloads import (
    Message,
    NotifyPayload,
    Proposal,
    SaPayload,
    TrafficSelectorWire,
    TsiPayload,
    TsrPayload,
)

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


def ts_to_wire(ts: TrafficSelector) -> TrafficSelectorWire:
    kind = TsType.TS_IPV4_ADDR_RANGE if ts.version == 4 else TsType.TS_IPV6_ADDR_RANGE
    return TrafficSelectorWire(kind, ts.protocol, ts.start_port, ts.end_port, ts.start, ts.end)


def ts_from_wire(w: TrafficSelectorWire) -> TrafficSelector:
    return TrafficSelector(w.start_addr, w.end_addr, w.ip_protocol, w.start_port, w.end_port)


def narrow(
    theirs: Sequence[TrafficSelector], ours: Sequence[TrafficSelector]
) -> tuple[TrafficSelector, ...]:
    """Every part of the peer's selectors that ours allow (RFC 7296 §2.9)."""
    out: list[TrafficSelector] = []
    for o in ours:
        for t in theirs:
            got = o.intersect(t)
            if got is not None and got not in out:
                out.append(got)
    return tuple(out)


def without_ke(specs: Sequence[ProposalSpec]) -> tuple[ProposalSpec, ...]:
    """IKE_AUTH carries no KE payload, so PFS groups are left out there (RFC 7296 §1.2)."""
    return tuple(
        replace(s, transforms=tuple(a for a in s.transforms if a.type != TransformType.KE))
        for s in specs
    )


class ChildCreate(Task):
    name = "child_create"

    def __init__(self, sa: IkeSa, initiator: bool, config: ChildConfig | None = None) -> None:
        super().__init__(sa, initiator)
        self.config = config
        self.child: ChildSa | None = None
        self.error: int | None = None  # responder: the notify that refused the child
        self._chosen: Chosen | None = None

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_AUTH

    def _dynamic(self, ts: tuple[TrafficSelector, ...], addr: str) -> tuple[TrafficSelector, ...]:
        # No selectors configured means "my own address" (strongSwan's `dynamic`).
        return ts or (TrafficSelector.host(ip_address(addr)),)

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg, now)
            return
        sa = self.sa
        cfg = self.config
        assert cfg is not None
        spi = sa.ctx.child_spi(sa.remote[0], sa.local[0])
        child = ChildSa(cfg, sa.ctx.unique_id(), sa.ctx.reqid(), True, spi, mode=cfg.mode)
        child.local_ts = self._dynamic(cfg.local_ts, sa.local[0])
        child.remote_ts = self._dynamic(cfg.remote_ts, sa.remote[0])
        self.child = child
        props = to_wire(without_ke(cfg.esp_proposals), spi.to_bytes(4, "big"))
        msg.payloads.append(SaPayload(props))
        msg.payloads.append(TsiPayload(tuple(ts_to_wire(t) for t in child.local_ts)))
        msg.payloads.append(TsrPayload(tuple(ts_to_wire(t) for t in child.remote_ts)))
        if cfg.mode == "transport":
            msg.payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg)
            return
        sa, child = self.sa, self.child
        assert child is not None and self.config is not None
        if sa.state != IkeState.ESTABLISHED:
            return  # IKE_AUTH failed; the IKE SA goes and the child with it
        for n in msg.all(NotifyPayload):
            if n.notify_type <= ERROR_NOTIFY_MAX:
                self._failed(f"peer refused CHILD_SA with notify {_notify_name(n.notify_type)}")
                return
        sa_payload, tsi, tsr = msg.first(SaPayload), msg.first(TsiPayload), msg.first(TsrPayload)
        if sa_payload is None or tsi is None or tsr is None:
            self._failed("response lacks SA, TSi or TSr")
            return
        chosen = check_reply(
            without_ke(self.config.esp_proposals), sa_payload.proposals, ProtocolId.ESP
        )
        if chosen is None or len(chosen.spi) != 4:
            self._failed("responder chose an ESP proposal we did not offer")
            return
        local = tuple(ts_from_wire(w) for w in tsi.selectors)
        remote = tuple(ts_from_wire(w) for w in tsr.selectors)
        # The responder may only narrow (RFC 7296 §2.9).
        if not _within(local, child.local_ts) or not _within(remote, child.remote_ts):
            self._failed("responder widened the traffic selectors")
            return
        child.local_ts, child.remote_ts = local, remote
        transport = msg.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        child.mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        self._established(child, chosen, now)

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message) -> None:
        sa = self.sa
        if sa.conn is None:
            return
        sa_payload, tsi, tsr = msg.first(SaPayload), msg.first(TsiPayload), msg.first(TsrPayload)
        if sa_payload is None or tsi is None or tsr is None:
            return  # childless IKE_AUTH (RFC 6023)
        theirs_i = [ts_from_wire(w) for w in tsi.selectors]
        theirs_r = [ts_from_wire(w) for w in tsr.selectors]
        match: tuple[ChildConfig, tuple[TrafficSelector, ...], tuple[TrafficSelector, ...]] | None
        match = None
        for cfg in sa.conn.children:
            remote = narrow(theirs_i, self._dynamic(cfg.remote_ts, sa.remote[0]))
            local = narrow(theirs_r, self._dynamic(cfg.local_ts, sa.local[0]))
            if remote and local:
                match = (cfg, local, remote)
                break
        if match is None:
            log.info(
                "%s: no child config matches TSi %s TSr %s",
                sa.tag(),
                _fmt(theirs_i),
                _fmt(theirs_r),
            )
            self.error = NotifyType.TS_UNACCEPTABLE
            return
        cfg, local, remote = match
        chosen = select(without_ke(cfg.esp_proposals), sa_payload.proposals, ProtocolId.ESP)
        if chosen is None or len(chosen.spi) != 4:
            log.info("%s: no acceptable ESP proposal for %s", sa.tag(), cfg.name)
            self.error = NotifyType.NO_PROPOSAL_CHOSEN
            return
        if not sa.ctx.caps.esp:
            log.error(
                "%s: cannot install CHILD_SA %s: kernel lacks %s; answering NO_PROPOSAL_CHOSEN",
                sa.tag(),
                cfg.name,
                ", ".join(sa.ctx.caps.missing) or "ESP",
            )
            sa.ctx.emit(ChildSaFailed(sa.name, cfg.name, "kernel_no_esp"))
            self.error = NotifyType.NO_PROPOSAL_CHOSEN
            return
        spi = sa.ctx.child_spi(sa.remote[0], sa.local[0])
        child = ChildSa(cfg, sa.ctx.unique_id(), sa.ctx.reqid(), False, spi)
        child.local_ts, child.remote_ts = local, remote
        transport = msg.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        child.mode = "transport" if transport and cfg.mode == "transport" else "tunnel"
        self.child = child
        self._chosen = chosen

    def _build_r(self, msg: Message, now: float) -> None:
        if self.error is not None:
            msg.payloads.append(NotifyPayload(self.error))
            return
        child = self.child
        if child is None:
            return
        chosen = self._chosen
        assert chosen is not None
        reply = Proposal(
            chosen.number, ProtocolId.ESP, child.spi_in.to_bytes(4, "big"), chosen.transforms()
        )
        msg.payloads.append(SaPayload((reply,)))
        msg.payloads.append(TsiPayload(tuple(ts_to_wire(t) for t in child.remote_ts)))
        msg.payloads.append(TsrPayload(tuple(ts_to_wire(t) for t in child.local_ts)))
        if child.mode == "transport":
            msg.payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        # Install before the response leaves, so the peer's first ESP packet finds the SA.
        self._established(child, chosen, now)

    # -- both ----------------------------------------------------------------------------
    def _established(self, child: ChildSa, chosen: Chosen, now: float) -> None:
        sa = self.sa
        assert sa.prf is not None and sa.keys is not None
        child.chosen = chosen
        child.spi_out = int.from_bytes(chosen.spi, "big")
        ekey = encr_key_size(chosen.encr_id, chosen.encr_key_length)
        ikey = integ_key_size(chosen.integ_id)
        child.keys = derive_child_keys(sa.prf, sa.keys.sk_d, sa.ni, sa.nr, None, ekey, ikey)
        encap = UdpEncap(sa.remote[1], sa.local[1]) if sa.natt else None
        out_encap = UdpEncap(sa.local[1], sa.remote[1]) if sa.natt else None
        child.build_kernel_specs(sa.local[0], sa.remote[0], encap, out_encap)
        sa.children.append(child)
        if not sa.ctx.caps.esp:
            # Our kernel cannot take it: tell the peer, as strongSwan does on install failure.
            log.error(
                "%s: CHILD_SA %s negotiated but kernel lacks %s; deleting it",
                sa.tag(),
                child.name,
                ", ".join(sa.ctx.caps.missing) or "ESP",
            )
            child.set_state(ChildState.FAILED, sa.name)
            sa.ctx.emit(ChildSaFailed(sa.name, child.name, "kernel_no_esp"))
            from pike.ikev2.tasks.child_delete import ChildDelete

            sa.tasks.queue(ChildDelete(sa, True, child))
            return
        assert child.inbound is not None and child.outbound is not None
        sa.ctx.emit(
            InstallChildSa(
                sa.name, child.name, child.unique_id, child.inbound, child.outbound, child.policies
            )
        )
        child.installed_at = now
        child.set_state(ChildState.INSTALLED, sa.name)
        log.info(
            "%s: CHILD_SA %s{%d} established with SPIs %08x_i %08x_o and TS %s === %s",
            sa.tag(),
            child.name,
            child.unique_id,
            child.spi_in,
            child.spi_out,
            _fmt(child.local_ts),
            _fmt(child.remote_ts),
        )
        sa.ctx.emit(ChildSaEstablished(sa.name, child.name, child.unique_id))

    def _failed(self, why: str) -> None:
        sa = self.sa
        assert self.config is not None
        log.info("%s: CHILD_SA %s failed: %s", sa.tag(), self.config.name, why)
        sa.ctx.emit(ChildSaFailed(sa.name, self.config.name, why))


def _within(got: Sequence[TrafficSelector], offered: Sequence[TrafficSelector]) -> bool:
    return bool(got) and all(any(o.contains(g) for o in offered) for g in got)


def _fmt(ts: Sequence[TrafficSelector]) -> str:
    return " ".join(str(t) for t in ts)


def _notify_name(n: int) -> str:
    try:
        return NotifyType(n).name
    except ValueError:
        return str(n)
