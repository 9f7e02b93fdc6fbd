"""The VRRP codec: checksums, encoder argument checks, and corrupted keepalived adverts.

The shared corpus (test_packet_corpus.py) pins one verdict per packet; here every field
of a real keepalived advert is corrupted in turn, and every single bit is flipped.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.core.constants import VRRP_GROUP_V4
from agent.core.packet import (
    Advertisement,
    AuthType,
    ChecksumForm,
    Rejected,
    RejectReason,
    classify,
    encode_advertisement,
    encode_ipv4_datagram,
    internet_checksum,
    vrrp_checksum,
)
from tests.corpus import LAN_POLICY, PEER, VECTORS, VIP, ip, patched

R = RejectReason
MO = ChecksumForm.MESSAGE_ONLY
#: keepalived's VRRPv3 advert (VRID 51, 1 VIP, 1 s) and VRRPv2 advert with a password.
V3_CAPTURE = VECTORS["v3_p100_1vip_1s"][0][20:]
V2_CAPTURE = VECTORS["v2_p150_2vip_pass"][0][20:]


def verdict(message: bytes) -> RejectReason | None:
    result = classify(ip(message), LAN_POLICY)
    return result.reason if isinstance(result, Rejected) else None


class TestInternetChecksum:
    def test_rfc1071_example(self) -> None:
        """RFC 1071 §3: the words sum to 0xddf2, so the checksum is its complement."""
        assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2

    def test_odd_length_is_padded_with_a_zero_byte(self) -> None:
        assert internet_checksum(b"\x12\x34\x56") == internet_checksum(b"\x12\x34\x56\x00")

    def test_a_message_with_its_checksum_sums_to_zero(self) -> None:
        assert internet_checksum(V2_CAPTURE) == 0

    def test_v3_pseudo_header_is_source_destination_zero_protocol_length(self) -> None:
        """protocol.md §4: keepalived/FRR/scapy prepend the RFC 768-style pseudo-header."""
        zeroed = V3_CAPTURE[:6] + b"\x00\x00" + V3_CAPTURE[8:]
        pseudo = PEER.packed + VRRP_GROUP_V4.packed + bytes([0, 112, 0, len(zeroed)])
        form = ChecksumForm.PSEUDO_HEADER
        expected = internet_checksum(pseudo + zeroed)
        computed = vrrp_checksum(
            zeroed, version=3, source=PEER, destination=VRRP_GROUP_V4, form=form
        )
        assert computed == expected == struct.unpack_from("!H", V3_CAPTURE, 6)[0]

    def test_v2_ignores_the_form_and_never_uses_a_pseudo_header(self) -> None:
        zeroed = V2_CAPTURE[:6] + b"\x00\x00" + V2_CAPTURE[8:]
        for form in ChecksumForm:
            computed = vrrp_checksum(
                zeroed, version=2, source=PEER, destination=VRRP_GROUP_V4, form=form
            )
            assert computed == internet_checksum(zeroed)


VALID: dict[str, Any] = {
    "version": 3,
    "vrid": 51,
    "priority": 100,
    "interval_cs": 100,
    "addresses": (VIP,),
    "source": PEER,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vrid": 0}, "vrid must be 1..255, got 0"),
        ({"vrid": 256}, "vrid must be 1..255, got 256"),
        ({"priority": -1}, "priority must be 0..255, got -1"),
        ({"priority": 256}, "priority must be 0..255, got 256"),
        ({"addresses": ()}, "an advert carries 1..255 addresses, got 0"),
        ({"addresses": (VIP,) * 256}, "an advert carries 1..255 addresses, got 256"),
        ({"interval_cs": 0}, "VRRPv3 interval must be 1..4095 cs, got 0"),
        ({"interval_cs": 4096}, "VRRPv3 interval must be 1..4095 cs, got 4096"),
        ({"version": 2, "interval_cs": 150}, "whole seconds, got 150 cs"),
        ({"version": 2, "interval_cs": 0}, "whole seconds, got 0 cs"),
        ({"version": 2, "interval_cs": 25600}, "whole seconds, got 25600 cs"),
        ({"version": 2, "auth_password": b"123456789"}, "at most 8 bytes"),
        ({"version": 4}, "version must be 2 or 3, got 4"),
    ],
)
def test_encoder_refuses_fields_that_do_not_fit_the_wire(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_advertisement(**(VALID | changes))


def test_ip_options_must_be_padded_to_whole_words() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        encode_ipv4_datagram(V3_CAPTURE, source=PEER, options=b"\x94\x04\x00")


def test_encoded_v3_message_layout() -> None:
    """RFC 9568 §5.1: 3|1, VRID, priority, count, rsvd|interval, checksum, addresses."""
    message = encode_advertisement(**(VALID | {"interval_cs": 4095, "priority": 255}))
    assert message[:6] == bytes([0x31, 51, 255, 1, 0x0F, 0xFF])
    assert message[8:] == VIP.packed


def test_encoded_v2_message_layout() -> None:
    """RFC 3768 §5.1: 2|1, VRID, priority, count, auth type, seconds, checksum, addresses,
    8 bytes of auth data."""
    message = encode_advertisement(
        **(VALID | {"version": 2, "interval_cs": 25500}),
        auth_type=AuthType.SIMPLE,
        auth_password=b"pw",
    )
    assert message[:6] == bytes([0x21, 51, 100, 1, 1, 255])
    assert message[8:] == VIP.packed + b"pw" + bytes(6)


# One row per header field of a real keepalived advert: (name, message, expected).
# ``patched`` recomputes the checksum, so only the named field is wrong.
FIELD_CORRUPTIONS: list[tuple[str, bytes, RejectReason | None]] = [
    ("v3_unchanged", V3_CAPTURE, None),
    ("v3_version_2", patched(V3_CAPTURE, 0, b"\x21"), R.BAD_LENGTH),
    ("v3_version_4", patched(V3_CAPTURE, 0, b"\x41"), R.BAD_VERSION),
    ("v3_type_0", patched(V3_CAPTURE, 0, b"\x30"), R.BAD_TYPE),
    ("v3_type_2", patched(V3_CAPTURE, 0, b"\x32"), R.BAD_TYPE),
    ("v3_vrid_unconfigured", patched(V3_CAPTURE, 1, b"\x63"), R.UNKNOWN_VRID),
    ("v3_vrid_of_a_v2_instance", patched(V3_CAPTURE, 1, b"\x35"), R.BAD_VERSION),
    ("v3_vrid_of_another_v3_instance", patched(V3_CAPTURE, 1, b"\x34"), None),
    ("v3_priority_0", patched(V3_CAPTURE, 2, b"\x00"), None),
    ("v3_count_0", patched(V3_CAPTURE, 3, b"\x00"), R.BAD_LENGTH),
    ("v3_count_2", patched(V3_CAPTURE, 3, b"\x02"), R.BAD_LENGTH),
    ("v3_count_255", patched(V3_CAPTURE, 3, b"\xff"), R.BAD_LENGTH),
    ("v3_interval_0", patched(V3_CAPTURE, 4, b"\x00\x00"), R.BAD_INTERVAL),
    ("v3_reserved_bits", patched(V3_CAPTURE, 4, b"\x80\x64"), None),
    ("v3_checksum_plus_1", V3_CAPTURE[:6] + b"\x05\x73" + V3_CAPTURE[8:], R.BAD_CHECKSUM),
    ("v3_message_only_checksum", patched(V3_CAPTURE, 0, b"\x31", checksum_form=MO), None),
    ("v3_address_unchecksummed", V3_CAPTURE[:8] + bytes(4), R.BAD_CHECKSUM),
    ("v3_truncated_address", patched(V3_CAPTURE[:-1], 0, b"\x31"), R.BAD_LENGTH),
    ("v2_unchanged", V2_CAPTURE, None),
    ("v2_version_3", patched(V2_CAPTURE, 0, b"\x31"), R.BAD_LENGTH),
    ("v2_version_1", patched(V2_CAPTURE, 0, b"\x11"), R.BAD_VERSION),
    ("v2_type_3", patched(V2_CAPTURE, 0, b"\x23"), R.BAD_TYPE),
    ("v2_vrid_of_a_v3_instance", patched(V2_CAPTURE, 1, b"\x33"), R.BAD_VERSION),
    ("v2_vrid_of_a_v2_instance_without_auth", patched(V2_CAPTURE, 1, b"\x35"), R.INTERVAL_MISMATCH),
    ("v2_count_1", patched(V2_CAPTURE, 3, b"\x01"), R.BAD_LENGTH),
    ("v2_count_3", patched(V2_CAPTURE, 3, b"\x03"), R.BAD_LENGTH),
    ("v2_auth_type_0", patched(V2_CAPTURE, 4, b"\x00"), R.AUTH_MISMATCH),
    ("v2_auth_type_2", patched(V2_CAPTURE, 4, b"\x02"), R.AUTH_MISMATCH),
    ("v2_interval_0", patched(V2_CAPTURE, 5, b"\x00"), R.BAD_INTERVAL),
    ("v2_interval_1s", patched(V2_CAPTURE, 5, b"\x01"), R.INTERVAL_MISMATCH),
    ("v2_interval_255s", patched(V2_CAPTURE, 5, b"\xff"), R.INTERVAL_MISMATCH),
    ("v2_checksum_zero", V2_CAPTURE[:6] + b"\x00\x00" + V2_CAPTURE[8:], R.BAD_CHECKSUM),
    ("v2_password_first_byte", patched(V2_CAPTURE, 16, b"S"), R.AUTH_MISMATCH),
    ("v2_password_padding_byte", patched(V2_CAPTURE, 23, b"\x01"), R.AUTH_MISMATCH),
    ("v2_auth_trailer_missing", patched(V2_CAPTURE[:-8], 0, b"\x21"), R.BAD_LENGTH),
]


@pytest.mark.parametrize(
    ("message", "expected"),
    [row[1:] for row in FIELD_CORRUPTIONS],
    ids=[row[0] for row in FIELD_CORRUPTIONS],
)
def test_corrupted_field_of_a_keepalived_advert(
    message: bytes, expected: RejectReason | None
) -> None:
    assert verdict(message) == expected


@pytest.mark.parametrize("name", ["v3_p150_3vip_100ms", "v2_p150_2vip_pass", "v2_p0_1vip_noauth"])
def test_every_single_bit_flip_of_a_keepalived_advert_is_rejected(name: str) -> None:
    """The ones'-complement checksum catches every single-bit error (RFC 1071 §2), and a
    flip in a field checked earlier is caught there: no flip ever yields an advert."""
    datagram = VECTORS[name][0]
    accepted = []
    for bit in range(8 * 20, 8 * len(datagram)):
        flipped = bytearray(datagram)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        if isinstance(classify(bytes(flipped), LAN_POLICY), Advertisement):
            accepted.append(bit)
    assert accepted == []


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_every_truncation_of_a_capture_is_rejected(name: str) -> None:
    """Cut datagrams lie about their length; cut messages are too short for their count."""
    datagram = VECTORS[name][0]
    message = datagram[20:]
    for n in range(len(datagram)):
        assert verdict_of(datagram[:n]) is R.BAD_IP_HEADER
    for n in range(len(message)):
        assert verdict(message[:n]) is (R.SHORT_PACKET if n < 8 else R.BAD_LENGTH)


def verdict_of(datagram: bytes) -> RejectReason | None:
    result = classify(datagram, LAN_POLICY)
    return result.reason if isinstance(result, Rejected) else None


def test_trailing_link_layer_padding_is_not_part_of_the_advert() -> None:
    datagram = VECTORS["v3_p100_1vip_1s"][0]
    padded = classify(datagram + b"\x00" * 28, LAN_POLICY)
    assert padded == classify(datagram, LAN_POLICY)
    assert isinstance(padded, Advertisement)


def test_rejected_ip_header_names_nothing() -> None:
    assert classify(b"\x45" + bytes(18), LAN_POLICY) == Rejected(R.BAD_IP_HEADER)


def test_accepted_v2_advert_reports_interval_in_centiseconds_and_message_only_form() -> None:
    result = classify(VECTORS["v2_p150_2vip_pass"][0], LAN_POLICY)
    assert result == Advertisement(
        version=2,
        vrid=54,
        priority=150,
        interval_cs=200,
        addresses=(IPv4Address("192.0.2.130"), IPv4Address("192.0.2.131")),
        source=PEER,
        checksum_form=MO,
    )


def test_v2_without_authentication_sends_zero_auth_data_even_with_a_password() -> None:
    """RFC 3768 §5.3.10: a stale password must not leak in clear when auth is off."""
    message = encode_advertisement(
        **(VALID | {"version": 2}), auth_type=AuthType.NONE, auth_password=b"secret"
    )
    assert message[-8:] == bytes(8)


def test_v3_checksum_forms_coincide_when_the_pseudo_header_sums_to_zero() -> None:
    """31.113.0.0 -> 224.0.0.18 with a 12-byte message: 0x1f71 + 0xe000 + 0x0012 + 0x0070 +
    0x000c = 0xffff, so the pseudo-header adds nothing and both forms verify; the codec
    reports the pseudo-header form (keepalived's)."""
    source = IPv4Address("31.113.0.0")
    message = encode_advertisement(**(VALID | {"source": source}), checksum_form=MO)
    result = classify(ip(message, source=source), LAN_POLICY)
    assert isinstance(result, Advertisement)
    assert result.checksum_form is ChecksumForm.PSEUDO_HEADER
