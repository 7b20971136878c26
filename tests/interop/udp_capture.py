"""A raw AF_PACKET capture of IKE/ESP-in-UDP datagrams, run inside a namespace.

``[sys.executable, "-c", CAPTURE, DEV, SECONDS, PORTS, HEAD]``: prints ``ready``, then for
SECONDS one JSON line per IPv4 UDP datagram on DEV (both ways: ETH_P_ALL) from or to one
of PORTS (comma separated, default ``4500``): time, src, sport, dst, dport, the payload's
length and its hex (the first HEAD octets, default 0: all of it).
"""

from __future__ import annotations

CAPTURE = r"""
import json, socket, struct, sys, time
dev, duration = sys.argv[1], float(sys.argv[2])
ports = {int(p) for p in (sys.argv[3] if len(sys.argv) > 3 else "4500").split(",")}
head = int(sys.argv[4]) if len(sys.argv) > 4 else 0
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: both ways
s.bind((dev, 0))
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + duration
while time.monotonic() < end:
    try:
        frame, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    if len(ip) < 28 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
    if sport not in ports and dport not in ports:
        continue
    size = ulen - 8
    print(json.dumps({
        "t": time.monotonic(), "src": socket.inet_ntoa(ip[12:16]), "sport": sport,
        "dst": socket.inet_ntoa(ip[16:20]), "dport": dport,
        "data": ip[ihl + 8:ihl + 8 + (min(size, head) if head else size)].hex(), "len": size,
    }), flush=True)
"""
