"""Protocol constants (RFC 3768 for VRRPv2, RFC 9568 for VRRPv3)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Final

#: IP protocol number of VRRP (RFC 9568 §5.1.1.4). CARP shares it.
IPPROTO_VRRP: Final = 112
#: IPv4 multicast group of VRRP adverts (RFC 9568 §5.1.1.2).
VRRP_GROUP_V4: Final = IPv4Address("224.0.0.18")
#: TTL adverts are sent with and must arrive with (RFC 3768 §5.2.3, RFC 9568 §5.1.1.3).
VRRP_TTL: Final = 255
#: Priority of the address owner (RFC 9568 §5.2.4).
PRIORITY_OWNER: Final = 255
#: Priority a master sends when it gives up the role (RFC 9568 §5.2.4).
PRIORITY_RELEASE: Final = 0
#: The only VRRP packet type: ADVERTISEMENT (RFC 9568 §5.2.2).
TYPE_ADVERTISEMENT: Final = 1
#: Length of the fixed VRRP header common to both versions.
HEADER_LEN: Final = 8
#: Length of the VRRPv2 authentication trailer, always present (RFC 3768 §5.3.10).
V2_AUTH_DATA_LEN: Final = 8
#: VRRPv3 Max Adver Int is a 12-bit count of centiseconds, 1..4095 (RFC 9568 §5.2.7, erratum 8301).
V3_MAX_INTERVAL_CS: Final = 4095
#: VRRPv2 Adver Int is an 8-bit count of seconds (RFC 3768 §5.3.7).
V2_MAX_INTERVAL_S: Final = 255
#: IPv4 has room for at most this many addresses in one advert of a 1500-byte frame; the
#: count field is 8 bits.
MAX_ADDRESSES: Final = 255
