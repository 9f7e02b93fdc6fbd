"""The per-interface raw IPPROTO_VRRP socket, one small function per socket option.

Why each option is there (protocol.md §7, bpf.md §11, keepalived ``vrrp_if.c``):

- ``IP_MULTICAST_ALL = 0``: otherwise a raw socket also receives 224.0.0.18 traffic that
  some *other* socket joined on *another* interface.
- ``SO_BINDTODEVICE``: adverts are link-local; only this interface's count.
- ``IP_ADD_MEMBERSHIP`` with ``struct ip_mreqn`` and the ifindex: join 224.0.0.18 on exactly
  this interface (by index, since the interface's address may be absent or change).
- ``IP_MULTICAST_IF``: send adverts out of this interface, from our primary address (the
  source the VRRPv3 pseudo-header checksum was computed with).
- ``IP_MULTICAST_TTL = IP_TTL = 255``: RFC 9568 §5.1.1.3; receivers drop anything else.
- ``IP_MULTICAST_LOOP = 0``: our own adverts must not come back as "a peer".
- non-blocking: the socket is read from ``loop.add_reader`` and written without waiting.

Unicast adverts (draft-abinabraham-vrrp-unicast) leave from the same socket with
``sendmsg`` and an ``IP_PKTINFO`` control message naming the interface and the source
address: ``IP_MULTICAST_IF`` only applies to multicast, and ``bind()`` would also filter
what the socket receives (a raw socket bound to an address gets only datagrams sent to
it, never 224.0.0.18). ``IP_TTL = 255`` covers them (the draft keeps TTL 255).

The kernel builds the IP header (no ``IP_HDRINCL``): we only hand it the VRRP message.
"""

from __future__ import annotations

import errno
import socket
import struct
from ipaddress import IPv4Address
from typing import Final

from agent.core.constants import IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_TTL
from agent.host.errors import HostError

#: ``IP_MULTICAST_ALL`` from ``<linux/in.h>``; Python's socket module does not export it.
IP_MULTICAST_ALL: Final = 49
#: ``IP_PKTINFO`` from ``<linux/in.h>`` (Python 3.11's socket module lacks it too).
IP_PKTINFO: Final = 8


def _ip_mreqn(group: IPv4Address, address: IPv4Address, ifindex: int) -> bytes:
    """Pack ``struct ip_mreqn`` from ``<linux/in.h>``::

    struct ip_mreqn {
        struct in_addr imr_multiaddr;   /* IP multicast group address */
        struct in_addr imr_address;     /* IP address of local interface */
        int            imr_ifindex;     /* interface index */
    };
    """
    return struct.pack("=4s4si", group.packed, address.packed, ifindex)


def disable_multicast_all(sock: socket.socket) -> None:
    """``int`` option: receive only the groups this socket joined (default is 1 = all)."""
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)


def bind_to_device(sock: socket.socket, ifname: str) -> None:
    """``char[IFNAMSIZ]`` option: the interface name, NUL-terminated."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode() + b"\0")


def join_vrrp_group(sock: socket.socket, ifindex: int) -> None:
    """Join 224.0.0.18 on the interface with index ``ifindex`` (``struct ip_mreqn``)."""
    mreqn = _ip_mreqn(VRRP_GROUP_V4, IPv4Address(0), ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)


def set_multicast_interface(sock: socket.socket, ifindex: int, source: IPv4Address) -> None:
    """Send multicast out of ``ifindex`` with ``source`` as IP source (``struct ip_mreqn``).

    The kernel uses ``imr_address`` as the source of multicast it sends from this socket,
    which keeps the source equal to the address the VRRPv3 checksum covers even after
    VIPs were added to the interface.
    """
    mreqn = _ip_mreqn(IPv4Address(0), source, ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)


def set_multicast_ttl(sock: socket.socket, ttl: int = VRRP_TTL) -> None:
    """``int`` option (Linux accepts an int or a byte): TTL of multicast we send."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)


