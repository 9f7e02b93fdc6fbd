"""Golden vectors: adverts a real keepalived sent (tests/vectors, see its README).

Each capture must decode to what keepalived was configured to send (the JSON sidecar),
and our encoder must produce the same bytes from the same fields: that is the proof that
we interoperate with keepalived, in both directions, without a network in the test.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import Any

import pytest

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
from tests.corpus import VECTORS

NAMES = sorted(VECTORS)


def fields(name: str) -> dict[str, Any]:
    vrrp: dict[str, Any] = VECTORS[name][1]["vrrp"]
    return vrrp


def policy_for(name: str) -> ReceivePolicy:
    """The policy of a keepalived peer configured exactly like the sender."""
    vrrp = fields(name)
    vrid_policy = VridPolicy(
        version=vrrp["version"],
        advert_interval_cs=vrrp["interval_cs"],
        auth_type=AuthType(vrrp["auth_type"]),
        auth_password=vrrp["auth_password"].encode(),
    )
    return ReceivePolicy(vrids={vrrp["vrid"]: vrid_policy})


def test_vectors_cover_the_required_keepalived_configurations() -> None:
    adverts = [fields(name) for name in NAMES]
    v3 = [a for a in adverts if a["version"] == 3]
    v2 = [a for a in adverts if a["version"] == 2]
    assert {a["priority"] for a in v3} >= {0, 100, 150}
    assert {len(a["addresses"]) for a in v3} >= {1, 3}
    assert {a["interval_cs"] for a in v3} >= {10, 100}
    assert {a["auth_type"] for a in v2} == {"none", "simple"}
    assert {a["priority"] for a in v2} >= {0, 100, 150}


@pytest.mark.parametrize("name", NAMES)
def test_capture_decodes_to_the_sidecar(name: str) -> None:
    datagram, sidecar = VECTORS[name]
    vrrp = fields(name)
    assert classify(datagram, policy_for(name)) == Advertisement(
        version=vrrp["version"],
        vrid=vrrp["vrid"],
        priority=vrrp["priority"],
        interval_cs=vrrp["interval_cs"],
        addresses=tuple(IPv4Address(a) for a in vrrp["addresses"]),
        source=IPv4Address(sidecar["ip"]["source"]),
        checksum_form=ChecksumForm(vrrp["checksum_form"]),
    )


@pytest.mark.parametrize("name", NAMES)
def test_capture_ip_header_is_what_keepalived_sends(name: str) -> None:
    """TTL 255 (RFC 9568 §5.1.1.3), DSCP CS6, no options, not fragmented, to the group."""
    datagram, sidecar = VECTORS[name]
    ip = sidecar["ip"]
    version_ihl, tos, total_len, ident, flags_fragment, ttl, proto = struct.unpack_from(
        "!BBHHHBB", datagram
    )
    assert (version_ihl, total_len, proto) == (0x45, len(datagram), 112)
    assert (tos, ttl, ident, flags_fragment) == (
        ip["tos"],
        ip["ttl"],
        ip["identification"],
        ip["flags_fragment"],
    )
    assert (tos, ttl, flags_fragment) == (0xC0, 255, 0)
    assert IPv4Address(datagram[12:16]) == IPv4Address(ip["source"])
    assert IPv4Address(datagram[16:20]) == IPv4Address(ip["destination"])


@pytest.mark.parametrize("name", NAMES)
def test_capture_reencodes_byte_identically(name: str) -> None:
    """Our encoder reproduces keepalived's message; the IP header differs only in the
    identification, which the sender picks (we pass the captured one)."""
    datagram, sidecar = VECTORS[name]
    vrrp, ip = fields(name), sidecar["ip"]
    message = encode_advertisement(
        version=vrrp["version"],
        vrid=vrrp["vrid"],
        priority=vrrp["priority"],
        interval_cs=vrrp["interval_cs"],
        addresses=tuple(IPv4Address(a) for a in vrrp["addresses"]),
        source=IPv4Address(ip["source"]),
        destination=IPv4Address(ip["destination"]),
        checksum_form=ChecksumForm(vrrp["checksum_form"]),
        auth_type=AuthType(vrrp["auth_type"]),
        auth_password=vrrp["auth_password"].encode(),
    )
    assert message.hex(" ") == datagram[20:].hex(" ")
    rebuilt = encode_ipv4_datagram(
        message,
        source=IPv4Address(ip["source"]),
        destination=IPv4Address(ip["destination"]),
        identification=ip["identification"],
        flags_fragment=ip["flags_fragment"],
    )
    assert rebuilt.hex(" ") == datagram.hex(" ")


@pytest.mark.parametrize("name", [n for n in NAMES if fields(n)["auth_type"] == "simple"])
def test_keepalived_zero_pads_the_simple_password(name: str) -> None:
    """RFC 2338 §5.3.10: the password fills the 8-byte auth data, zero-padded."""
    datagram = VECTORS[name][0]
    assert datagram[-8:] == fields(name)["auth_password"].encode().ljust(8, b"\x00")
    assert datagram[24] == 1  # Auth Type 1 = simple text password
