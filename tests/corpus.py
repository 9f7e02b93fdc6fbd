"""The shared packet corpus: every datagram both receive paths must judge the same way.

``CORPUS`` is the one list that the userspace codec (``agent.core.packet.classify``,
tests/unit/test_packet_corpus.py) and the eBPF socket filter (``bpf/``, tests/bpf) are
tested against. Each :class:`CorpusCase` is a full IPv4 datagram, as a raw
``IPPROTO_VRRP`` socket returns it, the :class:`ReceivePolicy` of the receiving interface
and the expected verdict: ``None`` for an accepted advert, otherwise the
:class:`RejectReason` of the *first* failing check (so the cases also pin the check
order, see ``RejectReason``).

Where the packets come from:

* the keepalived captures in ``tests/vectors/*.hex`` (real keepalived 2.2.7, see
  tests/vectors/README.md), accepted as they are;
* every truncation of two of those captures, both as cut datagrams and as short VRRP
  messages in a consistent IP header;
* hand-made variants built from table rows below (h11 ``SIMPLE_CASES`` style), each
  changing one thing from a valid advert. Unless a row says otherwise the VRRP checksum is
  recomputed after the change, so that only the intended check can fail.

Everything here is pure (no root, no network, no scapy): importing the module is cheap.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

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

VECTORS_DIR = Path(__file__).parent / "vectors"

#: The keepalived of the captures, and the peer of every hand-made advert.
PEER = IPv4Address("192.0.2.1")
#: The receiving node itself (the capture side): adverts from it are its own.
SELF = IPv4Address("192.0.2.2")
OTHER_PEER = IPv4Address("192.0.2.3")
BROADCAST = IPv4Address("255.255.255.255")
VIP = IPv4Address("192.0.2.100")

#: The VRIDs configured on the receiving interface; 51..54 match the keepalived captures.
V3_VRID, V3_FAST_VRID, V2_VRID, V2_AUTH_VRID = 51, 52, 53, 54
PASSWORD = b"s3cr3t"
#: A VRID whose password fills the whole 8-byte auth data field.
V2_PASS8_VRID, PASSWORD8 = 55, b"12345678"
#: VRIDs in unicast mode (keepalived ``unicast_peer``): PEER is their only peer.
UNICAST_V3_VRID, UNICAST_V2_VRID = 56, 57
UNCONFIGURED_VRID = 99

#: The receive policy of the interface that saw the keepalived captures.
LAN_POLICY = ReceivePolicy(
    vrids={
        V3_VRID: VridPolicy(version=3, advert_interval_cs=100),
        V3_FAST_VRID: VridPolicy(version=3, advert_interval_cs=10),
        V2_VRID: VridPolicy(version=2, advert_interval_cs=100),
        V2_AUTH_VRID: VridPolicy(
            version=2,
            advert_interval_cs=200,
            auth_type=AuthType.SIMPLE,
            auth_password=PASSWORD,
        ),
        V2_PASS8_VRID: VridPolicy(
            version=2,
            advert_interval_cs=100,
            auth_type=AuthType.SIMPLE,
            auth_password=PASSWORD8,
        ),
        UNICAST_V3_VRID: VridPolicy(
            version=3, advert_interval_cs=100, unicast_peers=frozenset({PEER})
        ),
        UNICAST_V2_VRID: VridPolicy(
            version=2, advert_interval_cs=100, unicast_peers=frozenset({PEER})
        ),
    },
    own_addresses=frozenset({SELF}),
)

#: IP option bytes (RFC 791 §3.1): Router Alert (RFC 2113), and four no-operations.
ROUTER_ALERT = bytes([0x94, 0x04, 0x00, 0x00])
NOPS = bytes([0x01] * 4)
#: 36 bytes of no-operations + end of list: the largest IPv4 header (IHL 15).
MAX_OPTIONS = bytes([0x01] * 39 + [0x00])
IP_DF = 0x4000
IP_MF = 0x2000


@dataclass(frozen=True, slots=True)
class CorpusCase:
    """One datagram, the policy of the interface it arrives on, and the verdict."""

    name: str
    datagram: bytes
    policy: ReceivePolicy
    #: ``None``: accepted as an advert; otherwise the reason of the first failing check.
    expected: RejectReason | None


# --------------------------------------------------------------------------------------
# Golden vectors
# --------------------------------------------------------------------------------------


def read_hex(path: Path) -> bytes:
    """A ``.hex`` vector: hex digits, whitespace ignored."""
    return bytes.fromhex(path.read_text())


def load_vectors() -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Every ``tests/vectors/<name>.hex`` with its ``<name>.json`` sidecar, by name."""
    return {
        path.stem: (read_hex(path), json.loads(path.with_suffix(".json").read_text()))
        for path in sorted(VECTORS_DIR.glob("*.hex"))
    }


