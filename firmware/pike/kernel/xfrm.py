"""Linux XFRM data plane over a NETLINK_XFRM socket (SAD, SPD, SPI allocation)."""

from __future__ import annotations

import errno
import logging
import socket
from ipaddress import IPv4Address, ip_address
from typing import Any

from pike.board.netns import call_in_netns
from pike.board.offload import InUse, OffloadError, apply_offload, plan_offload_for
from pike.board.offload import Mode as OffloadMode
from pike.crypto.ids import EncrId, IntegId
from pike.kernel import xfrm_messages as xm
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.interface import KernelError, KernelIpsec
from pike.kernel.xfrm_algorithms import AEADS, CIPHERS, INTEGS, algorithm_attrs
from pike.kernel.xfrm_events import XfrmEvents
from pike.kernel.xfrm_selectors import Selector, family_of, packed, sa_selector, selectors
from pike.kernel.xfrm_socket import Lazy, What, XfrmSocket
from pike.policy.ipsec import (
    IPPROTO_ESP,
    NO_MARK,
    KernelCaps,
    Lifetime,
    Mark,
    PolicySpec,
    SaCounters,
    SaSpec,
    is_pike_reqid,
)
from pike.policy.ts import IPAddress

log = logging.getLogger(__name__)

# strongSwan's range for allocated SPIs: the top nibble marks them as ours in dumps.
SPI_MIN = 0xC0000000
SPI_MAX = 0xCFFFFFFF

MODES = {"transport": xm.XFRM_MODE_TRANSPORT, "tunnel": xm.XFRM_MODE_TUNNEL}
DIRECTIONS = {"in": xm.XFRM_POLICY_IN, "out": xm.XFRM_POLICY_OUT, "fwd": xm.XFRM_POLICY_FWD}

# probe(): throwaway SAs to loopback with SPIs from IANA's reserved 1..255 range, which no
# peer ever negotiates, so they cannot collide with a live SA.
PROBE_DST = IPv4Address("127.0.0.2")
PROBE_SUITES: tuple[tuple[str, int, int, int, int], ...] = (
    # label, encr id, encr key bytes, integ id, integ key bytes
    ("AES-GCM-16 (rfc4106(gcm(aes)))", EncrId.AES_GCM_16, 20, IntegId.NONE, 0),
    (
        "ChaCha20-Poly1305 (rfc7539esp(chacha20,poly1305))",
        EncrId.CHACHA20_POLY1305,
        36,
        IntegId.NONE,
        0,
    ),
    (
        "AES-CBC + HMAC-SHA2-256 (cbc(aes), hmac(sha256))",
        EncrId.AES_CBC,
        16,
        IntegId.HMAC_SHA2_256_128,
        32,
    ),
)
PROBE_SPI = 0xFD
ESP_MISSING = "ESP (CONFIG_INET_ESP / esp4)"

SaKey = tuple[IPAddress, int]
PolicyKey = tuple[Selector, int, int, Mark]  # selector, direction, if_id, mark


def _limit(value: int) -> int:
    return value if value else xm.XFRM_INF


def _sa_lifetime(lt: Lifetime) -> dict[str, int]:
    # Byte/packet limits use XFRM_INF for "none"; seconds use 0 (the kernel adds them to the
    # creation time, so XFRM_INF would wrap around and expire the SA at once).
    return {
        "lft_soft_byte_limit": _limit(lt.soft_bytes),
        "lft_hard_byte_limit": _limit(lt.hard_bytes),
        "lft_soft_packet_limit": _limit(lt.soft_packets),
        "lft_hard_packet_limit": _limit(lt.hard_packets),
        "lft_soft_add_expires_seconds": lt.soft_seconds,
        "lft_hard_add_expires_seconds": lt.hard_seconds,
    }


