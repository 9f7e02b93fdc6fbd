"""Property tests: encode -> classify round trips, and classify() never raises."""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.constants import VRRP_GROUP_V4
from agent.core.packet import (
    Advertisement,
    AuthType,
    ChecksumForm,
    ReceivePolicy,
    Rejected,
    VridPolicy,
    classify,
    encode_advertisement,
    encode_ipv4_datagram,
    internet_checksum,
)
from tests.corpus import CORPUS, LAN_POLICY, CorpusCase

addresses = st.integers(0, 2**32 - 1).map(IPv4Address)


@dataclass(frozen=True)
class Fields:
    """Everything one advert carries, drawn within what the wire format allows."""

    version: int
    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPv4Address, ...]
    source: IPv4Address
    destination: IPv4Address
    checksum_form: ChecksumForm
    auth_type: AuthType
    auth_password: bytes

    def encode(self) -> bytes:
        return encode_advertisement(**asdict(self))

    def policy(self) -> ReceivePolicy:
        """A receiver configured like the sender (VRRPv2 enforces interval and auth): in
        unicast mode with the sender as its peer when the advert is sent to it."""
        if self.destination == VRRP_GROUP_V4:
            peers: frozenset[IPv4Address] = frozenset()
            own: frozenset[IPv4Address] = frozenset()
        else:
            peers, own = frozenset({self.source}), frozenset({self.destination})
        vrid_policy = VridPolicy(
            self.version, self.interval_cs, self.auth_type, self.auth_password, peers
        )
        return ReceivePolicy({self.vrid: vrid_policy}, own)


@st.composite
def advert_fields(draw: st.DrawFn) -> Fields:
    version = draw(st.sampled_from([2, 3]))
    auth_type, password = AuthType.NONE, b""
    if version == 2:
        interval_cs = 100 * draw(st.integers(1, 255))
        auth_type = draw(st.sampled_from(AuthType))
        if auth_type is AuthType.SIMPLE:
            password = draw(st.binary(max_size=8))
    else:
        interval_cs = draw(st.integers(1, 4095))
    source = draw(addresses)
    return Fields(
        version=version,
        vrid=draw(st.integers(1, 255)),
        priority=draw(st.integers(0, 255)),
        interval_cs=interval_cs,
        addresses=tuple(draw(st.lists(addresses, min_size=1, max_size=20))),
        source=source,
        destination=draw(st.just(VRRP_GROUP_V4) | addresses.filter(lambda a: a != source)),
        checksum_form=draw(st.sampled_from(ChecksumForm)),
        auth_type=auth_type,
        auth_password=password,
    )


def ambiguous_checksum(source: IPv4Address, destination: IPv4Address, length: int) -> bool:
    """Whether the pseudo-header sums to (negative) zero, so both v3 forms verify."""
    pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, 112, length)
    return internet_checksum(pseudo) == 0


@settings(max_examples=300)
@given(advert_fields())
def test_encoded_advert_classifies_back_to_the_same_fields(fields: Fields) -> None:
    """Both versions, both VRRPv3 checksum forms, group or unicast destination."""
    message = fields.encode()
    datagram = encode_ipv4_datagram(message, source=fields.source, destination=fields.destination)
    if fields.version == 2:
        form = ChecksumForm.MESSAGE_ONLY
    elif ambiguous_checksum(fields.source, fields.destination, len(message)):
        form = ChecksumForm.PSEUDO_HEADER
    else:
        form = fields.checksum_form
    assert classify(datagram, fields.policy()) == Advertisement(
        version=fields.version,
        vrid=fields.vrid,
        priority=fields.priority,
        interval_cs=fields.interval_cs,
        addresses=fields.addresses,
        source=fields.source,
        checksum_form=form,
    )


def assert_classifies(datagram: bytes, policy: ReceivePolicy = LAN_POLICY) -> None:
    assert isinstance(classify(datagram, policy), Advertisement | Rejected)


@given(st.binary(max_size=96))
def test_classify_never_raises_on_arbitrary_bytes(datagram: bytes) -> None:
    assert_classifies(datagram)


@given(
    payload=st.binary(max_size=64),
    first=st.sampled_from([0x21, 0x31]) | st.integers(0, 255),
    ttl=st.sampled_from([255, 254]),
    options=st.sampled_from([b"", b"\x94\x04\x00\x00"]),
)
def test_classify_never_raises_on_arbitrary_vrrp_payloads(
    payload: bytes, first: int, ttl: int, options: bytes
) -> None:
    """Random payloads behind a valid IP header reach the VRRP checks, not just the IP ones."""
    datagram = encode_ipv4_datagram(
        bytes([first]) + payload, source=IPv4Address("192.0.2.1"), ttl=ttl, options=options
    )
    assert_classifies(datagram)


@given(
    case=st.sampled_from(CORPUS),
    position=st.integers(0, 2000),
    value=st.integers(0, 255),
    cut=st.integers(0, 2000),
    tail=st.binary(max_size=16),
)
def test_classify_never_raises_on_mutated_corpus_packets(
    case: CorpusCase, position: int, value: int, cut: int, tail: bytes
) -> None:
    datagram = bytearray(case.datagram)
    if datagram:
        datagram[position % len(datagram)] = value
    assert_classifies(bytes(datagram[:cut]) + tail, case.policy)