VECTORS = load_vectors()


def _message_of(datagram: bytes) -> bytes:
    header_len = (datagram[0] & 0x0F) * 4
    return datagram[header_len:]


# --------------------------------------------------------------------------------------
# Builders for hand-made adverts
# --------------------------------------------------------------------------------------


def advert(
    version: int = 3,
    *,
    vrid: int | None = None,
    priority: int = 100,
    interval_cs: int = 100,
    addresses: tuple[IPv4Address, ...] = (VIP,),
    source: IPv4Address = PEER,
    destination: IPv4Address = VRRP_GROUP_V4,
    checksum_form: ChecksumForm = ChecksumForm.PSEUDO_HEADER,
    auth_type: AuthType = AuthType.NONE,
    auth_password: bytes = b"",
) -> bytes:
    """A valid VRRP message (no IP header) for the LAN, by default VRID 51 (v3) or 53 (v2)."""
    return encode_advertisement(
        version=version,
        vrid=vrid if vrid is not None else (V3_VRID if version == 3 else V2_VRID),
        priority=priority,
        interval_cs=interval_cs,
        addresses=addresses,
        source=source,
        destination=destination,
        checksum_form=checksum_form,
        auth_type=auth_type,
        auth_password=auth_password,
    )


def unicast(
    version: int = 3,
    *,
    source: IPv4Address = PEER,
    destination: IPv4Address = SELF,
    checksum_form: ChecksumForm = ChecksumForm.PSEUDO_HEADER,
    interval_cs: int = 100,
) -> bytes:
    """A valid unicast advert datagram (VRID 56 for v3, 57 for v2), checksummed for its
    real destination as keepalived > 1.3.6 does (protocol.md §4)."""
    message = advert(
        version,
        vrid=UNICAST_V3_VRID if version == 3 else UNICAST_V2_VRID,
        interval_cs=interval_cs,
        source=source,
        destination=destination,
        checksum_form=checksum_form,
    )
    return ip(message, source=source, destination=destination)


def v2_auth_advert(password: bytes = PASSWORD) -> bytes:
    """A valid VRRPv2 advert for VRID 54 with a simple password (RFC 2338 §5.3.6)."""
    return advert(
        2, vrid=V2_AUTH_VRID, interval_cs=200, auth_type=AuthType.SIMPLE, auth_password=password
    )


def ip(message: bytes, *, source: IPv4Address = PEER, **fields: Any) -> bytes:
    """Wrap ``message`` in the IPv4 header keepalived would send (TTL 255, to 224.0.0.18)."""
    return encode_ipv4_datagram(message, source=source, **fields)


def patched(
    message: bytes,
    offset: int,
    new: bytes,
    *,
    checksum_form: ChecksumForm | None = ChecksumForm.PSEUDO_HEADER,
    source: IPv4Address = PEER,
    destination: IPv4Address = VRRP_GROUP_V4,
) -> bytes:
    """``message`` with ``new`` written at ``offset``, checksum recomputed.

    The checksum follows the version nibble of the *patched* message (a v3 nibble gets the
    given v3 form); ``checksum_form=None`` keeps the old checksum, for checksum cases.
    """
    message = message[:offset] + new + message[offset + len(new) :]
    if checksum_form is None:
        return message
    return with_checksum(message, checksum_form, source=source, destination=destination)


