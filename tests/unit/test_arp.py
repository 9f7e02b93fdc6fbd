"""The gratuitous ARP builder, cross-checked against scapy's independent encoder."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.l2 import ARP, Ether

from agent.core.arp import MIN_FRAME_LEN, gratuitous_arp

MAC = bytes.fromhex("02005e0001ab")
VIP = IPv4Address("192.0.2.100")


def test_frame_matches_scapy_byte_for_byte() -> None:
    expected = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:5e:00:01:ab")
        / ARP(
            op="who-has",
            hwsrc="02:00:5e:00:01:ab",
            psrc=str(VIP),
            hwdst="00:00:00:00:00:00",
            pdst=str(VIP),
        )
    ).ljust(MIN_FRAME_LEN, b"\x00")
    assert gratuitous_arp(MAC, VIP) == expected


def test_scapy_decodes_a_broadcast_request_with_sender_ip_equal_to_target_ip() -> None:
    frame = Ether(gratuitous_arp(MAC, VIP))
    assert len(gratuitous_arp(MAC, VIP)) == 60
    assert frame.dst == "ff:ff:ff:ff:ff:ff"
    assert frame.src == "02:00:5e:00:01:ab"
    arp = frame[ARP]
    assert arp.op == 1
    assert arp.hwsrc == "02:00:5e:00:01:ab"
    assert arp.hwdst == "00:00:00:00:00:00"
    assert arp.psrc == arp.pdst == "192.0.2.100"


def test_a_mac_that_is_not_six_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        gratuitous_arp(b"\x00" * 5, VIP)