class XfrmKernel(KernelIpsec):
    """``KernelIpsec`` over XFRM netlink, optionally inside the named network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.offload_in_use: dict[tuple[IPAddress, int], InUse] = {}
        self._nl = XfrmSocket(netns)
        # What this instance put in the kernel, by key only (the engine holds the rest):
        # to remove it at shutdown and to tell our EXPIREs and ACQUIREs from others'.
        self._sas: set[SaKey] = set()  # installed or larval SAs
        self._larval: set[SaKey] = set()  # allocated by get_spi, completed by UPDSA
        self._policies: dict[PolicyKey, int] = {}  # -> reqid
        self._sa_marks: dict[SaKey, Mark] = {}  # the kernel finds a marked SA only by mark
        self._events: XfrmEvents | None = None

    def _request(self, what: What, msg: Any, msg_type: int, ack: bool = True) -> list[Any]:
        return self._nl.request(what, msg, msg_type, ack)

    # -- capabilities ------------------------------------------------------------------

    def probe(self) -> KernelCaps:
        """Try each algorithm suite on a throwaway SA; the kernel checks algorithms before
        the ESP type, so ENOSYS names a missing algorithm and EPROTONOSUPPORT missing ESP."""
        missing: list[str] = []
        esp_missing = False
        usable = 0
        for i, (label, encr, ekey, integ, ikey) in enumerate(PROBE_SUITES):
            sa = SaSpec(
                src=IPv4Address("127.0.0.1"),
                dst=PROBE_DST,
                spi=PROBE_SPI - i,
                reqid=0,
                mode="transport",
                encr_id=encr,
                encr_key=bytes(ekey),
                encr_key_length=None,
                integ_id=integ,
                integ_key=bytes(ikey),
            )
            self._delete_sa(sa.dst, sa.spi)  # a leftover from a crashed run would say EEXIST
            try:
                self._install_sa(sa, xm.XFRM_MSG_NEWSA)
            except KernelError as e:
                log.debug("probe %s: %s", label, e)
                if e.code == errno.ENOSYS:
                    missing.append(label)
                elif e.code == errno.EPROTONOSUPPORT or "type not found" in str(e):
                    esp_missing = True
                else:
                    missing.append(f"{label}: {e}")
                continue
            usable += 1
            self._delete_sa(sa.dst, sa.spi)
        if esp_missing:
            missing.insert(0, ESP_MISSING)
        caps = KernelCaps(esp=not esp_missing and usable > 0, missing=tuple(missing))
        log.info("kernel caps: esp=%s missing=%s", caps.esp, ", ".join(missing) or "none")
        return caps

    # -- SAs ---------------------------------------------------------------------------

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        msg = xm.xfrm_userspi_info()
        msg.update(
            id_daddr=packed(dst),
            id_proto=IPPROTO_ESP,
            saddr=packed(src),
            family=family_of(dst),
            reqid=reqid,
            min=SPI_MIN,
            max=SPI_MAX,
        )
        what = Lazy("allocate SPI %s -> %s reqid %d", src, dst, reqid)
        replies = self._request(what, msg, xm.XFRM_MSG_ALLOCSPI, ack=False)
        if not replies or "id_spi" not in replies[0]:
            raise KernelError(f"{what}: no SA in the reply")
        spi = int(replies[0]["id_spi"])
        key = (dst, spi)
        self._larval.add(key)
        self._sas.add(key)
        log.debug("allocated SPI %08x for %s -> %s reqid %d", spi, src, dst, reqid)
        return spi

    def add_sa(self, sa: SaSpec) -> None:
        key = (sa.dst, sa.spi)
        # An allocated SPI exists as a larval SA: UPDSA replaces it (as strongSwan does for
        # inbound SAs); NEWSA would fail with EEXIST. So does an inbound SA installed ahead
        # of its exchange's answer (the kernel keeps its keys and takes the new lifetimes).
        update = key in self._sas
        try:
            in_use = self._install_sa(sa, xm.XFRM_MSG_UPDSA if update else xm.XFRM_MSG_NEWSA)
        except KernelError as e:
            if not update or e.code not in (errno.ESRCH, errno.ENOENT):
                raise
            # gone meanwhile (a larval SA or an SA installed ahead outlived its lifetime)
            in_use = self._install_sa(sa, xm.XFRM_MSG_NEWSA)
        self.offload_in_use[key] = in_use  # for list-sas
        if sa.mark != NO_MARK:
            self._sa_marks[key] = sa.mark
        self._larval.discard(key)
        self._sas.add(key)
        log.debug(
            "installed %s SA %08x %s -> %s reqid %d", sa.mode, sa.spi, sa.src, sa.dst, sa.reqid
        )

    def _install_sa(self, sa: SaSpec, msg_type: int) -> InUse:
        """Install (or update) one SA; returns the NIC offload in use (no/crypto/packet)."""
        msg = xm.xfrm_usersa_info()
        msg.update(
            id_daddr=packed(sa.dst),
            id_spi=sa.spi,
            id_proto=IPPROTO_ESP,
            saddr=packed(sa.src),
            family=family_of(sa.dst),
            mode=MODES[sa.mode],
            reqid=sa.reqid,
            **_sa_lifetime(sa.lifetime),
        )
        flags = 0
        if sa.mode == "tunnel":
            flags |= xm.XFRM_STATE_AF_UNSPEC  # any inner family; the policy selects
        elif sa.src_ts is not None and sa.dst_ts is not None:
            msg.update(sa_selector(sa.src_ts, sa.dst_ts).fields())
        attrs: list[tuple[str, Any]] = list(
            algorithm_attrs(sa.encr_id, sa.encr_key, sa.integ_id, sa.integ_key, sa.encr_key_length)
        )
        if sa.esn or sa.replay_window > 32:
            # The legacy replay field holds at most 32; larger windows and ESN need this.
            words = (sa.replay_window + 31) // 32
            esn = {
                "bmp_len": words,
                "oseq": sa.oseq & 0xFFFFFFFF,
                "oseq_hi": sa.oseq >> 32,
                "replay_window": sa.replay_window,
                "bmp": bytes(4 * words),
            }
            attrs.append(("XFRMA_REPLAY_ESN_VAL", esn))
            if sa.esn:
                flags |= xm.XFRM_STATE_ESN
        else:
            msg["replay_window"] = sa.replay_window
            if sa.oseq:
                attrs.append(("XFRMA_REPLAY_VAL", {"oseq": sa.oseq, "seq": 0, "bitmap": 0}))
        msg["flags"] = flags
        if sa.if_id:
            attrs.append(("XFRMA_IF_ID", sa.if_id))
        if sa.mark != NO_MARK:
            attrs.append(("XFRMA_MARK", _mark_attr(sa.mark)))
        if sa.encap is not None:
            encap = {
                "encap_type": xm.UDP_ENCAP_ESPINUDP,
                "encap_sport": sa.encap.sport,
                "encap_dport": sa.encap.dport,
            }
            attrs.append(("XFRMA_ENCAP", encap))
        op = "update" if msg_type == xm.XFRM_MSG_UPDSA else "add"
        what = Lazy("%s SA %08x %s -> %s", op, sa.spi, sa.src, sa.dst)
        if sa.offload == "no":
            msg["attrs"] = attrs
            self._request(what, msg, msg_type)
            return "no"
        # NIC offload (pike.board.offload): the SA's interface (outbound: the route to the
        # peer; inbound: where its local address is), its ethtool features, then
        # packet/crypto/software in the order hw_offload allows.
        peer, local = (sa.src, sa.dst) if sa.inbound else (sa.dst, sa.src)
        try:
            plan = plan_offload_for(
                sa.offload, str(peer), self.netns, inbound_local=str(local) if sa.inbound else None
            )
        except OffloadError as exc:
            raise KernelError(str(what), detail=str(exc)) from None

        def install(mode: OffloadMode | None) -> None:
            extra = (
                []
                if mode is None
                else [("XFRMA_OFFLOAD_DEV", self._offload_attr(sa, plan.dev, mode))]
            )
            msg["attrs"] = attrs + extra
            self._request(what, msg, msg_type)

        try:
            used = apply_offload(plan, install, retry_on=(KernelError,))
        except OffloadError as exc:
            raise KernelError(str(what), detail=str(exc)) from None
        log.info("%s: offload %s (%s)", what, used, plan.reason)
        return used

    def _offload_attr(self, sa: SaSpec, dev: str | None, mode: OffloadMode) -> dict[str, int]:
        try:
            ifindex = call_in_netns(self.netns, lambda: socket.if_nametoindex(dev or ""))
        except OSError as e:
            raise KernelError(f"offload device {dev!r}", e.errno or 0) from e
        flags = xm.XFRM_OFFLOAD_IPV6 if sa.dst.version == 6 else 0
        flags |= xm.XFRM_OFFLOAD_INBOUND if sa.inbound else 0
        flags |= xm.XFRM_OFFLOAD_PACKET if mode == "packet" else 0
        return {"ifindex": ifindex, "flags": flags}

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        self._delete_sa(dst, spi)
        self._sas.discard((dst, spi))
        self.offload_in_use.pop((dst, spi), None)
        self._larval.discard((dst, spi))
        self._sa_marks.pop((dst, spi), None)

    def _delete_sa(self, dst: IPAddress, spi: int) -> None:
        what = Lazy("delete SA %08x -> %s", spi, dst)
        try:
            self._request(what, self._sa_id(dst, spi), xm.XFRM_MSG_DELSA)
        except KernelError as e:
            if e.code not in (errno.ESRCH, errno.ENOENT):
                raise
            log.debug("%s: already gone", what)

    def _sa_id(self, dst: IPAddress, spi: int) -> Any:
        msg = xm.xfrm_usersa_id()
        msg.update(daddr=packed(dst), spi=spi, family=family_of(dst), proto=IPPROTO_ESP)
        mark = self._sa_marks.get((dst, spi), NO_MARK)
        if mark != NO_MARK:
            msg["attrs"] = [("XFRMA_MARK", _mark_attr(mark))]
        return msg

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters:
        what = f"query SA {spi:08x} -> {dst}"
        replies = self._request(what, self._sa_id(dst, spi), xm.XFRM_MSG_GETSA, ack=False)
        if not replies or "cur_bytes" not in replies[0]:
            raise KernelError(f"{what}: no SA in the reply")
        info = replies[0]
        # XFRMA_LASTUSED is the latest use; curlft.use_time only the first one.
        last = info.get_attr("XFRMA_LASTUSED") or info["cur_use_time"]
        oseq = 0
        if (esn := info.get_attr("XFRMA_REPLAY_ESN_VAL")) is not None:
            oseq = int(esn["oseq_hi"]) << 32 | int(esn["oseq"])
        elif (replay := info.get_attr("XFRMA_REPLAY_VAL")) is not None:
            oseq = int(replay["oseq"])
        return SaCounters(
            bytes=int(info["cur_bytes"]),
            packets=int(info["cur_packets"]),
            last_use=float(last) if last else None,
            offload=self.offload_in_use.get((dst, spi), "no"),
            oseq=oseq,
        )

    # -- policies ----------------------------------------------------------------------

    def add_policy(self, p: PolicySpec) -> None:
        direction = DIRECTIONS[p.direction]
        for sel in selectors(p.src_ts, p.dst_ts):
            msg = xm.xfrm_userpolicy_info()
            msg.update(sel.fields())
            msg.update(
                lft_soft_byte_limit=xm.XFRM_INF,
                lft_hard_byte_limit=xm.XFRM_INF,
                lft_soft_packet_limit=xm.XFRM_INF,
                lft_hard_packet_limit=xm.XFRM_INF,
                priority=p.priority or sel.priority(),
                dir=direction,
                action=xm.XFRM_POLICY_ALLOW if p.action == "allow" else xm.XFRM_POLICY_BLOCK,
            )
            attrs: list[tuple[str, Any]] = []
            if p.action == "allow":
                attrs.append(("XFRMA_TMPL", xm.encode_tmpls([self._template(p)])))
            # The kernel keys policies by if_id and mark too: deleting needs them again.
            attrs.extend(_policy_id_attrs(p.if_id, p.mark))
            msg["attrs"] = attrs
            what = Lazy("add policy %s -> %s %s", sel.src, sel.dst, p.direction)
            # UPDPOLICY creates or replaces, so re-adding after a rekey is not an error.
            self._request(what, msg, xm.XFRM_MSG_UPDPOLICY)
            self._policies[(sel, direction, p.if_id, p.mark)] = p.reqid
            log.debug(
                "installed policy %s -> %s %s reqid %d", sel.src, sel.dst, p.direction, p.reqid
            )

    def migrate(
        self,
        old_policies: tuple[PolicySpec, ...],
        policies: tuple[PolicySpec, ...],
        old_sas: tuple[SaSpec, SaSpec],
        sas: tuple[SaSpec, SaSpec],
    ) -> None:
        """Move a tunnel-mode CHILD_SA (inbound, outbound) to new outer addresses with
        XFRM_MSG_MIGRATE, one message per policy: the kernel clones each SA found at the
        old addresses (same SPI, keys, sequence numbers and replay window) to the new ones
        and rewrites the policy's template. KernelError where the kernel cannot
        (ENOPROTOOPT without CONFIG_XFRM_MIGRATE; transport mode is refused here)."""
        if any(p.mode != "tunnel" for p in policies) or len(old_policies) != len(policies):
            raise KernelError("migrate", detail="only tunnel-mode policies are migrated")
        (old_in, old_out), (new_in, new_out) = old_sas, sas
        for old, new in zip(old_policies, policies, strict=True):
            inbound = old.direction != "out"
            sa = new_in if inbound else new_out
            entry = xm.encode_migrate(
                {
                    "old_daddr": packed(old.tmpl_dst),
                    "old_saddr": packed(old.tmpl_src),
                    "new_daddr": packed(new.tmpl_dst),
                    "new_saddr": packed(new.tmpl_src),
                    "proto": IPPROTO_ESP,
                    "mode": MODES[new.mode],
                    "reqid": new.reqid,
                    "old_family": family_of(old.tmpl_dst),
                    "new_family": family_of(new.tmpl_dst),
                },
            )
            for sel in selectors(old.src_ts, old.dst_ts):
                msg = xm.xfrm_userpolicy_id()
                msg.update(sel.fields())
                msg["dir"] = DIRECTIONS[old.direction]
                attrs: list[tuple[str, Any]] = [("XFRMA_MIGRATE", entry)]
                if sa.encap is not None:
                    attrs.append(
                        (
                            "XFRMA_ENCAP",
                            {
                                "encap_type": xm.UDP_ENCAP_ESPINUDP,
                                "encap_sport": sa.encap.sport,
                                "encap_dport": sa.encap.dport,
                            },
                        )
                    )
                if old.if_id:
                    attrs.append(("XFRMA_IF_ID", old.if_id))
                msg["attrs"] = attrs
                what = (
                    f"migrate policy {sel.src} -> {sel.dst} {old.direction}: "
                    f"{old.tmpl_src} -> {old.tmpl_dst} to {new.tmpl_src} -> {new.tmpl_dst}"
                )
                self._request(what, msg, xm.XFRM_MSG_MIGRATE)
        for old_sa, new_sa in ((old_in, new_in), (old_out, new_out)):
            key, new_key = (old_sa.dst, old_sa.spi), (new_sa.dst, new_sa.spi)
            if key in self._sas:
                self._sas.discard(key)
                self._sas.add(new_key)
                self.offload_in_use[new_key] = self.offload_in_use.pop(key, "no")
        log.debug(
            "migrated SAs %08x/%08x to %s <-> %s", new_in.spi, new_out.spi, new_in.dst, new_out.dst
        )

    @staticmethod
    def _template(p: PolicySpec) -> dict[str, Any]:
        tmpl: dict[str, Any] = {
            "id_proto": IPPROTO_ESP,
            "reqid": p.reqid,
            "mode": MODES[p.mode],
            "aalgos": xm.ALL_ALGOS,
            "ealgos": xm.ALL_ALGOS,
            "calgos": xm.ALL_ALGOS,
        }
        if p.mode == "tunnel":
            tmpl.update(
                id_daddr=packed(p.tmpl_dst), saddr=packed(p.tmpl_src), family=family_of(p.tmpl_dst)
            )
        else:
            # Transport: addresses come from the packet; the template matches by reqid.
            tmpl["family"] = family_of(p.src_ts.start)
        return tmpl

    def del_policy(self, p: PolicySpec) -> None:
        direction = DIRECTIONS[p.direction]
        for sel in selectors(p.src_ts, p.dst_ts):
            self._delete_policy(sel, direction, p.if_id, p.mark)
            self._policies.pop((sel, direction, p.if_id, p.mark), None)

    def _delete_policy(
        self, sel: Selector, direction: int, if_id: int = 0, mark: Mark = NO_MARK
    ) -> None:
        msg = xm.xfrm_userpolicy_id()
        msg.update(sel.fields())
        msg["dir"] = direction
        attrs = _policy_id_attrs(if_id, mark)
        if attrs:
            msg["attrs"] = attrs
        what = Lazy("delete policy %s -> %s dir %s", sel.src, sel.dst, direction)
        try:
            self._request(what, msg, xm.XFRM_MSG_DELPOLICY)
        except KernelError as e:
            if e.code not in (errno.ENOENT, errno.ESRCH):
                raise
            log.debug("%s: already gone", what)

    # -- events ------------------------------------------------------------------------

    def events_fileno(self) -> int | None:
        """Opens the ACQUIRE/EXPIRE listener on first use (only a daemon wants it)."""
        if self._events is None:
            try:
                self._events = XfrmEvents(self.netns)
            except KernelError as e:
                log.error("%s: no ACQUIRE/EXPIRE events (trap and expiry need them)", e)
                return None
        return self._events.fileno()

    def read_events(self) -> list[KernelEvent]:
        if self._events is None:
            return []
        out: list[KernelEvent] = []
        reqids = set(self._policies.values())
        for ev in self._events.read():
            if isinstance(ev, Expire):
                key = (ev.dst, ev.spi)
                if key not in self._sas or key in self._larval:
                    continue  # not ours, or an SPI we only reserved
                if ev.hard:
                    self._sas.discard(key)  # the kernel removed it already
            elif isinstance(ev, Acquire) and ev.reqid not in reqids:
                continue
            out.append(ev)
        return out

    # -- lifecycle ---------------------------------------------------------------------

    def flush_installed(self) -> None:
        """SAs first, then policies (strongSwan's order when a CHILD_SA goes away)."""
        errors: list[KernelError] = []
        for dst, spi in list(self._sas):
            try:
                self.del_sa(dst, spi)
            except KernelError as e:
                errors.append(e)
        for key in list(self._policies):
            try:
                self._delete_policy(*key)
                self._policies.pop(key, None)
            except KernelError as e:
                errors.append(e)
        if errors:
            raise KernelError(f"flush: {len(errors)} deletions failed; first: {errors[0]}")

    def remove_stale(self) -> tuple[int, int]:
        """SAs and policies with a pike reqid that this instance did not install: what a
        killed run left (a SIGKILL or a crash skips ``flush_installed``)."""
        sas = 0
        for info in self._nl.dump("dump SAs", xm.xfrm_usersa_id(), xm.XFRM_MSG_GETSA):
            if "reqid" not in info or not is_pike_reqid(int(info["reqid"])):
                continue
            msg = xm.xfrm_usersa_id()
            msg.update(
                daddr=info["id_daddr"],
                spi=info["id_spi"],
                family=info["family"],
                proto=info["id_proto"],
            )
            if (self._key_of(info)) in self._sas:
                continue
            mark = info.get_attr("XFRMA_MARK")
            if mark:
                msg["attrs"] = [("XFRMA_MARK", {"v": mark["v"], "m": mark["m"]})]
            what = f"delete stale SA {int(info['id_spi']):08x} reqid {info['reqid']:#x}"
            try:
                self._request(what, msg, xm.XFRM_MSG_DELSA)
                sas += 1
            except KernelError as e:
                if e.code not in (errno.ESRCH, errno.ENOENT):
                    raise
        policies = 0
        # A new run counts reqids from the same base: ours are told apart by selector.
        ours = {_policy_key(sel.fields(), d, if_id, mark) for sel, d, if_id, mark in self._policies}
        dumped = self._nl.dump("dump policies", xm.xfrm_userpolicy_id(), xm.XFRM_MSG_GETPOLICY)
        for info in dumped:
            tmpls = xm.decode_tmpls(info.get_attr("XFRMA_TMPL") or b"")
            if not any(is_pike_reqid(int(t["reqid"])) for t in tmpls):
                continue
            if_id = int(info.get_attr("XFRMA_IF_ID") or 0)
            got = info.get_attr("XFRMA_MARK")
            mark = (int(got["v"]), int(got["m"])) if got else NO_MARK
            if _policy_key(info, int(info["dir"]), if_id, mark) in ours:
                continue
            pol_id = xm.xfrm_userpolicy_id(index=info["index"], dir=info["dir"])
            attrs = _policy_id_attrs(if_id, mark)
            if attrs:  # the kernel finds a policy by index only with its if_id and mark
                pol_id["attrs"] = attrs
            try:
                self._request(f"delete stale policy {info['index']}", pol_id, xm.XFRM_MSG_DELPOLICY)
                policies += 1
            except KernelError as e:
                if e.code not in (errno.ESRCH, errno.ENOENT):
                    raise
        return sas, policies

    @staticmethod
    def _key_of(info: Any) -> SaKey:
        family = int(info["family"])
        raw = bytes(info["id_daddr"])
        dst = ip_address(raw[:4] if family == socket.AF_INET else raw[:16])
        return dst, int(info["id_spi"])

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        self._nl.close()

    def __enter__(self) -> XfrmKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mark_attr(mark: Mark) -> dict[str, int]:
    return {"v": mark[0], "m": mark[1]}


def _policy_id_attrs(if_id: int, mark: Mark) -> list[tuple[str, Any]]:
    attrs: list[tuple[str, Any]] = []
    if if_id:
        attrs.append(("XFRMA_IF_ID", if_id))
    if mark != NO_MARK:
        attrs.append(("XFRMA_MARK", _mark_attr(mark)))
    return attrs


def _policy_key(sel: Any, direction: int, if_id: int, mark: Mark) -> tuple[object, ...]:
    """A policy's identity (selector, direction, if_id, mark) from our fields or a dump."""
    return (
        int(sel["sel_family"]),
        bytes(sel["sel_saddr"]).ljust(16, b"\0"),
        bytes(sel["sel_daddr"]).ljust(16, b"\0"),
        int(sel["sel_prefixlen_s"]),
        int(sel["sel_prefixlen_d"]),
        int(sel["sel_proto"]),
        int(sel["sel_sport"]),
        int(sel["sel_dport"]),
        direction,
        if_id,
        mark,
    )


def supported_encr() -> frozenset[int]:
    """ENCR transform IDs this backend can install."""
    return frozenset(AEADS) | frozenset(CIPHERS)


def supported_integ() -> frozenset[int]:
    return frozenset(INTEGS) | {IntegId.NONE}