def with_checksum(
    message: bytes,
    form: ChecksumForm,
    *,
    source: IPv4Address = PEER,
    destination: IPv4Address = VRRP_GROUP_V4,
) -> bytes:
    """``message`` with a freshly computed checksum (v3 in ``form``, else message-only)."""
    zeroed = message[:6] + b"\x00\x00" + message[8:]
    checksum = vrrp_checksum(
        zeroed,
        version=message[0] >> 4,
        source=source,
        destination=destination,
        form=form,
    )
    return zeroed[:6] + struct.pack("!H", checksum) + zeroed[8:]


def flip_checksum(message: bytes) -> bytes:
    """``message`` with one bit of its checksum inverted: wrong in every form."""
    return message[:7] + bytes([message[7] ^ 0x01]) + message[8:]


def set_ip_header_byte(datagram: bytes, offset: int, value: int) -> bytes:
    """Overwrite one IPv4 header byte and fix the header checksum (as a sender would)."""
    header_len = (datagram[0] & 0x0F) * 4
    changed = datagram[:offset] + bytes([value]) + datagram[offset + 1 :]
    header = changed[:10] + b"\x00\x00" + changed[12:header_len]
    return header[:10] + struct.pack("!H", internet_checksum(header)) + changed[12:]


def carp(
    *, vhid: int = 1, advskew: int = 0, advbase: int = 1, authlen: int = 7, demote: int = 0
) -> bytes:
    """A CARP advert (OpenBSD/FreeBSD ``struct carp_header``, 36 bytes, IP protocol 112).

    Its first byte is 0x21 like VRRPv2, its 8-byte HMAC-SHA1 counter and 20-byte digest
    replace the address list; ``authlen`` (7 words) sits where VRRP has the address count,
    so the length check (8 + 4 x 7 + 8 = 44, not 36) is what tells it apart.
    """
    counter = bytes(range(1, 9))
    digest = bytes(range(0xA0, 0xA0 + 20))
    header = struct.pack("!BBBBBBH", 0x21, vhid, advskew, authlen, demote, advbase, 0)
    packet = header + counter + digest
    return packet[:6] + struct.pack("!H", internet_checksum(packet)) + packet[8:]


def pseudo_header_checksummed(message: bytes) -> bytes:
    """``message`` with the VRRPv3 pseudo-header checksum, whatever its version says."""
    zeroed = message[:6] + b"\x00\x00" + message[8:]
    checksum = vrrp_checksum(
        zeroed, version=3, source=PEER, destination=VRRP_GROUP_V4, form=ChecksumForm.PSEUDO_HEADER
    )
    return zeroed[:6] + struct.pack("!H", checksum) + zeroed[8:]


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------

V3 = advert(3)
V3_MESSAGE_ONLY = advert(3, checksum_form=ChecksumForm.MESSAGE_ONLY)
V2 = advert(2)
V2_AUTH = v2_auth_advert()
MO = ChecksumForm.MESSAGE_ONLY
MANY = tuple(IPv4Address(f"198.51.100.{i}") for i in range(255))

