"""Packets aimed at the kernel program's own edge cases, on top of the shared corpus.

The shared corpus (tests/corpus.py) covers the protocol; these add what is special about
the C code: the bounded checksum loop at its maximum length, variable IP header lengths,
link-layer padding behind the IP total length, the scratch-buffer mask, the order of the
per-VRID checks, and the raw comparison of the VRRPv2 password.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from agent.core.constants import VRRP_GROUP_V4
from agent.core.packet import (
    AuthType,
    ChecksumForm,
    ReceivePolicy,
    RejectReason,
    VridPolicy,
    encode_advertisement,
    encode_ipv4_datagram,
    internet_checksum,
    vrrp_checksum,
)

PEER = IPv4Address("192.0.2.2")
OWN = IPv4Address("192.0.2.1")
VIP = (IPv4Address("192.0.2.100"),)

#: VRID 51: VRRPv3 1 s; 52: VRRPv2 1 s with the simple password "secret"; 53: VRRPv2 3 s.
POLICY = ReceivePolicy(
    vrids={
        51: VridPolicy(version=3, advert_interval_cs=100),
        52: VridPolicy(2, 100, AuthType.SIMPLE, b"secret"),
        53: VridPolicy(version=2, advert_interval_cs=300),
    },
    own_addresses=frozenset({OWN}),
)


@dataclass(frozen=True)
class KernelCase:
    """Same shape as tests.corpus.CorpusCase."""

    name: str
    datagram: bytes
    policy: ReceivePolicy
    expected: RejectReason | None


def v3(
    vrid: int = 51,
    *,
    priority: int = 100,
    addresses: tuple[IPv4Address, ...] = VIP,
    form: ChecksumForm = ChecksumForm.PSEUDO_HEADER,
    source: IPv4Address = PEER,
    interval_cs: int = 100,
) -> bytes:
    """A valid VRRPv3 message."""
    return encode_advertisement(
        version=3,
        vrid=vrid,
        priority=priority,
        interval_cs=interval_cs,
        addresses=addresses,
        source=source,
        checksum_form=form,
    )


def v2(
    vrid: int = 52,
    *,
    auth_type: AuthType = AuthType.SIMPLE,
    password: bytes = b"secret",
    interval_cs: int = 100,
) -> bytes:
    """A valid VRRPv2 message."""
    return encode_advertisement(
        version=2,
        vrid=vrid,
        priority=100,
        interval_cs=interval_cs,
        addresses=VIP,
        source=PEER,
        auth_type=auth_type,
        auth_password=password,
    )


def patched(message: bytes, offset: int, value: bytes, *, form: ChecksumForm) -> bytes:
    """``message`` with bytes replaced and a checksum that is valid again in ``form``."""
    body = message[:offset] + value + message[offset + len(value) :]
    body = body[:6] + b"\0\0" + body[8:]
    checksum = vrrp_checksum(
        body, version=body[0] >> 4, source=PEER, destination=VRRP_GROUP_V4, form=form
    )
    return body[:6] + struct.pack("!H", checksum) + body[8:]


def pseudo_header_v2() -> bytes:
    """A VRRPv2 message checksummed the VRRPv3 keepalived way: invalid for VRRPv2."""
    body = v2()[:6] + b"\0\0" + v2()[8:]
    pseudo = PEER.packed + VRRP_GROUP_V4.packed + struct.pack("!BBH", 0, 112, len(body))
    return body[:6] + struct.pack("!H", internet_checksum(pseudo + body)) + body[8:]


def ip(message: bytes, **kwargs: object) -> bytes:
    """Wrap in an IPv4 header from PEER to 224.0.0.18 (override with keyword arguments)."""
    kwargs.setdefault("source", PEER)
    return encode_ipv4_datagram(message, **kwargs)  # type: ignore[arg-type]


def _with_ip_header(datagram: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite IP header bytes (the IP checksum is not checked by either side)."""
    return datagram[:offset] + value + datagram[offset + len(value) :]


_MANY = tuple(IPv4Address(f"198.51.{i // 250}.{i % 250 + 1}") for i in range(255))
_GOOD_V3 = ip(v3())
_MESSAGE_ONLY = ChecksumForm.MESSAGE_ONLY

