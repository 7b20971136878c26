"""A CHILD_SA: negotiated algorithms, SPIs, selectors, keys, and what goes to the kernel."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pike.crypto.kdf import ChildKeys
from pike.policy.addrs import parse_ip
from pike.policy.config import ChildConfig
from pike.policy.ipsec import NO_MARK, Lifetime, Mode, PolicySpec, SaSpec, UdpEncap
from pike.policy.ts import IPAddress, TrafficSelector
from pike.sa.actions import IkeRef, InstallChildSa
from pike.sa.chosen import Chosen
from pike.sa.esp_seen import EspSeen
from pike.sa.state import CHILD_TRANSITIONS, ChildState, StateError, log
from pike.sa.timer_queue import is_set

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_INSTALLED = ChildState.INSTALLED
_REKEYING = ChildState.REKEYING
_REKEYED = ChildState.REKEYED


@dataclass(slots=True)  # a hub holds 10 000 of these
class ChildSa:
    config: ChildConfig
    unique_id: int
    reqid: int
    initiator: bool  # we initiated the exchange that created it
    spi_in: int
    spi_out: int = 0
    mode: str = "tunnel"
    chosen: Chosen | None = None
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    keys: ChildKeys | None = field(default=None, repr=False)
    state: ChildState = ChildState.CREATED
    inbound: SaSpec | None = None
    outbound: SaSpec | None = None
    policies: tuple[PolicySpec, ...] = ()
    installed_at: float | None = None
    nonces: tuple[bytes, bytes] = (b"", b"")  # of the exchange that made it (collisions)
    replaced_by_peer: ChildSa | None = field(default=None, repr=False)
    outbound_deferred: bool = False  # rekey responder: outbound SA not in the kernel yet
    rekey_at: float | None = None
    expire_at: float | None = None
    # Soft (rekey) volume limits in the kernel: (bytes, packets), drawn once per CHILD_SA.
    soft_volume: tuple[int, int] | None = None
    # Inbound ESP as the kernel counted it; None until its first report (asked for only
    # once a DPD is due: not one more object per CHILD_SA from the start).
    esp: EspSeen | None = None

    def schedule(self, now: float, random: Callable[[int], bytes]) -> None:
        """Rekey at rekey_time minus up to rand_time (jitter keeps both peers from
        rekeying at once); give up at life_time (strongSwan's scheme)."""
        cfg = self.config
        if cfg.rekey_time:
            jitter = 0
            if cfg.rand_time:
                jitter = int.from_bytes(random(4), "big") % (cfg.rand_time + 1)
            self.rekey_at = now + max(cfg.rekey_time - jitter, 1)
        if cfg.life_time:
            self.expire_at = now + cfg.life_time

    def install(self, ike_name: str, ike: IkeRef | None = None) -> InstallChildSa:
        """The action that puts this CHILD_SA's kernel specs (built already) in place."""
        assert self.inbound is not None and self.outbound is not None
        return InstallChildSa(
            ike_name,
            self.config.name,
            self.unique_id,
            self.inbound,
            self.outbound,
            self.policies,
            self.outbound_deferred,
            ike,
        )

    def draw_soft_volume(self, random: Callable[[int], bytes] | None) -> tuple[int, int]:
        """rekey_bytes/packets minus up to rand_bytes/packets (as with rand_time, so that
        both peers do not rekey on the same packet); 0 stays 0 (no limit)."""
        if self.soft_volume is None:
            cfg = self.config

            def soft(rekey: int, rand: int) -> int:
                if not rekey or not rand or random is None:
                    return rekey
                return max(rekey - int.from_bytes(random(8), "big") % (rand + 1), 1)

            self.soft_volume = (
                soft(cfg.rekey_bytes, cfg.rand_bytes),
                soft(cfg.rekey_packets, cfg.rand_packets),
            )
        return self.soft_volume

    def next_deadline(self) -> float | None:
        if self.state == _INSTALLED:
            return min(filter(is_set, (self.rekey_at, self.expire_at)), default=None)
        if self.state in (_REKEYING, _REKEYED):
            return self.expire_at
        return None

    @property
    def name(self) -> str:
        return self.config.name

    def set_state(self, new: ChildState, conn: str) -> None:
        if new not in CHILD_TRANSITIONS[self.state]:
            raise StateError(f"child {self.name}: {self.state.value} -> {new.value}")
        if log.isEnabledFor(logging.INFO):  # its arguments cost; a busy hub logs less
            log.info(
                "%s.%s: CHILD_SA %s -> %s, SPIs %08x_i %08x_o",
                conn,
                self.name,
                self.state.value,
                new.value,
                self.spi_in,
                self.spi_out,
            )
        self.state = new

    def build_kernel_specs(
        self,
        local: str,
        remote: str,
        encap: UdpEncap | None,
        outbound_encap: UdpEncap | None,
        random: Callable[[int], bytes] | None = None,
    ) -> None:
        """SaSpecs for both directions and the policies; keys by who initiated (RFC 7296
        §2.17: the first keys are for the initiator-to-responder direction). ``random``
        draws the jitter of the volume limits (once: a rebuild keeps them)."""
        chosen, k, cfg = self.chosen, self.keys, self.config
        assert chosen is not None and k is not None
        if self.initiator:
            enc_out, int_out, enc_in, int_in = k.encr_i, k.integ_i, k.encr_r, k.integ_r
        else:
            enc_out, int_out, enc_in, int_in = k.encr_r, k.integ_r, k.encr_i, k.integ_i
        lsrc, ldst = parse_ip(local), parse_ip(remote)
        if self.mode == "transport":
            mode: Mode = "transport"
            lts0, rts0 = self.local_ts[0], self.remote_ts[0]  # the SAs' own selectors
        else:
            mode, lts0, rts0 = "tunnel", None, None
        lifetime = cfg.kernel_lifetime  # without volume jitter: the config's own
        if lifetime is None or cfg.rand_bytes or cfg.rand_packets:
            lifetime = self._lifetime(random)
        # Both directions written out: a CHILD_SA builds exactly these two, every field
        # from the negotiated algorithms, its config and its side.
        self.inbound = SaSpec(
            src=ldst,
            dst=lsrc,
            spi=self.spi_in,
            reqid=self.reqid,
            mode=mode,
            encr_id=chosen.encr_id,
            encr_key=enc_in,
            encr_key_length=chosen.encr_key_length,
            integ_id=chosen.integ_id,
            integ_key=int_in,
            src_ts=rts0,
            dst_ts=lts0,
            encap=encap,
            lifetime=lifetime,
            replay_window=cfg.replay_window,
            esn=chosen.esn,
            inbound=True,
            offload=cfg.hw_offload,
            if_id=cfg.if_id_in,
            mark=cfg.mark_in,
        )
        self.outbound = SaSpec(
            src=lsrc,
            dst=ldst,
            spi=self.spi_out,
            reqid=self.reqid,
            mode=mode,
            encr_id=chosen.encr_id,
            encr_key=enc_out,
            encr_key_length=chosen.encr_key_length,
            integ_id=chosen.integ_id,
            integ_key=int_out,
            src_ts=lts0,
            dst_ts=rts0,
            encap=outbound_encap,
            lifetime=lifetime,
            replay_window=0,
            esn=chosen.esn,
            inbound=False,
            offload=cfg.hw_offload,
            if_id=cfg.if_id_out,
            mark=cfg.mark_out,
        )
        self.policies = policies_for(
            self.local_ts, self.remote_ts, mode, self.reqid, lsrc, ldst, cfg
        )

    def _lifetime(self, random: Callable[[int], bytes] | None) -> Lifetime:
        """The kernel's limits of both SAs. Without volume jitter (the default) they are
        the config's alone: one ``Lifetime`` per child config, shared by its CHILD_SAs."""
        cfg = self.config
        if not (cfg.rand_bytes or cfg.rand_packets):
            return _config_lifetime(cfg)
        soft_bytes, soft_packets = self.draw_soft_volume(random)
        return _limits(cfg, soft_bytes, soft_packets)


def _limits(cfg: ChildConfig, soft_bytes: int, soft_packets: int) -> Lifetime:
    """``cfg``'s kernel limits with these soft volume limits."""
    soft = max(cfg.rekey_time, 1)
    return Lifetime(
        soft_bytes=soft_bytes,
        hard_bytes=cfg.life_bytes,
        soft_packets=soft_packets,
        hard_packets=cfg.life_packets,
        soft_seconds=soft,
        hard_seconds=max(cfg.life_time, soft),
    )


def _config_lifetime(cfg: ChildConfig) -> Lifetime:
    """The limits of ``cfg``'s SAs without volume jitter, made once and kept on it."""
    got = cfg.kernel_lifetime
    if got is None:
        got = _limits(cfg, cfg.rekey_bytes, cfg.rekey_packets)
        object.__setattr__(cfg, "kernel_lifetime", got)  # a cache on a frozen value
    return got


def policies_for(
    local_ts: tuple[TrafficSelector, ...],
    remote_ts: tuple[TrafficSelector, ...],
    mode: Mode,
    reqid: int,
    local: IPAddress,
    remote: IPAddress,
    cfg: ChildConfig | None = None,
) -> tuple[PolicySpec, ...]:
    """out/in (and fwd in tunnel mode) policies for every pair of selectors, bound to the
    child's XFRM interface or VTI marks (out: the _out ones; in and fwd: the _in ones)."""
    out_if, out_mark = (cfg.if_id_out, cfg.mark_out) if cfg is not None else (0, NO_MARK)
    in_if, in_mark = (cfg.if_id_in, cfg.mark_in) if cfg is not None else (0, NO_MARK)
    policies: list[PolicySpec] = []
    for lts in local_ts:
        for rts in remote_ts:
            if lts.start.version != rts.start.version:
                continue  # 0.0.0.0/0 and ::/0 on both sides pair by family
            policies.append(
                PolicySpec(lts, rts, "out", reqid, mode, local, remote, if_id=out_if, mark=out_mark)
            )
            policies.append(
                PolicySpec(rts, lts, "in", reqid, mode, remote, local, if_id=in_if, mark=in_mark)
            )
            if mode == "tunnel":
                policies.append(
                    PolicySpec(
                        rts, lts, "fwd", reqid, mode, remote, local, if_id=in_if, mark=in_mark
                    )
                )
    return tuple(policies)


def trap_policies(cfg: ChildConfig, reqid: int, local: str, remote: str) -> tuple[PolicySpec, ...]:
    """The policies of a child before it exists (start_action = trap)."""
    lip, rip = parse_ip(local), parse_ip(remote)
    lts = cfg.local_ts or (TrafficSelector.host(lip),)
    rts = cfg.remote_ts or (TrafficSelector.host(rip),)
    policies = policies_for(lts, rts, cfg.mode, reqid, lip, rip, cfg)
    return tuple(replace(p, trap=True) for p in policies)