R = RejectReason
#: (name, datagram, expected), all received on LAN_POLICY.
SIMPLE_CASES: list[tuple[str, bytes, RejectReason | None]] = [
    # --- accepted -------------------------------------------------------------------
    ("v3_pseudo_header_checksum", ip(V3), None),
    ("v3_message_only_checksum_rfc9568", ip(V3_MESSAGE_ONLY), None),
    ("v2_auth_none", ip(V2), None),
    ("v2_simple_password", ip(V2_AUTH), None),
    (
        "v2_simple_password_8_bytes_no_padding",
        ip(advert(2, vrid=V2_PASS8_VRID, auth_type=AuthType.SIMPLE, auth_password=PASSWORD8)),
        None,
    ),
    ("v3_priority_0", ip(advert(3, priority=0)), None),
    ("v3_priority_255_owner", ip(advert(3, priority=255)), None),
    ("v2_priority_0", ip(advert(2, priority=0)), None),
    # RFC 9568 §6.4.2: a backup adopts the master's interval, so a different one is fine.
    ("v3_interval_differs_from_ours", ip(advert(3, interval_cs=350)), None),
    ("v3_interval_max_4095cs", ip(advert(3, interval_cs=4095)), None),
    ("v3_interval_min_1cs", ip(advert(3, interval_cs=1)), None),
    # RFC 9568 §5.2.6: the 4 reserved bits are ignored on reception.
    ("v3_reserved_bits_set", ip(patched(V3, 4, b"\xf0\x64")), None),
    ("v3_255_addresses", ip(advert(3, addresses=MANY)), None),
    ("v3_255_addresses_message_only", ip(advert(3, addresses=MANY, checksum_form=MO)), None),
    # RFC 3768 §5.3.10: with auth type 0 the auth data is ignored on reception.
    ("v2_auth_none_nonzero_trailer", ip(patched(V2, 12, b"garbage!")), None),
    ("ip_options_router_alert_v3", ip(V3, options=ROUTER_ALERT), None),
    ("ip_options_router_alert_v2", ip(V2, options=ROUTER_ALERT), None),
    ("ip_options_nops_v3_message_only", ip(V3_MESSAGE_ONLY, options=NOPS), None),
    ("ip_options_max_ihl_15_v2_auth", ip(V2_AUTH, options=MAX_OPTIONS), None),
    ("ip_dont_fragment_set", ip(V3, flags_fragment=IP_DF), None),
    ("ip_identification_nonzero", ip(V3, identification=0xBEEF), None),
    # Link-layer padding: a 32-byte datagram in a minimum Ethernet frame has 14 bytes more.
    ("ethernet_padding_v3", ip(V3) + bytes(14), None),
    ("ethernet_padding_v2", ip(V2) + bytes(6), None),
    ("ethernet_padding_nonzero_bytes", ip(V3) + b"\xff" * 14, None),
    # Unicast (keepalived unicast_peer): the pseudo-header uses the real destination.
    ("unicast_v3_from_peer_to_us", unicast(3), None),
    ("unicast_v3_message_only_checksum", unicast(3, checksum_form=MO), None),
    ("unicast_v2_from_peer_to_us", unicast(2), None),
    (
        "unicast_v3_priority_0",
        ip(advert(3, vrid=UNICAST_V3_VRID, priority=0, destination=SELF), destination=SELF),
        None,
    ),
    # The kernel verifies the IP header checksum before a raw socket (and its socket
    # filter) sees the packet, so classify() does not repeat it.
    ("ip_header_checksum_not_rechecked", ip(V3)[:10] + b"\x00\x00" + ip(V3)[12:], None),
    # --- bad_ip_header ----------------------------------------------------------------
    ("empty", b"", R.BAD_IP_HEADER),
    ("ip_version_6", set_ip_header_byte(ip(V3), 0, 0x65), R.BAD_IP_HEADER),
    ("ip_ihl_4", set_ip_header_byte(ip(V3), 0, 0x44), R.BAD_IP_HEADER),
    ("ip_ihl_0", set_ip_header_byte(ip(V3), 0, 0x40), R.BAD_IP_HEADER),
    ("ip_ihl_beyond_total_length", set_ip_header_byte(ip(V3), 0, 0x4F), R.BAD_IP_HEADER),
    (
        "ip_total_length_beyond_datagram",
        set_ip_header_byte(ip(V3), 3, len(ip(V3)) + 4),
        R.BAD_IP_HEADER,
    ),
    ("ip_total_length_below_header", set_ip_header_byte(ip(V3), 3, 16), R.BAD_IP_HEADER),
    # --- fragment ---------------------------------------------------------------------
    ("fragment_more_fragments", ip(V3, flags_fragment=IP_MF), R.FRAGMENT),
    ("fragment_offset", ip(V3, flags_fragment=0x0001), R.FRAGMENT),
    ("fragment_last_with_offset", ip(V3, flags_fragment=0x1FFF), R.FRAGMENT),
    ("fragment_offset_and_df", ip(V3, flags_fragment=IP_DF | 0x0010), R.FRAGMENT),
    ("fragment_before_ttl", ip(V3, flags_fragment=IP_MF, ttl=1), R.FRAGMENT),
    # --- not_vrrp ---------------------------------------------------------------------
    ("protocol_udp", ip(V3, protocol=17), R.NOT_VRRP),
    # RFC 2338 auth type 2 carried VRRP inside IPsec AH (protocol 51).
    ("protocol_ah", ip(V2, protocol=51), R.NOT_VRRP),
    ("protocol_not_vrrp_before_ttl", ip(V3, protocol=6, ttl=64), R.NOT_VRRP),
    # --- bad_ttl (RFC 3768 §7.1, RFC 9568 §7.1) -----------------------------------------
    ("ttl_254_one_hop", ip(V3, ttl=254), R.BAD_TTL),
    ("ttl_64", ip(V3, ttl=64), R.BAD_TTL),
    ("ttl_1", ip(V2, ttl=1), R.BAD_TTL),
    ("ttl_0", ip(V2, ttl=0), R.BAD_TTL),
    # --- short_packet -----------------------------------------------------------------
    ("no_vrrp_header", ip(b""), R.SHORT_PACKET),
    ("vrrp_header_7_bytes", ip(V3[:7]), R.SHORT_PACKET),
    # --- bad_version ------------------------------------------------------------------
    ("version_0", ip(patched(V3, 0, b"\x01")), R.BAD_VERSION),
    ("version_1", ip(patched(V2, 0, b"\x11")), R.BAD_VERSION),
    ("version_4", ip(patched(V3, 0, b"\x41")), R.BAD_VERSION),
    ("version_15", ip(patched(V3, 0, b"\xf1")), R.BAD_VERSION),
    ("v2_advert_for_v3_vrid", ip(advert(2, vrid=V3_VRID)), R.BAD_VERSION),
    ("v3_advert_for_v2_vrid", ip(advert(3, vrid=V2_VRID)), R.BAD_VERSION),
    (
        "v3_advert_for_v2_auth_vrid",
        ip(advert(3, vrid=V2_AUTH_VRID, interval_cs=200)),
        R.BAD_VERSION,
    ),
    # --- bad_type ---------------------------------------------------------------------
    ("v3_type_0", ip(patched(V3, 0, b"\x30")), R.BAD_TYPE),
    ("v3_type_2", ip(patched(V3, 0, b"\x32")), R.BAD_TYPE),
    ("v2_type_15", ip(patched(V2, 0, b"\x2f")), R.BAD_TYPE),
    # --- bad_length -------------------------------------------------------------------
    ("v3_count_0_no_addresses", ip(patched(V3[:8], 3, b"\x00")), R.BAD_LENGTH),
    ("v3_count_0_with_address", ip(patched(V3, 3, b"\x00")), R.BAD_LENGTH),
    ("v2_count_0_trailer_only", ip(patched(V2[:8] + V2[12:], 3, b"\x00")), R.BAD_LENGTH),
    ("v3_count_2_one_address", ip(patched(V3, 3, b"\x02")), R.BAD_LENGTH),
    (
        "v3_count_1_two_addresses",
        ip(patched(advert(3, addresses=(VIP, OTHER_PEER)), 3, b"\x01")),
        R.BAD_LENGTH,
    ),
    (
        "v2_count_3_two_addresses",
        ip(patched(advert(2, addresses=(VIP, OTHER_PEER)), 3, b"\x03")),
        R.BAD_LENGTH,
    ),
    ("v2_without_auth_trailer", ip(patched(V2[:-8], 0, V2[:1], checksum_form=MO)), R.BAD_LENGTH),
    ("v3_with_v2_style_trailer", ip(patched(V3 + bytes(8), 0, V3[:1])), R.BAD_LENGTH),
    ("v3_one_byte_extra", ip(patched(V3 + b"\x00", 0, V3[:1])), R.BAD_LENGTH),
    ("length_checked_before_checksum", ip(flip_checksum(patched(V3, 3, b"\x02"))), R.BAD_LENGTH),
    # CARP (OpenBSD/FreeBSD) shares protocol 112 and the first byte 0x21.
    ("carp_advert", ip(carp()), R.BAD_LENGTH),
    (
        "carp_vhid_of_configured_v2_vrid",
        ip(carp(vhid=V2_VRID, advskew=100, advbase=1)),
        R.BAD_LENGTH,
    ),
    ("carp_demoted", ip(carp(vhid=V3_VRID, demote=240, advbase=3)), R.BAD_LENGTH),
    # --- bad_checksum -----------------------------------------------------------------
    ("v3_checksum_wrong", ip(flip_checksum(V3)), R.BAD_CHECKSUM),
    ("v3_message_only_checksum_wrong", ip(flip_checksum(V3_MESSAGE_ONLY)), R.BAD_CHECKSUM),
    ("v2_checksum_wrong", ip(flip_checksum(V2)), R.BAD_CHECKSUM),
    ("v2_auth_checksum_wrong", ip(flip_checksum(V2_AUTH)), R.BAD_CHECKSUM),
    ("v2_checksum_zero", ip(V2[:6] + b"\x00\x00" + V2[8:]), R.BAD_CHECKSUM),
    (
        "v3_address_changed_after_checksum",
        ip(patched(V3, 8, OTHER_PEER.packed, checksum_form=None)),
        R.BAD_CHECKSUM,
    ),
    # The VRRPv2 checksum never has a pseudo-header (RFC 3768 §5.3.8).
    (
        "v2_with_v3_pseudo_header_checksum",
        ip(pseudo_header_checksummed(V2)),
        R.BAD_CHECKSUM,
    ),
    # keepalived <= 1.3.6 put 224.0.0.18 in the pseudo-header of unicast adverts.
    ("v3_unicast_checksum_with_group_destination", ip(advert(3), destination=SELF), R.BAD_CHECKSUM),
    ("v3_checksum_with_wrong_source", ip(advert(3, source=OTHER_PEER)), R.BAD_CHECKSUM),
    (
        "checksum_checked_before_vrid",
        ip(flip_checksum(advert(3, vrid=UNCONFIGURED_VRID))),
        R.BAD_CHECKSUM,
    ),
    (
        "checksum_checked_before_own_address",
        ip(flip_checksum(advert(3, source=SELF)), source=SELF),
        R.BAD_CHECKSUM,
    ),
    # --- bad_interval (RFC 9568 erratum 8301) ------------------------------------------
    ("v3_interval_0", ip(patched(V3, 4, b"\x00\x00")), R.BAD_INTERVAL),
    ("v3_interval_0_reserved_bits_set", ip(patched(V3, 4, b"\xf0\x00")), R.BAD_INTERVAL),
    ("v2_interval_0", ip(patched(V2, 5, b"\x00", checksum_form=MO)), R.BAD_INTERVAL),
    (
        "interval_checked_before_vrid",
        ip(patched(advert(3, vrid=UNCONFIGURED_VRID), 4, b"\x00\x00")),
        R.BAD_INTERVAL,
    ),
    # --- unknown_vrid -----------------------------------------------------------------
    ("v3_unknown_vrid", ip(advert(3, vrid=UNCONFIGURED_VRID)), R.UNKNOWN_VRID),
    ("v2_unknown_vrid", ip(advert(2, vrid=1)), R.UNKNOWN_VRID),
    ("vrid_0", ip(patched(V3, 1, b"\x00")), R.UNKNOWN_VRID),
    ("vrid_255_unconfigured", ip(advert(3, vrid=255)), R.UNKNOWN_VRID),
    (
        "vrid_checked_before_own_address",
        ip(advert(3, vrid=UNCONFIGURED_VRID, source=SELF), source=SELF),
        R.UNKNOWN_VRID,
    ),
    # --- own_advert -------------------------------------------------------------------
    ("v3_own_advert_looped_back", ip(advert(3, source=SELF), source=SELF), R.OWN_ADVERT),
    ("v2_own_advert_looped_back", ip(advert(2, source=SELF), source=SELF), R.OWN_ADVERT),
    (
        "own_checked_before_version",
        ip(advert(2, vrid=V3_VRID, source=SELF), source=SELF),
        R.OWN_ADVERT,
    ),
    # --- interval_mismatch (RFC 3768 §7.1) ----------------------------------------------
    ("v2_interval_2s_ours_1s", ip(advert(2, interval_cs=200)), R.INTERVAL_MISMATCH),
    (
        "v2_interval_1s_ours_2s",
        ip(
            advert(
                2,
                vrid=V2_AUTH_VRID,
                interval_cs=100,
                auth_type=AuthType.SIMPLE,
                auth_password=PASSWORD,
            )
        ),
        R.INTERVAL_MISMATCH,
    ),
    (
        "interval_checked_before_auth",
        ip(advert(2, vrid=V2_AUTH_VRID, interval_cs=300)),
        R.INTERVAL_MISMATCH,
    ),
    # --- auth_mismatch (RFC 3768 §7.1; RFC 2338 §7.1 for the password) -----------------
    (
        "v2_auth_none_ours_simple",
        ip(advert(2, vrid=V2_AUTH_VRID, interval_cs=200)),
        R.AUTH_MISMATCH,
    ),
    (
        "v2_auth_simple_ours_none",
        ip(advert(2, auth_type=AuthType.SIMPLE, auth_password=PASSWORD)),
        R.AUTH_MISMATCH,
    ),
    ("v2_auth_type_2_ah", ip(patched(V2, 4, b"\x02", checksum_form=MO)), R.AUTH_MISMATCH),
    ("v2_auth_type_255", ip(patched(V2_AUTH, 4, b"\xff", checksum_form=MO)), R.AUTH_MISMATCH),
    ("v2_wrong_password", ip(v2_auth_advert(b"secret")), R.AUTH_MISMATCH),
    ("v2_password_prefix", ip(v2_auth_advert(PASSWORD[:-1])), R.AUTH_MISMATCH),
    ("v2_password_longer", ip(v2_auth_advert(PASSWORD + b"!")), R.AUTH_MISMATCH),
    ("v2_password_empty", ip(v2_auth_advert(b"")), R.AUTH_MISMATCH),
    ("v2_password_case", ip(v2_auth_advert(PASSWORD.upper())), R.AUTH_MISMATCH),
    # keepalived zero-pads (strncpy); anything else after the password is a mismatch.
    (
        "v2_password_garbage_padding",
        ip(patched(V2_AUTH, len(V2_AUTH) - 2, b"\x00x", checksum_form=MO)),
        R.AUTH_MISMATCH,
    ),
    # --- wrong_destination (draft-abinabraham-vrrp-unicast: modes ignore each other) --
    (
        "multicast_mode_v3_unicast_to_us",
        ip(advert(3, destination=SELF), destination=SELF),
        R.WRONG_DESTINATION,
    ),
    ("multicast_mode_v2_unicast_to_us", ip(V2, destination=SELF), R.WRONG_DESTINATION),
    (
        "multicast_mode_v3_broadcast",
        ip(advert(3, destination=BROADCAST), destination=BROADCAST),
        R.WRONG_DESTINATION,
    ),
    (
        "unicast_mode_v3_multicast_advert",
        unicast(3, destination=VRRP_GROUP_V4),
        R.WRONG_DESTINATION,
    ),
    (
        "unicast_mode_v2_multicast_advert",
        unicast(2, destination=VRRP_GROUP_V4),
        R.WRONG_DESTINATION,
    ),
    # Our VIP is not one of our own addresses: peers must send to the node's address.
    ("unicast_mode_sent_to_vip", unicast(3, destination=VIP), R.WRONG_DESTINATION),
    ("unicast_mode_sent_to_other_host", unicast(3, destination=OTHER_PEER), R.WRONG_DESTINATION),
    (
        "destination_checked_before_peer",
        unicast(3, source=OTHER_PEER, destination=VRRP_GROUP_V4),
        R.WRONG_DESTINATION,
    ),
    # --- unknown_peer -------------------------------------------------------------------
    ("unicast_v3_from_unknown_peer", unicast(3, source=OTHER_PEER), R.UNKNOWN_PEER),
    ("unicast_v2_from_unknown_peer", unicast(2, source=OTHER_PEER), R.UNKNOWN_PEER),
    ("unicast_from_own_address", unicast(3, source=SELF), R.OWN_ADVERT),
    (
        "interval_checked_before_peer",
        unicast(2, source=OTHER_PEER, interval_cs=200),
        R.INTERVAL_MISMATCH,
    ),
    (
        "version_checked_before_peer",
        ip(
            advert(2, vrid=UNICAST_V3_VRID, source=OTHER_PEER, destination=SELF),
            source=OTHER_PEER,
            destination=SELF,
        ),
        R.BAD_VERSION,
    ),
]


