"""Cross-check against scapy's independent VRRP (v2) and VRRPv3 layers, checksums included.

scapy computes the VRRPv3 checksum with the IPv4 pseudo-header (``in4_chksum``), like
keepalived, and the VRRPv2 one over the message only. (scapy.contrib.carp is deliberately
not imported: it unbinds the VRRP layers from IP for the whole process.)
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum

from agent.core.packet import (
    Advertisement,
    AuthType,
    ChecksumForm,
    ReceivePolicy,
    VridPolicy,
    classify,
    encode_advertisement,
    encode_ipv4_datagram,
)
from tests.corpus import PEER, VECTORS

GROUP = "224.0.0.18"
ADDRESSES = (IPv4Address("192.0.2.100"), IPv4Address("10.1.2.3"), IPv4Address("255.0.0.1"))


def scapy_ip(source: IPv4Address = PEER) -> Any:
    return IP(src=str(source), dst=GROUP, ttl=255, tos=0xC0, id=0)


def auth_words(password: bytes) -> dict[str, int]:
    """scapy models the 8-byte VRRPv2 auth data as two 32-bit integers."""
    padded = password.ljust(8, b"\x00")
    return {"auth1": int.from_bytes(padded[:4]), "auth2": int.from_bytes(padded[4:])}


@pytest.mark.parametrize(
    ("vrid", "priority", "interval_cs", "count"),
    [(1, 100, 100, 1), (51, 150, 10, 3), (255, 255, 4095, 2), (200, 0, 1, 1)],
)
def test_scapy_built_vrrpv3_is_accepted(
    vrid: int, priority: int, interval_cs: int, count: int
) -> None:
    addresses = ADDRESSES[:count]
    packet = scapy_ip() / VRRPv3(
        vrid=vrid, priority=priority, adv=interval_cs, addrlist=[str(a) for a in addresses]
    )
    policy = ReceivePolicy({vrid: VridPolicy(version=3, advert_interval_cs=100)})
    assert classify(bytes(packet), policy) == Advertisement(
        3, vrid, priority, interval_cs, addresses, PEER, ChecksumForm.PSEUDO_HEADER
    )


@pytest.mark.parametrize(
    ("vrid", "priority", "seconds", "count", "password"),
    [(1, 100, 1, 1, None), (54, 150, 2, 2, b"s3cr3t"), (255, 0, 255, 3, b"12345678")],
)
def test_scapy_built_vrrpv2_is_accepted(
    vrid: int, priority: int, seconds: int, count: int, password: bytes | None
) -> None:
    addresses = ADDRESSES[:count]
    auth: dict[str, Any] = {} if password is None else {"authtype": 1, **auth_words(password)}
    packet = scapy_ip() / VRRP(
        vrid=vrid, priority=priority, adv=seconds, addrlist=[str(a) for a in addresses], **auth
    )
    vrid_policy = VridPolicy(
        version=2,
        advert_interval_cs=seconds * 100,
        auth_type=AuthType.NONE if password is None else AuthType.SIMPLE,
        auth_password=password or b"",
    )
    assert classify(bytes(packet), ReceivePolicy({vrid: vrid_policy})) == Advertisement(
        2, vrid, priority, seconds * 100, addresses, PEER, ChecksumForm.MESSAGE_ONLY
    )


def dissect(datagram: bytes) -> Any:
    packet = IP(datagram)
    return packet[VRRPv3] if VRRPv3 in packet else packet[VRRP]


def scapy_recomputed(datagram: bytes) -> bytes:
    """The datagram as scapy builds it from its own dissection, all checksums recomputed."""
    packet = IP(datagram)
    del packet.chksum
    layer = packet[VRRPv3] if VRRPv3 in packet else packet[VRRP]
    del layer.chksum
    return bytes(packet)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_scapy_dissects_the_keepalived_captures_like_the_sidecar(name: str) -> None:
    """An independent check of the golden vectors themselves."""
    datagram, sidecar = VECTORS[name]
    layer = dissect(datagram)
    vrrp = sidecar["vrrp"]
    interval = layer.adv if vrrp["version"] == 3 else layer.adv * 100
    assert (layer.version, layer.vrid, layer.priority, interval) == (
        vrrp["version"],
        vrrp["vrid"],
        vrrp["priority"],
        vrrp["interval_cs"],
    )
    assert layer.addrlist == vrrp["addresses"]
    assert scapy_recomputed(datagram) == datagram


versions = st.sampled_from([2, 3])
addresses_st = st.lists(st.integers(0, 2**32 - 1).map(IPv4Address), min_size=1, max_size=16).map(
    tuple
)


@settings(max_examples=60, deadline=None)
@given(
    version=versions,
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    seconds=st.integers(1, 255),
    centiseconds=st.integers(1, 4095),
    addresses=addresses_st,
    source=st.integers(1, 2**32 - 1).map(IPv4Address),
    password=st.none() | st.binary(max_size=8),
)
def test_our_encoding_dissected_by_scapy(
    version: int,
    vrid: int,
    priority: int,
    seconds: int,
    centiseconds: int,
    addresses: tuple[IPv4Address, ...],
    source: IPv4Address,
    password: bytes | None,
) -> None:
    """scapy reads back every field, and recomputing every checksum changes no byte."""
    interval_cs = seconds * 100 if version == 2 else centiseconds
    auth = AuthType.NONE if password is None or version == 3 else AuthType.SIMPLE
    message = encode_advertisement(
        version=version,
        vrid=vrid,
        priority=priority,
        interval_cs=interval_cs,
        addresses=addresses,
        source=source,
        auth_type=auth,
        auth_password=password if auth is AuthType.SIMPLE and password else b"",
    )
    datagram = encode_ipv4_datagram(message, source=source)
    layer = dissect(datagram)
    assert (layer.version, layer.type, layer.vrid, layer.priority) == (version, 1, vrid, priority)
    assert layer.ipcount == len(addresses)
    assert layer.addrlist == [str(a) for a in addresses]
    assert layer.adv == (seconds if version == 2 else centiseconds)
    if version == 2:
        assert layer.authtype == (1 if auth is AuthType.SIMPLE else 0)
        expected_words = auth_words(password or b"" if auth is AuthType.SIMPLE else b"")
        assert {"auth1": layer.auth1, "auth2": layer.auth2} == expected_words
    assert scapy_recomputed(datagram) == datagram


def test_message_only_v3_checksum_is_not_scapys_but_verifies_over_the_message() -> None:
    """RFC 9568 §5.2.8 form: scapy would write the pseudo-header form instead."""
    message = encode_advertisement(
        version=3,
        vrid=7,
        priority=100,
        interval_cs=100,
        addresses=ADDRESSES,
        source=PEER,
        checksum_form=ChecksumForm.MESSAGE_ONLY,
    )
    datagram = encode_ipv4_datagram(message, source=PEER)
    assert checksum(bytes(dissect(datagram))) == 0
    assert scapy_recomputed(datagram) != datagram