KERNEL_CASES = [
    KernelCase("v3 pseudo-header checksum", _GOOD_V3, POLICY, None),
    KernelCase("v3 message-only checksum", ip(v3(form=_MESSAGE_ONLY)), POLICY, None),
    KernelCase("v3 255 addresses, longest loop", ip(v3(addresses=_MANY)), POLICY, None),
    KernelCase(
        "v3 255 addresses, message-only", ip(v3(addresses=_MANY, form=_MESSAGE_ONLY)), POLICY, None
    ),
    KernelCase(
        "v3 255 addresses, last word corrupted",
        ip(v3(addresses=_MANY)[:-1] + b"\xff"),
        POLICY,
        RejectReason.BAD_CHECKSUM,
    ),
    KernelCase("v3 IP options (IHL 6)", ip(v3(), options=b"\x94\x04\0\0"), POLICY, None),
    KernelCase("v3 IP options (IHL 15)", ip(v3(), options=b"\x01" * 40), POLICY, None),
    KernelCase("v3 link-layer padding after total length", _GOOD_V3 + b"\0" * 18, POLICY, None),
    KernelCase("v3 don't-fragment flag only", ip(v3(), flags_fragment=0x4000), POLICY, None),
    KernelCase(
        "v3 reserved bits set are ignored",
        ip(patched(v3(), 4, b"\xf0", form=ChecksumForm.PSEUDO_HEADER)),
        POLICY,
        None,
    ),
    KernelCase("v2 simple password", ip(v2()), POLICY, None),
    KernelCase(
        "v2 no auth, 3 s",
        ip(v2(53, auth_type=AuthType.NONE, password=b"", interval_cs=300)),
        POLICY,
        None,
    ),
    KernelCase("empty datagram", b"", POLICY, RejectReason.BAD_IP_HEADER),
    KernelCase("19-byte datagram", _GOOD_V3[:19], POLICY, RejectReason.BAD_IP_HEADER),
    KernelCase(
        "IP version 6", _with_ip_header(_GOOD_V3, 0, b"\x65"), POLICY, RejectReason.BAD_IP_HEADER
    ),
    KernelCase("IHL 4", _with_ip_header(_GOOD_V3, 0, b"\x44"), POLICY, RejectReason.BAD_IP_HEADER),
    KernelCase(
        "total length beyond datagram",
        _with_ip_header(_GOOD_V3, 2, struct.pack("!H", len(_GOOD_V3) + 1)),
        POLICY,
        RejectReason.BAD_IP_HEADER,
    ),
    KernelCase(
        "total length below IHL",
        _with_ip_header(_GOOD_V3, 2, struct.pack("!H", 19)),
        POLICY,
        RejectReason.BAD_IP_HEADER,
    ),
    KernelCase(
        "more-fragments flag", ip(v3(), flags_fragment=0x2000), POLICY, RejectReason.FRAGMENT
    ),
    KernelCase("fragment offset", ip(v3(), flags_fragment=0x0001), POLICY, RejectReason.FRAGMENT),
    KernelCase("UDP protocol", ip(v3(), protocol=17), POLICY, RejectReason.NOT_VRRP),
    KernelCase("TTL 64", ip(v3(), ttl=64), POLICY, RejectReason.BAD_TTL),
    KernelCase("IP header only", ip(b""), POLICY, RejectReason.SHORT_PACKET),
    KernelCase("7-byte message", ip(v3()[:7]), POLICY, RejectReason.SHORT_PACKET),
    KernelCase("VRRP version 4", ip(b"\x41" + v3()[1:]), POLICY, RejectReason.BAD_VERSION),
    KernelCase("VRRP type 2", ip(b"\x32" + v3()[1:]), POLICY, RejectReason.BAD_TYPE),
    KernelCase("count 0", ip(v3()[:3] + b"\0" + v3()[4:8]), POLICY, RejectReason.BAD_LENGTH),
    KernelCase(
        "one address too many bytes", ip(v3() + b"\0\0\0\0"), POLICY, RejectReason.BAD_LENGTH
    ),
    KernelCase("v2 without its trailer", ip(v2()[:-8]), POLICY, RejectReason.BAD_LENGTH),
    KernelCase(
        "CARP advert (36 bytes, authlen 7)",
        ip(bytes([0x21, 1, 0, 7, 1, 1]) + b"\0" * 30),
        POLICY,
        RejectReason.BAD_LENGTH,
    ),
    KernelCase(
        "v3 checksum off by one",
        ip(v3()[:7] + bytes([v3()[7] ^ 1]) + v3()[8:]),
        POLICY,
        RejectReason.BAD_CHECKSUM,
    ),
    KernelCase(
        "v2 checksum off by one",
        ip(v2()[:7] + bytes([v2()[7] ^ 1]) + v2()[8:]),
        POLICY,
        RejectReason.BAD_CHECKSUM,
    ),
    KernelCase(
        "v2 with a pseudo-header checksum",
        ip(pseudo_header_v2()),
        POLICY,
        RejectReason.BAD_CHECKSUM,
    ),
    KernelCase(
        "v3 interval 0",
        ip(patched(v3(), 4, b"\0\0", form=ChecksumForm.PSEUDO_HEADER)),
        POLICY,
        RejectReason.BAD_INTERVAL,
    ),
    KernelCase(
        "v2 interval 0",
        ip(patched(v2(), 5, b"\0", form=_MESSAGE_ONLY)),
        POLICY,
        RejectReason.BAD_INTERVAL,
    ),
    KernelCase("unknown VRID", ip(v3(99)), POLICY, RejectReason.UNKNOWN_VRID),
    KernelCase(
        "unknown VRID from our own address",
        ip(v3(99, source=OWN), source=OWN),
        POLICY,
        RejectReason.UNKNOWN_VRID,
    ),
    KernelCase("own advert", ip(v3(source=OWN), source=OWN), POLICY, RejectReason.OWN_ADVERT),
    KernelCase("v2 on a v3 VRID", ip(v2(51)), POLICY, RejectReason.BAD_VERSION),
    KernelCase("v3 on a v2 VRID", ip(v3(52)), POLICY, RejectReason.BAD_VERSION),
    KernelCase(
        "v2 interval mismatch", ip(v2(interval_cs=200)), POLICY, RejectReason.INTERVAL_MISMATCH
    ),
    KernelCase(
        "v2 no auth on a password VRID",
        ip(v2(auth_type=AuthType.NONE, password=b"")),
        POLICY,
        RejectReason.AUTH_MISMATCH,
    ),
    KernelCase("v2 wrong password", ip(v2(password=b"secreT")), POLICY, RejectReason.AUTH_MISMATCH),
    KernelCase(
        "v2 password with a suffix",
        ip(v2(password=b"secret12")),
        POLICY,
        RejectReason.AUTH_MISMATCH,
    ),
    KernelCase(
        "v2 password on a no-auth VRID",
        ip(v2(53, password=b"secret", interval_cs=300)),
        POLICY,
        RejectReason.AUTH_MISMATCH,
    ),
]
