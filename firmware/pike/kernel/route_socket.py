"""Routing netlink queries and link changes over a NETLINK_ROUTE socket: our addresses,
``ip route get``, tunnel interfaces. Blocking calls of a few hundred microseconds."""

from __future__ import annotations

import errno

from pike.kernel import rtnetlink as rt
from pike.kernel.netlink import NLM_F_CREATE, NLM_F_EXCL, Message, NetlinkError
from pike.kernel.nlsocket import NetlinkSocket


class RouteSocket:
    """Raises NetlinkError when the kernel refuses a request, OSError when the socket
    fails; ``netns`` as in NetlinkSocket."""

    def __init__(self, netns: str | None = None) -> None:
        self._sock = NetlinkSocket(rt.NETLINK_ROUTE, netns)

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def addresses(self) -> list[Message]:
        """Every address (RTM_NEWADDR bodies), both families."""
        answer = self._sock.request(rt.RTM_GETADDR, rt.ifaddrmsg().payload(), ack=False, dump=True)
        return [rt.ifaddrmsg.decode(p) for h, p in answer if h.type == rt.RTM_NEWADDR]

    def route_get(self, dst: str) -> list[Message]:
        """The route toward ``dst`` (NetlinkError ENETUNREACH etc. when there is none)."""
        answer = self._sock.request(rt.RTM_GETROUTE, rt.route_get(dst).payload(), ack=False)
        return [rt.rtmsg.decode(p) for h, p in answer if h.type == rt.RTM_NEWROUTE]

    def link(self, *, name: str | None = None, index: int = 0) -> Message | None:
        """One link by name or index; None when there is no such interface."""
        msg = rt.ifinfomsg(index=index)
        if name is not None:
            msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            answer = self._sock.request(rt.RTM_GETLINK, msg.payload(), ack=False)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        links = [rt.ifinfomsg.decode(p) for h, p in answer if h.type == rt.RTM_NEWLINK]
        return links[0] if links else None

    def link_name(self, index: int) -> str | None:
        found = self.link(index=index)
        return None if found is None else str(found.get_attr("IFLA_IFNAME"))

    def add_link(self, body: Message) -> None:
        self._sock.request(rt.RTM_NEWLINK, body.payload(), flags=NLM_F_CREATE | NLM_F_EXCL)

    def del_link(self, index: int) -> None:
        self._sock.request(rt.RTM_DELLINK, rt.ifinfomsg(index=index).payload())

    def set_up(self, index: int) -> None:
        body = rt.ifinfomsg(index=index, flags=rt.IFF_UP, change=rt.IFF_UP)
        self._sock.request(rt.RTM_NEWLINK, body.payload())
