"""Sending gratuitous ARP frames (built by :mod:`agent.core.arp`) over AF_PACKET.

ARP lives below IP, so no IP socket can send it; pyroute2 has no ARP sender either
(bpf.md §9). A raw ``AF_PACKET`` socket bound to the interface sends the finished
Ethernet frame as is. Protocol 0 means the socket receives nothing, so it never needs
reading. The socket is non-blocking: GARPs are best effort (the next advert or refresh
repeats them), and the event loop must never wait on a full transmit queue.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable
from ipaddress import IPv4Interface

from agent.core.arp import gratuitous_arp
from agent.host.errors import HostError

log = logging.getLogger("agent")


class GarpSender:
    """One AF_PACKET socket per interface, sending GARPs with the interface's MAC."""

    def __init__(self, ifname: str, mac: bytes) -> None:
        self.ifname = ifname
        self.mac = mac
        #: Frames handed to the kernel; frames dropped because the queue was full.
        self.sent = 0
        self.dropped = 0
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise HostError(
                f"{ifname}: sending gratuitous ARP needs the CAP_NET_RAW capability: {exc.strerror}"
            ) from None
        try:
            self._sock.bind((ifname, 0))
            self._sock.setblocking(False)
        except OSError as exc:
            self._sock.close()
            reason = "no such interface" if exc.errno == errno.ENODEV else exc.strerror
            raise HostError(f"{ifname}: cannot open the GARP socket: {reason}") from None

    def send(self, vips: Iterable[IPv4Interface], count: int) -> None:
        """Send ``count`` GARPs for each VIP, back to back (keepalived's default spacing).

        A frame the kernel refuses (link down, queue full) is counted, and the burst
        produces one warning, not one per frame.
        """
        frames = [gratuitous_arp(self.mac, vip.ip) for vip in vips]
        failed: OSError | None = None
        for _ in range(count):
            for frame in frames:
                try:
                    self._sock.send(frame)
                except OSError as exc:
                    self.dropped += 1
                    failed = exc
                else:
                    self.sent += 1
        if failed is not None:
            log.warning("%s: gratuitous ARP not sent: %s", self.ifname, failed.strerror)

    def close(self) -> None:
        self._sock.close()
