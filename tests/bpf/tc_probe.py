"""Child of test_tc.py, run inside the test's network namespace (``ip netns exec``).

``python -m tests.bpf.tc_probe MODE`` with the veth pair ``vba`` -> ``vbb`` made by the test:

- ``cycle``: load the filter, attach it to vbb's clsact ingress, send real frames from vba,
  report the counters, the peer record and what an unfiltered raw socket received, detach.
- ``hold``: the same, but stay attached and wait to be killed (``kill -9``).
- ``clean``: :func:`~agent.host.bpf.remove_stale_filters` on vbb; report how many it removed.

Each prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from agent.core.constants import IPPROTO_VRRP
from agent.core.packet import (
    ReceivePolicy,
    VridPolicy,
    encode_advertisement,
    encode_ipv4_datagram,
)
from agent.host.bpf import load_filter, remove_stale_filters

SENDER, RECEIVER = "vba", "vbb"
PEER = IPv4Address("10.77.0.9")
LOCAL = IPv4Address("10.77.0.2")
ETH_P_IP = 0x0800
IPPROTO_UDP = 17


def _frame(datagram: bytes) -> bytes:
    mac = bytes.fromhex(Path(f"/sys/class/net/{RECEIVER}/address").read_text().replace(":", ""))
    return mac + bytes.fromhex("020000000009") + ETH_P_IP.to_bytes(2, "big") + datagram


def _traffic() -> list[bytes]:
    """A valid advert, one with TTL 64, one for an unknown VRID, and a UDP packet."""

    def ip(message: bytes, ttl: int = 255, protocol: int = IPPROTO_VRRP) -> bytes:
        return encode_ipv4_datagram(
            message, source=PEER, destination=LOCAL, ttl=ttl, protocol=protocol
        )

    def advert(vrid: int) -> bytes:
        return encode_advertisement(
            version=3,
            vrid=vrid,
            priority=150,
            interval_cs=100,
            addresses=(IPv4Address("10.77.0.100"),),
            source=PEER,
            destination=LOCAL,  # unicast: no group join needed for the raw socket
        )

    return [
        ip(advert(51)),
        ip(advert(51), ttl=64),
        ip(advert(99)),
        ip(b"\0" * 16, protocol=IPPROTO_UDP),
    ]


def _received(sock: socket.socket) -> int:
    count = 0
    while select.select([sock], [], [], 0.3)[0]:
        sock.recv(2048)
        count += 1
    return count


async def _attach_and_send(hold: bool) -> dict[str, Any]:
    vrrp_filter = load_filter()
    ifindex = socket.if_nametoindex(RECEIVER)
    # Unicast mode (draft-abinabraham-vrrp-unicast): the adverts go from PEER to us.
    policy = ReceivePolicy(
        {51: VridPolicy(3, 100, unicast_peers=frozenset({PEER}))},
        own_addresses=frozenset({LOCAL}),
    )
    vrrp_filter.configure_interface(ifindex, policy)
    attachment = await vrrp_filter.attach_tc(RECEIVER)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP) as unfiltered,
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sender,
    ):
        unfiltered.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, RECEIVER.encode())
        sender.bind((SENDER, 0))
        for datagram in _traffic():
            sender.send(_frame(datagram))
        received = await asyncio.to_thread(_received, unfiltered)
    peer = vrrp_filter.peer(ifindex, 51)
    result = {
        "drops": {reason.value: n for reason, n in vrrp_filter.drop_counts().items() if n},
        "accepted": vrrp_filter.accepted_count(),
        "peer": None if peer is None else [str(peer.master), peer.priority, peer.count],
        "unfiltered_socket_received": received,
    }
    if not hold:
        await attachment.close()
    return result


def main(mode: str) -> None:
    if mode == "clean":
        print(json.dumps({"removed": asyncio.run(remove_stale_filters(RECEIVER))}), flush=True)
        return
    print(json.dumps(asyncio.run(_attach_and_send(hold=mode == "hold"))), flush=True)
    if mode == "hold":
        while True:  # attached until the test kills us
            time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1])
