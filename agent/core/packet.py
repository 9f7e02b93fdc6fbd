"""VRRPv2 (RFC 3768) and VRRPv3 (RFC 9568) advertisement codec for IPv4.

Theory of operation
-------------------
The receive path hands :func:`classify` a whole IPv4 datagram, as a raw
``IPPROTO_VRRP`` socket returns it, plus the :class:`ReceivePolicy` of that interface.
The answer is either an :class:`Advertisement` or a :class:`Rejected` carrying one
:class:`RejectReason`. Checks run in a fixed order (IP header, TTL, VRRP header, length,
checksum, then the per-VRID policy) and the first failing check names the reason, so
that the eBPF program in ``bpf/`` can mirror the same order and give the same verdict
for every packet of the shared corpus (``tests/vectors``).

Wire formats (all fields in network byte order)::

    VRRPv2 (RFC 3768 §5.1)                  VRRPv3 (RFC 9568 §5.1)
     0   ver=2|type=1  VRID  Priority  Count     0   ver=3|type=1  VRID  Priority  Count
     4   AuthType  AdverInt(s)  Checksum         4   rsvd(4)|MaxAdverInt(12, cs)  Checksum
     8   IPv4 address 1 ...                      8   IPv4 address 1 ...
         Authentication Data (8 bytes)

The VRRPv2 checksum covers the VRRP message only (auth trailer included). For VRRPv3 over
IPv4, RFC 5798 was read two ways: keepalived, FRR, Wireshark and scapy prepend the IPv4
pseudo-header; RFC 9568 §5.2.8 settles it as the message only. We accept both forms and
send the pseudo-header form unless told otherwise (see :class:`ChecksumForm`).

This module checks syntax and the per-interface policy; what an advert *means* is the
state machine's business (:mod:`agent.core.router`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address

from agent.core.constants import (
    HEADER_LEN,
    IPPROTO_VRRP,
    TYPE_ADVERTISEMENT,
    V2_AUTH_DATA_LEN,
    V2_MAX_INTERVAL_S,
    V3_MAX_INTERVAL_CS,
    VRRP_GROUP_V4,
    VRRP_TTL,
)

_IPV4_MIN_HEADER = 20
_IP_FLAG_MORE_FRAGMENTS = 0x2000
_IP_FRAGMENT_OFFSET_MASK = 0x1FFF


class RejectReason(StrEnum):
    """Why a received datagram was not accepted; each value is a metric label.

    The order of the members is the order in which :func:`classify` checks.
    """

    #: Not a well-formed IPv4 header (version, header length, total length).
    BAD_IP_HEADER = "bad_ip_header"
    #: A fragment: adverts are never fragmented, so this is forged or foreign.
    FRAGMENT = "fragment"
    #: IP protocol is not 112.
    NOT_VRRP = "not_vrrp"
    #: TTL is not 255 (RFC 3768 §7.1, RFC 9568 §7.1): the packet crossed a router.
    BAD_TTL = "bad_ttl"
    #: Fewer than 8 bytes of VRRP header.
    SHORT_PACKET = "short_packet"
    #: Version nibble not 2 or 3, or not the version configured for the VRID.
    BAD_VERSION = "bad_version"
    #: Type nibble is not 1 (ADVERTISEMENT).
    BAD_TYPE = "bad_type"
    #: Length does not match the address count (or the count is 0, RFC 9568 erratum 8299).
    BAD_LENGTH = "bad_length"
    #: Checksum wrong (for v3: wrong in both the pseudo-header and the message-only form).
    BAD_CHECKSUM = "bad_checksum"
    #: VRRPv3 Max Adver Int of 0 (RFC 9568 erratum 8301).
    BAD_INTERVAL = "bad_interval"
    #: No instance on this interface uses the VRID.
    UNKNOWN_VRID = "unknown_vrid"
    #: Sent by this node (looped back): never evidence of a peer.
    OWN_ADVERT = "own_advert"
    #: VRRPv2 advert interval differs from ours (RFC 3768 §7.1 requires the drop).
    INTERVAL_MISMATCH = "interval_mismatch"
    #: VRRPv2 authentication type or password differs from ours (RFC 3768 §7.1).
    AUTH_MISMATCH = "auth_mismatch"
    #: Addressed for the other mode: a multicast advert for a VRID in unicast mode, or a
    #: unicast one (to anything but 224.0.0.18) for a VRID in multicast mode
    #: (draft-abinabraham-vrrp-unicast: each mode ignores the other's adverts).
    WRONG_DESTINATION = "wrong_destination"
    #: Unicast mode: the source is not one of the VRID's configured peers.
    UNKNOWN_PEER = "unknown_peer"


class ChecksumForm(StrEnum):
    """How a VRRPv3-over-IPv4 checksum is computed (protocol.md §4)."""

    #: IPv4 pseudo-header + message: what keepalived and FRR send and expect.
    PSEUDO_HEADER = "pseudo_header"
    #: Message only: RFC 9568 §5.2.8, and always the VRRPv2 rule (RFC 3768 §5.3.8).
    MESSAGE_ONLY = "message_only"


class AuthType(StrEnum):
    """VRRPv2 authentication (RFC 3768 §5.3.6 keeps only "none"; RFC 2338 had more)."""

    NONE = "none"
    #: RFC 2338 simple text password: up to 8 bytes in the trailer, zero-padded.
    SIMPLE = "simple"


_AUTH_TYPE_CODE = {AuthType.NONE: 0, AuthType.SIMPLE: 1}


@dataclass(frozen=True, slots=True)
class VridPolicy:
    """What one configured virtual router on an interface accepts."""

    version: int
    #: Our Advertisement_Interval in centiseconds; only VRRPv2 enforces equality.
    advert_interval_cs: int
    auth_type: AuthType = AuthType.NONE
    #: The simple password, at most 8 bytes (VRRPv2 only).
    auth_password: bytes = b""
    #: Unicast mode (keepalived ``unicast_peer``, draft-abinabraham-vrrp-unicast): the
    #: only sources whose adverts count, sent to one of our own addresses. Empty: multicast
    #: mode, adverts must be sent to 224.0.0.18.
    unicast_peers: frozenset[IPv4Address] = frozenset()


@dataclass(frozen=True, slots=True)
class ReceivePolicy:
    """Everything :func:`classify` needs to know about one interface."""

    vrids: Mapping[int, VridPolicy]
    #: This node's own addresses on the interface: adverts from them are our own.
    own_addresses: frozenset[IPv4Address] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """A decoded, accepted VRRP advertisement."""

    version: int
    vrid: int
    priority: int
    #: Advertisement interval in centiseconds (VRRPv2 seconds are multiplied by 100).
    interval_cs: int
    addresses: tuple[IPv4Address, ...]
    #: IP source: the sender's primary address, used for the equal-priority tie-break.
    source: IPv4Address
    #: Which checksum form the sender used (always MESSAGE_ONLY for VRRPv2).
    checksum_form: ChecksumForm


@dataclass(frozen=True, slots=True)
class Rejected:
    """A datagram that was dropped, and why."""

    reason: RejectReason
    #: The VRID, when the header was long enough to carry one.
    vrid: int | None = None
    #: The IP source, when the IP header was readable.
    source: IPv4Address | None = None


def internet_checksum(data: bytes) -> int:
    """The 16-bit ones'-complement checksum of RFC 1071."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_pseudo_header(source: IPv4Address, destination: IPv4Address, length: int) -> bytes:
    """Source, destination, zero, protocol, upper-layer length (RFC 768 style)."""
    return source.packed + destination.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)