def _simple_cases() -> list[CorpusCase]:
    return [
        CorpusCase(name, datagram, LAN_POLICY, expected)
        for name, datagram, expected in SIMPLE_CASES
    ]


def _keepalived_cases() -> list[CorpusCase]:
    """Every capture, accepted; and the same bytes on interfaces that must refuse them."""
    cases: list[CorpusCase] = []
    for name, (datagram, _decode) in VECTORS.items():
        cases.append(CorpusCase(f"keepalived_{name}", datagram, LAN_POLICY, None))
        cases.append(
            CorpusCase(
                f"keepalived_{name}_no_vrids_here",
                datagram,
                ReceivePolicy(vrids={}, own_addresses=frozenset({SELF})),
                RejectReason.UNKNOWN_VRID,
            )
        )
        cases.append(
            CorpusCase(
                f"keepalived_{name}_seen_by_sender",
                datagram,
                ReceivePolicy(vrids=LAN_POLICY.vrids, own_addresses=frozenset({PEER})),
                RejectReason.OWN_ADVERT,
            )
        )
    return cases


#: The captures whose every truncation is in the corpus.
TRUNCATED_VECTORS = ("v3_p100_1vip_1s", "v2_p100_1vip_noauth", "v2_p150_2vip_pass")


def _truncation_cases() -> list[CorpusCase]:
    """Every proper prefix of a capture, in two shapes.

    ``cut``: the datagram itself is cut short, so its IP total length lies (a raw socket
    never delivers this, a buggy or hostile sender's frame may look like it).
    ``short``: the VRRP message is cut and the IP header says so, as the kernel delivers a
    datagram that was sent short.
    """
    cases: list[CorpusCase] = []
    for name in TRUNCATED_VECTORS:
        datagram = VECTORS[name][0]
        cases.extend(
            CorpusCase(f"cut_{name}_at_{n}", datagram[:n], LAN_POLICY, RejectReason.BAD_IP_HEADER)
            for n in range(len(datagram))
        )
        message = _message_of(datagram)
        cases.extend(
            CorpusCase(
                f"short_{name}_vrrp_{n}_bytes",
                ip(message[:n]),
                LAN_POLICY,
                RejectReason.SHORT_PACKET if n < 8 else RejectReason.BAD_LENGTH,
            )
            for n in range(len(message))
        )
    return cases


def _ttl_cases() -> list[CorpusCase]:
    """A keepalived capture re-sent with every TTL: only 255 is accepted."""
    datagram = VECTORS["v3_p100_1vip_1s"][0]
    return [
        CorpusCase(
            f"keepalived_v3_ttl_{ttl}",
            set_ip_header_byte(datagram, 8, ttl),
            LAN_POLICY,
            None if ttl == 255 else RejectReason.BAD_TTL,
        )
        for ttl in (0, 1, 2, 63, 64, 128, 254, 255)
    ]


CORPUS: list[CorpusCase] = (
    _keepalived_cases() + _simple_cases() + _truncation_cases() + _ttl_cases()
)
