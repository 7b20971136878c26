"""Host tier: floods before authentication while strongSwan connects (issue 13).

``left`` runs piked as responder for 192.0.2.0/24; ``right`` runs charon (192.0.2.2) and,
in the same namespace, two bounded floods that stop by themselves and go only to piked's
address in this lab:

- IKE_SA_INIT requests with charon's own address (other SPIs and ports) that never echo a
  COOKIE: what a spoofer sending with a real peer's address can do;
- a cookie-echoing source at 192.0.2.99 (an extra address on right's wan0).

charon must get its IKE SA up within 2 s of asking; piked holds at most its
block_threshold of proven plus unproven SAs from the echoing address.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .strongswan import Child, Connection, Secret
from .test_piked_strongswan import BRANCH, HQ, PSK, charon_conn

FLOOD = textwrap.dedent(
    """
    import socket, sys, time
    from pike.ikev2.engine import Ikev2Engine
    from pike.policy.ipsec import KernelCaps
    from pike.policy.loader import load_config_text
    from pike.wire.codec import decode_message, encode_message
    from pike.wire.constants import NotifyType
    from pike.wire.payloads import NotifyPayload

    src, count, rate, echo = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
    text = '''
    [daemon]
    control_socket = "/tmp/unused.sock"
    [connections.x]
    local_addrs = ["%s"]
    remote_addrs = ["192.0.2.1"]
    proposals = ["aes128gcm16-prfsha256-x25519"]
    local = { auth = "psk", id = "flood.example" }
    remote = { auth = "psk", id = "branch1.example.net" }
    [connections.x.children.c]
    local_ts = ["10.9.0.0/24"]
    remote_ts = ["10.1.0.0/24"]
    esp_proposals = ["aes128gcm16"]
    [secrets.s]
    secret = "x"
    ''' % src
    import os
    eng = Ikev2Engine(load_config_text(text), random=os.urandom, kernel_caps=KernelCaps(True))
    eng.initiate("x", 0.0)
    init = eng.next_action().data
    socks = []
    t0 = time.monotonic()
    answered = 0
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.settimeout(0.2 if echo else 0.0)
        data = i.to_bytes(8, "big") + init[8:]
        s.sendto(data, ("192.0.2.1", 500))
        if echo:
            try:
                resp = decode_message(s.recv(4096))
            except OSError:
                resp = None
            cookie = resp.notify(NotifyType.COOKIE) if resp is not None else None
            if cookie is not None:
                msg = decode_message(data)
                msg.payloads.insert(0, NotifyPayload(NotifyType.COOKIE, cookie.data))
                s.sendto(encode_message(msg), ("192.0.2.1", 500))
                answered += 1
        s.close()
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f"sent {count} from {src} in {time.monotonic() - t0:.1f} s, {answered} cookies echoed")
    """
)


@pytest.mark.interop
def test_strongswan_connects_during_floods(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    secret = Secret("hq", PSK, [BRANCH, HQ])
    charon = make_charon(
        gateways.right, "charon", charon_conn(), secret, libipsec=gateways.libipsec
    )
    conn = Connection(
        "hq",
        ["192.0.2.1"],
        ["192.0.2.0/24"],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=BRANCH,
        remote_id=HQ,
        children=[Child("lan", ["10.1.0.0/24"], ["10.2.0.0/24"], ("aes128gcm16",))],
    )
    piked = make_piked(gateways.left, "piked", conn, secret)
    gateways.right.ip("addr", "add", "192.0.2.99/24", "dev", "wan0")
    floods = [
        gateways.right.popen([sys.executable, "-c", FLOOD, "192.0.2.2", "1500", "500", "0"]),
        gateways.right.popen([sys.executable, "-c", FLOOD, "192.0.2.99", "300", "100", "1"]),
    ]
    try:
        time.sleep(1.0)  # both floods under way
        t0 = time.monotonic()
        charon.initiate("lan", ike="hq", check=False)
        sa = charon.wait_established("hq", timeout=15)
        took = time.monotonic() - t0
        p = piked.wait_established("hq", timeout=5)
        assert (p.initiator_spi, p.responder_spi) == (sa.initiator_spi, sa.responder_spi)
        held = [s for s in piked.list_sas_json() if s["state"] == "CONNECTING"]
        print(f"charon up in {took:.2f} s during the floods; piked holds {len(held)} half-open")
        assert took < 2.0, took
        assert len(held) <= 10 + 10  # block_threshold x 2 per address, two addresses
    finally:
        for f in floods:
            try:
                f.wait(timeout=30)
            except Exception:
                from .netns import kill_pid

                kill_pid(f.pid)
    log = piked.log_text()
    assert "Traceback" not in log
    assert "half_open_blocked" in log or "block_threshold" in log