def vrrp_checksum(
    message: bytes,
    *,
    version: int,
    source: IPv4Address,
    destination: IPv4Address,
    form: ChecksumForm,
) -> int:
    """Checksum of ``message`` (its checksum field zeroed) in the form a peer expects."""
    if version == 3 and form is ChecksumForm.PSEUDO_HEADER:
        return internet_checksum(_ipv4_pseudo_header(source, destination, len(message)) + message)
    return internet_checksum(message)


def encode_advertisement(
    *,
    version: int,
    vrid: int,
    priority: int,
    interval_cs: int,
    addresses: tuple[IPv4Address, ...],
    source: IPv4Address,
    destination: IPv4Address = VRRP_GROUP_V4,
    checksum_form: ChecksumForm = ChecksumForm.PSEUDO_HEADER,
    auth_type: AuthType = AuthType.NONE,
    auth_password: bytes = b"",
) -> bytes:
    """Build the VRRP message (no IP header) of one advertisement.

    ``source`` and ``destination`` only enter the VRRPv3 pseudo-header checksum.
    """
    if not 1 <= vrid <= 255:
        raise ValueError(f"vrid must be 1..255, got {vrid}")
    if not 0 <= priority <= 255:
        raise ValueError(f"priority must be 0..255, got {priority}")
    if not 1 <= len(addresses) <= 255:
        raise ValueError(f"an advert carries 1..255 addresses, got {len(addresses)}")
    packed_addresses = b"".join(address.packed for address in addresses)
    if version == 2:
        seconds = interval_cs // 100
        if interval_cs % 100 or not 1 <= seconds <= V2_MAX_INTERVAL_S:
            raise ValueError(f"VRRPv2 interval must be 1..255 whole seconds, got {interval_cs} cs")
        if len(auth_password) > V2_AUTH_DATA_LEN:
            raise ValueError("VRRPv2 simple password is at most 8 bytes")
        # RFC 3768 §5.3.10: without authentication the data is zero, so a password left
        # in the configuration never goes on the wire in clear.
        password = auth_password if auth_type is AuthType.SIMPLE else b""
        trailer = password.ljust(V2_AUTH_DATA_LEN, b"\x00")
        header = struct.pack(
            "!BBBBBBH",
            0x20 | TYPE_ADVERTISEMENT,
            vrid,
            priority,
            len(addresses),
            _AUTH_TYPE_CODE[auth_type],
            seconds,
            0,
        )
        message = header + packed_addresses + trailer
    elif version == 3:
        if not 1 <= interval_cs <= V3_MAX_INTERVAL_CS:
            raise ValueError(f"VRRPv3 interval must be 1..4095 cs, got {interval_cs}")
        header = struct.pack(
            "!BBBBHH", 0x30 | TYPE_ADVERTISEMENT, vrid, priority, len(addresses), interval_cs, 0
        )
        message = header + packed_addresses
    else:
        raise ValueError(f"version must be 2 or 3, got {version}")
    checksum = vrrp_checksum(
        message, version=version, source=source, destination=destination, form=checksum_form
    )
    return message[:6] + struct.pack("!H", checksum) + message[8:]