def set_unicast_ttl(sock: socket.socket, ttl: int = VRRP_TTL) -> None:
    """``int`` option: TTL of anything else sent from the socket; 255 for consistency."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def disable_multicast_loop(sock: socket.socket) -> None:
    """``int`` option: do not deliver our own multicast back to local sockets."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)


def open_vrrp_socket(
    ifname: str, ifindex: int, source: IPv4Address, *, join: bool = True
) -> socket.socket:
    """Open the raw VRRP socket of one interface, configured as the module docstring lists.

    With ``join=False`` the caller joins 224.0.0.18 later (:func:`join_vrrp_group`), after
    attaching the eBPF filter, so that no unfiltered advert is ever queued.

    Raises :class:`HostError` naming the interface when the capability is missing or the
    interface is gone, instead of letting a bare ``PermissionError`` escape.
    """
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
    except PermissionError as exc:
        raise HostError(
            f"{ifname}: opening a raw VRRP socket needs the CAP_NET_RAW capability "
            f"(run as root or grant CAP_NET_RAW): {exc.strerror}"
        ) from None
    try:
        disable_multicast_all(sock)
        bind_to_device(sock, ifname)
        if join:
            join_vrrp_group(sock, ifindex)
        set_multicast_interface(sock, ifindex, source)
        set_multicast_ttl(sock)
        set_unicast_ttl(sock)
        disable_multicast_loop(sock)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _socket_error(ifname, exc) from None
    return sock


def _socket_error(ifname: str, exc: OSError) -> HostError:
    if exc.errno in (errno.EPERM, errno.EACCES):
        return HostError(
            f"{ifname}: configuring the VRRP socket needs the CAP_NET_RAW capability: "
            f"{exc.strerror}"
        )
    if exc.errno == errno.ENODEV:
        return HostError(f"{ifname}: no such interface")
    return HostError(f"{ifname}: configuring the VRRP socket failed: {exc.strerror}")


def send_to_vrrp_group(sock: socket.socket, message: bytes) -> None:
    """Send one VRRP message to 224.0.0.18; the kernel adds the IP header (TTL 255).

    Never blocks: a full send buffer raises ``BlockingIOError`` for the caller to count.
    """
    sock.sendto(message, (str(VRRP_GROUP_V4), 0))


def _in_pktinfo(ifindex: int, source: IPv4Address) -> bytes:
    """Pack ``struct in_pktinfo`` from ``<linux/in.h>``::

    struct in_pktinfo {
        int            ipi_ifindex;   /* interface to send from */
        struct in_addr ipi_spec_dst;  /* source address of the datagram */
        struct in_addr ipi_addr;      /* (receive only) header destination */
    };
    """
    return struct.pack("=i4s4s", ifindex, source.packed, bytes(4))


def send_to_peer(
    sock: socket.socket, ifindex: int, source: IPv4Address, message: bytes, peer: IPv4Address
) -> None:
    """Send one VRRP message to a unicast peer, out of ``ifindex`` and from ``source``.

    ``source`` must be the address the VRRPv3 checksum was computed with (``unicast_src``
    or the primary address); the kernel adds the IP header with TTL 255 (``IP_TTL``).
    Never blocks, like :func:`send_to_vrrp_group`.
    """
    control = [(socket.IPPROTO_IP, IP_PKTINFO, _in_pktinfo(ifindex, source))]
    sock.sendmsg([message], control, 0, (str(peer), 0))


def send_advert(
    sock: socket.socket,
    ifindex: int,
    source: IPv4Address,
    message: bytes,
    destination: IPv4Address,
) -> None:
    """Send one advert to 224.0.0.18 or to one unicast peer (the driver's ``send_advert``
    once the socket, interface and source are bound with :func:`functools.partial`)."""
    if destination == VRRP_GROUP_V4:
        send_to_vrrp_group(sock, message)
    else:
        send_to_peer(sock, ifindex, source, message, destination)
