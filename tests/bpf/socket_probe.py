"""Child process of test_socket.py: the filter on a real raw socket, in a private netns.

Run as ``unshare --net python -m tests.bpf.socket_probe``: the anonymous network namespace
holds only ``lo`` and disappears with the process, so no traffic leaves it. Adverts are
sent with an ``IPPROTO_RAW`` socket (we write the IP header, TTL 255 included) from
127.0.0.2 to 127.0.0.1 and received on an ``IPPROTO_VRRP`` socket carrying the filter.
Prints one JSON object for the parent to check.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
from ipaddress import IPv4Address

from agent.core.constants import IPPROTO_VRRP
from agent.core.packet import ReceivePolicy, VridPolicy, encode_advertisement, encode_ipv4_datagram
from agent.host.bpf import load_filter

LOOPBACK_IFINDEX = 1
SOURCE = IPv4Address("127.0.0.2")
DESTINATION = IPv4Address("127.0.0.1")


def advert(vrid: int, priority: int, ttl: int = 255) -> bytes:
    message = encode_advertisement(
        version=3,
        vrid=vrid,
        priority=priority,
        interval_cs=100,
        addresses=(IPv4Address("10.9.9.9"),),
        source=SOURCE,
        destination=DESTINATION,
    )
    return encode_ipv4_datagram(message, source=SOURCE, destination=DESTINATION, ttl=ttl)


def receive_all(sock: socket.socket) -> list[str]:
    """Everything queued on ``sock`` until it stays quiet for 0.2 s."""
    received = []
    while select.select([sock], [], [], 0.2)[0]:
        received.append(sock.recv(2048).hex())
    return received


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    vrrp_filter = load_filter()
    # Unicast mode (draft-abinabraham-vrrp-unicast): the adverts go from peer to us.
    policy = ReceivePolicy(
        {51: VridPolicy(3, 100, unicast_peers=frozenset({SOURCE}))},
        own_addresses=frozenset({DESTINATION}),
    )
    vrrp_filter.configure_interface(LOOPBACK_IFINDEX, policy)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as tx,
    ):
        vrrp_filter.attach(rx.fileno())  # a bare fd, as a driver may hold it
        sent = [advert(51, 150), advert(51, 150, ttl=64), advert(99, 150), advert(51, 160)]
        for datagram in sent:
            tx.sendto(datagram, (str(DESTINATION), 0))
        filtered = receive_all(rx)
        vrrp_filter.detach(rx)
        tx.sendto(sent[1], (str(DESTINATION), 0))
        unfiltered = receive_all(rx)
    peer = vrrp_filter.peer(LOOPBACK_IFINDEX, 51)
    result = {
        "sent": [datagram.hex() for datagram in sent],
        "filtered": filtered,
        "unfiltered": unfiltered,
        "drops": {reason.value: count for reason, count in vrrp_filter.drop_counts().items()},
        "accepted": vrrp_filter.accepted_count(),
        "peer": None if peer is None else [str(peer.master), peer.priority, peer.count],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