def encode_ipv4_datagram(
    payload: bytes,
    *,
    source: IPv4Address,
    destination: IPv4Address = VRRP_GROUP_V4,
    ttl: int = VRRP_TTL,
    protocol: int = IPPROTO_VRRP,
    identification: int = 0,
    options: bytes = b"",
    flags_fragment: int = 0,
) -> bytes:
    """Wrap ``payload`` in an IPv4 header, as it arrives on a raw socket.

    The agent lets the kernel build its headers; this is for tests, the corpus and the
    flood generator of the lab.
    """
    if len(options) % 4:
        raise ValueError("IP options must be padded to a multiple of 4 bytes")
    header_len = _IPV4_MIN_HEADER + len(options)
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | header_len // 4,
            0xC0,  # DSCP CS6 (network control), as keepalived sends
            header_len + len(payload),
            identification,
            flags_fragment,
            ttl,
            protocol,
            0,
            source.packed,
            destination.packed,
        )
        + options
    )
    checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def classify(datagram: bytes, policy: ReceivePolicy) -> Advertisement | Rejected:
    """Decide whether one received IPv4 datagram is an advert for us.

    Never raises on any input: a malformed packet is a :class:`Rejected`, not an error.
    """
    if len(datagram) < _IPV4_MIN_HEADER or datagram[0] >> 4 != 4:
        return Rejected(RejectReason.BAD_IP_HEADER)
    header_len = (datagram[0] & 0x0F) * 4
    total_len, flags_fragment = struct.unpack_from("!H2xH", datagram, 2)
    if header_len < _IPV4_MIN_HEADER or not header_len <= total_len <= len(datagram):
        return Rejected(RejectReason.BAD_IP_HEADER)
    source = IPv4Address(datagram[12:16])
    destination = IPv4Address(datagram[16:20])
    if flags_fragment & (_IP_FLAG_MORE_FRAGMENTS | _IP_FRAGMENT_OFFSET_MASK):
        return Rejected(RejectReason.FRAGMENT, source=source)
    if datagram[9] != IPPROTO_VRRP:
        return Rejected(RejectReason.NOT_VRRP, source=source)
    if datagram[8] != VRRP_TTL:
        return Rejected(RejectReason.BAD_TTL, source=source)
    # Trailing bytes past the IP total length are link-layer padding, not part of the advert.
    message = datagram[header_len:total_len]
    return _classify_message(message, source, destination, policy)


