"""A bounded flood of malformed VRRP adverts, one for every reason the receiver can reject.

Every packet claims priority 254 for a VRID the victim really runs (except the one that tests an
unknown VRID), so a receiver that wrongly accepts any of them would see a better master and
stay backup when the real master dies: the end-to-end test can tell. Each datagram carries
exactly one defect; :func:`receive_policy` describes the victim so that a test can check with
:func:`agent.core.packet.classify` that each datagram is rejected for the reason it is named
after. Frames go out through an ``AF_PACKET`` socket because the kernel would repair (total
length, header checksum) or refuse to build some of them through an IP raw socket.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from agent.core.constants import IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_TTL
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

_ETH_P_IP = 0x0800
_CLAIMED_PRIORITY = 254
_EXPERIMENTAL_PROTOCOL = 253  # RFC 3692: "use for experimentation and testing"


@dataclass(frozen=True, slots=True)
class Target:
    """A virtual router the victim runs, as the flood needs to know it."""

    version: int
    vrid: int
    interval_cs: int
    vip: IPv4Address
    #: VRRPv2 simple password of the victim (empty: no authentication).
    auth_pass: bytes = b""
    #: The victim runs this VRID in unicast mode with this one peer (None: multicast).
    unicast_peer: IPv4Address | None = None

    @property
    def auth_type(self) -> AuthType:
        return AuthType.SIMPLE if self.auth_pass else AuthType.NONE


def receive_policy(targets: tuple[Target, ...], victim: IPv4Address) -> ReceivePolicy:
    """The policy the victim's receive path applies to these VRIDs."""
    vrids = {
        t.vrid: VridPolicy(
            t.version,
            t.interval_cs,
            t.auth_type,
            t.auth_pass,
            frozenset() if t.unicast_peer is None else frozenset({t.unicast_peer}),
        )
        for t in targets
    }
    return ReceivePolicy(vrids, frozenset({victim}))


def _advert(
    target: Target,
    source: IPv4Address,
    *,
    vrid: int | None = None,
    interval_cs: int | None = None,
    auth: tuple[AuthType, bytes] | None = None,
    destination: IPv4Address = VRRP_GROUP_V4,
) -> bytes:
    """A well-formed advert for ``target`` claiming priority 254, with the given changes
    (``destination`` only enters the VRRPv3 checksum)."""
    auth_type, auth_password = auth or (target.auth_type, target.auth_pass)
    return encode_advertisement(
        version=target.version,
        vrid=target.vrid if vrid is None else vrid,
        priority=_CLAIMED_PRIORITY,
        interval_cs=target.interval_cs if interval_cs is None else interval_cs,
        addresses=(target.vip,),
        source=source,
        destination=destination,
        auth_type=auth_type,
        auth_password=auth_password,
    )


def _rechecksum(message: bytes, source: IPv4Address) -> bytes:
    """Give a hand-patched message a correct checksum, so it has only the intended defect."""
    zeroed = message[:6] + b"\0\0" + message[8:]
    checksum = vrrp_checksum(
        zeroed,
        version=message[0] >> 4,
        source=source,
        destination=VRRP_GROUP_V4,
        form=ChecksumForm.PSEUDO_HEADER,
    )
    return zeroed[:6] + struct.pack("!H", checksum) + zeroed[8:]


