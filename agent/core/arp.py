"""Gratuitous ARP frames announcing a virtual IPv4 address.

A new master tells the LAN that the VIP now lives behind its MAC address (RFC 9568 §6.4.1,
RFC 3768 §6.4.1: "broadcast a gratuitous ARP request containing the virtual router MAC
address for each IP address associated with the virtual router"). We send the interface's
own MAC rather than the VRRP virtual MAC, as keepalived does by default (protocol.md §9).

Frame layout (Ethernet II, then RFC 826 ARP for IPv4 over Ethernet)::

    dst MAC ff:ff:ff:ff:ff:ff | src MAC | ethertype 0x0806
    htype=1 | ptype=0x0800 | hlen=6 | plen=4 | oper=1 (request)
    sender MAC = src MAC | sender IP = VIP | target MAC = 0 | target IP = VIP

A request (not a reply) because every host must process a request for its cache, and
errata 7947/7949 confirm the VIP, not a MAC, is the protocol address in both fields.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import Final

#: Ethernet broadcast: every host on the segment updates its ARP cache.
BROADCAST_MAC: Final = b"\xff" * 6
#: EtherType of ARP (RFC 826).
ETHERTYPE_ARP: Final = 0x0806
#: Minimum Ethernet frame without FCS; AF_PACKET does not pad for us.
MIN_FRAME_LEN: Final = 60

_ARP_HTYPE_ETHERNET = 1
_ARP_PTYPE_IPV4 = 0x0800
_ARP_OPER_REQUEST = 1
_ZERO_MAC = b"\x00" * 6


def gratuitous_arp(mac: bytes, vip: IPv4Address) -> bytes:
    """The broadcast ARP request by which ``mac`` claims ``vip``, padded to 60 bytes."""
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(mac)}")
    ethernet = BROADCAST_MAC + mac + struct.pack("!H", ETHERTYPE_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        _ARP_HTYPE_ETHERNET,
        _ARP_PTYPE_IPV4,
        6,
        4,
        _ARP_OPER_REQUEST,
        mac,
        vip.packed,
        _ZERO_MAC,
        vip.packed,
    )
    return (ethernet + arp).ljust(MIN_FRAME_LEN, b"\x00")