def _classify_message(
    message: bytes, source: IPv4Address, destination: IPv4Address, policy: ReceivePolicy
) -> Advertisement | Rejected:
    if len(message) < HEADER_LEN:
        return Rejected(RejectReason.SHORT_PACKET, source=source)
    version, packet_type = message[0] >> 4, message[0] & 0x0F
    vrid, priority, count = message[1], message[2], message[3]
    if version not in (2, 3):
        return Rejected(RejectReason.BAD_VERSION, vrid, source)
    if packet_type != TYPE_ADVERTISEMENT:
        return Rejected(RejectReason.BAD_TYPE, vrid, source)
    trailer = V2_AUTH_DATA_LEN if version == 2 else 0
    if count == 0 or len(message) != HEADER_LEN + 4 * count + trailer:
        return Rejected(RejectReason.BAD_LENGTH, vrid, source)
    form: ChecksumForm | None
    if version == 2:
        if internet_checksum(message) != 0:
            return Rejected(RejectReason.BAD_CHECKSUM, vrid, source)
        form = ChecksumForm.MESSAGE_ONLY
        interval_cs = message[5] * 100
    else:
        form = _v3_checksum_form(message, source, destination)
        if form is None:
            return Rejected(RejectReason.BAD_CHECKSUM, vrid, source)
        interval_cs = struct.unpack_from("!H", message, 4)[0] & 0x0FFF
    if interval_cs == 0:
        return Rejected(RejectReason.BAD_INTERVAL, vrid, source)
    vrid_policy = policy.vrids.get(vrid)
    if vrid_policy is None:
        return Rejected(RejectReason.UNKNOWN_VRID, vrid, source)
    if source in policy.own_addresses:
        return Rejected(RejectReason.OWN_ADVERT, vrid, source)
    if version != vrid_policy.version:
        return Rejected(RejectReason.BAD_VERSION, vrid, source)
    if version == 2:
        if interval_cs != vrid_policy.advert_interval_cs:
            return Rejected(RejectReason.INTERVAL_MISMATCH, vrid, source)
        if not _v2_auth_matches(message, vrid_policy):
            return Rejected(RejectReason.AUTH_MISMATCH, vrid, source)
    mode_reason = _mode_mismatch(source, destination, vrid_policy, policy)
    if mode_reason is not None:
        return Rejected(mode_reason, vrid, source)
    addresses = tuple(IPv4Address(message[8 + 4 * i : 12 + 4 * i]) for i in range(count))
    return Advertisement(version, vrid, priority, interval_cs, addresses, source, form)


def _v3_checksum_form(
    message: bytes, source: IPv4Address, destination: IPv4Address
) -> ChecksumForm | None:
    """Which of the two VRRPv3 checksum forms ``message`` satisfies, if any.

    When the pseudo-header alone sums to zero (rare source/destination pairs) both forms
    verify and the packet cannot tell them apart; it is reported as PSEUDO_HEADER.
    """
    pseudo = _ipv4_pseudo_header(source, destination, len(message))
    if internet_checksum(pseudo + message) == 0:
        return ChecksumForm.PSEUDO_HEADER
    if internet_checksum(message) == 0:
        return ChecksumForm.MESSAGE_ONLY
    return None


def _mode_mismatch(
    source: IPv4Address, destination: IPv4Address, vrid_policy: VridPolicy, policy: ReceivePolicy
) -> RejectReason | None:
    """The unicast draft's receive rules (draft-abinabraham-vrrp-unicast-01, protocol.md §6).

    A VRID in unicast mode takes adverts only from its configured peers, sent to one of
    our own addresses; a VRID in multicast mode only adverts sent to 224.0.0.18. The draft
    has each mode ignore the other's adverts; keepalived accepts both, but a node that
    unicasts to us while we multicast is misconfigured, and obeying it would let any host
    that can reach us speak for the VRID. These checks come last so the earlier reasons
    keep their order (the eBPF program numbers the reasons in member order).
    """
    if not vrid_policy.unicast_peers:
        return None if destination == VRRP_GROUP_V4 else RejectReason.WRONG_DESTINATION
    if destination not in policy.own_addresses:
        return RejectReason.WRONG_DESTINATION
    if source not in vrid_policy.unicast_peers:
        return RejectReason.UNKNOWN_PEER
    return None


def _v2_auth_matches(message: bytes, policy: VridPolicy) -> bool:
    """RFC 3768 §7.1: the auth type must match ours; RFC 2338 §7.1: so must the password."""
    if message[4] != _AUTH_TYPE_CODE[policy.auth_type]:
        return False
    if policy.auth_type is AuthType.SIMPLE:
        return message[-V2_AUTH_DATA_LEN:] == policy.auth_password.ljust(V2_AUTH_DATA_LEN, b"\0")
    return True