def malformed_datagrams(
    targets: tuple[Target, ...], *, source: IPv4Address, victim: IPv4Address
) -> dict[RejectReason, bytes]:
    """One IPv4 datagram per reject reason (the VRRPv2-only reasons need a VRRPv2 target)."""
    main = targets[0]
    good = _advert(main, source)

    def ip(
        payload: bytes, *, ttl: int = VRRP_TTL, protocol: int = IPPROTO_VRRP, fragment: int = 0
    ) -> bytes:
        return encode_ipv4_datagram(
            payload, source=source, ttl=ttl, protocol=protocol, flags_fragment=fragment
        )

    too_long = bytearray(ip(good))
    struct.pack_into("!HH", too_long, 2, len(too_long) + 40, 0)  # total length past the end
    struct.pack_into("!H", too_long, 10, 0)
    struct.pack_into("!H", too_long, 10, internet_checksum(bytes(too_long[:20])))

    def patched(offset: int, value: int) -> bytes:
        message = bytearray(good)
        message[offset] = value
        return ip(_rechecksum(bytes(message), source))

    zero_interval = bytearray(good)
    struct.pack_into("!H", zero_interval, 4, 0)
    unused_vrid = next(v for v in range(1, 256) if v not in {t.vrid for t in targets})
    datagrams = {
        RejectReason.BAD_IP_HEADER: bytes(too_long),
        RejectReason.FRAGMENT: ip(good, fragment=0x2000),
        RejectReason.NOT_VRRP: ip(good, protocol=_EXPERIMENTAL_PROTOCOL),
        RejectReason.BAD_TTL: ip(good, ttl=64),
        RejectReason.SHORT_PACKET: ip(good[:6]),
        RejectReason.BAD_VERSION: patched(0, 0x10 | (good[0] & 0x0F)),
        RejectReason.BAD_TYPE: patched(0, (good[0] & 0xF0) | 2),
        RejectReason.BAD_LENGTH: patched(3, 2),
        RejectReason.BAD_CHECKSUM: ip(good[:6] + bytes([good[6] ^ 0x55, good[7]]) + good[8:]),
        RejectReason.UNKNOWN_VRID: ip(_advert(main, source, vrid=unused_vrid)),
        RejectReason.OWN_ADVERT: encode_ipv4_datagram(_advert(main, victim), source=victim),
    }
    if main.version == 3:
        datagrams[RejectReason.BAD_INTERVAL] = ip(_rechecksum(bytes(zero_interval), source))
    for target in targets:
        if target.version != 2:
            continue
        wrong_auth = (AuthType.NONE, b"") if target.auth_pass else (AuthType.SIMPLE, b"intruder")
        slower = target.interval_cs + 100
        datagrams[RejectReason.INTERVAL_MISMATCH] = ip(_advert(target, source, interval_cs=slower))
        datagrams[RejectReason.AUTH_MISMATCH] = ip(_advert(target, source, auth=wrong_auth))
    # The unicast draft's mode checks: unicast to a multicast-mode VRID (or multicast to a
    # unicast-mode one), and unicast from a stranger to a unicast-mode VRID.
    for target in targets:
        if target.unicast_peer is None:
            unicast = _advert(target, source, destination=victim)
            datagrams[RejectReason.WRONG_DESTINATION] = encode_ipv4_datagram(
                unicast, source=source, destination=victim
            )
    for target in targets:
        if target.unicast_peer is not None:
            datagrams.setdefault(RejectReason.WRONG_DESTINATION, ip(_advert(target, source)))
            unicast = _advert(target, source, destination=victim)
            datagrams[RejectReason.UNKNOWN_PEER] = encode_ipv4_datagram(
                unicast, source=source, destination=victim
            )
    return datagrams


def flood(
    interface: str,
    datagrams: list[bytes],
    *,
    destination_mac: bytes,
    rate: float,
    duration: float,
    max_frames: int,
) -> int:
    """Send the datagrams round-robin at ``rate`` frames/s until ``duration`` or ``max_frames``.

    Returns the number of frames sent. Pacing is per 10 ms slice, so the rate holds on average
    without a syscall-heavy sleep per frame.

    ``destination_mac`` is the victim's own MAC, not the group's: the IP destination stays
    224.0.0.18 (or the victim's address, for the unicast ones), so the victim's kernel
    delivers the datagrams to its VRRP socket, but the
    other speakers never see them. They must not: the ``own_advert`` datagram carries the
    victim's address as its source and is a perfectly valid priority-254 advert to anyone else.
    """
    mac = bytes.fromhex(Path(f"/sys/class/net/{interface}/address").read_text().replace(":", ""))
    header = destination_mac + mac + struct.pack("!H", _ETH_P_IP)
    frames = [header + datagram for datagram in datagrams]
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((interface, 0))
        start = time.monotonic()
        while sent < max_frames:
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = min(max_frames, int((elapsed + 0.01) * rate))
            while sent < due:
                sock.send(frames[sent % len(frames)])
                sent += 1
            time.sleep(0.01)
    return sent
