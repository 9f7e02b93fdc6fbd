"""The host layer against the real kernel: socket options, VIPs via netlink, GARP on the wire.

Each test runs a short Python program inside a lab node (``ip netns exec``), so every
socket and address change happens in a namespace the lab created; the test then reads
the kernel's own view (``/proc/net/igmp``, ``ip address``) or the frames the hub's bridge
saw (dumpcap + tshark).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable

import pytest

from agent.lab import Lab, Node
from agent.lab.pcap import await_frames, rows

pytestmark = pytest.mark.netns

#: 224.0.0.18 as /proc/net/igmp prints it (hex, host byte order on x86).
VRRP_GROUP_IGMP = "120000E0"


def python_in(node: Node, code: str, *, prefix: tuple[str, ...] = ()) -> str:
    """Run ``code`` with this interpreter inside ``node``; return its stdout."""
    done = node.run([*prefix, sys.executable, "-c", textwrap.dedent(code)], timeout=30)
    return done.stdout


def igmp_groups(node: Node, device: str) -> set[str]:
    """The multicast groups the kernel has joined on ``device`` (from /proc/net/igmp)."""
    groups: set[str] = set()
    current = None
    for line in node.run(["cat", "/proc/net/igmp"]).stdout.splitlines()[1:]:
        if not line.startswith("\t"):
            current = line.split()[1]
        elif current == device:
            groups.add(line.split()[0])
    return groups


def test_the_vrrp_socket_has_every_option_and_its_adverts_leave_with_ttl_255(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    node = lab[0]
    assert VRRP_GROUP_IGMP not in igmp_groups(node, "eth0")
    with lab.capture() as capture:
        report = json.loads(
            python_in(
                node,
                """
                import asyncio, json, socket
                from ipaddress import IPv4Address
                from agent.core.packet import encode_advertisement
                from agent.host.netlink import Netlink
                from agent.host.sockets import open_vrrp_socket, send_to_vrrp_group

                async def main():
                    async with Netlink() as netlink:
                        return await netlink.interface("eth0")

                info = asyncio.run(main())
                primary = info.primary_address()
                sock = open_vrrp_socket("eth0", info.index, primary)
                ip = socket.IPPROTO_IP
                send_to_vrrp_group(sock, encode_advertisement(
                    version=3, vrid=7, priority=42, interval_cs=100,
                    addresses=(IPv4Address("198.51.100.7"),), source=primary))
                print(json.dumps({
                    "multicast_all": sock.getsockopt(ip, 49),
                    "device": sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
                        .rstrip(b"\\0").decode(),
                    "multicast_if": socket.inet_ntoa(
                        sock.getsockopt(ip, socket.IP_MULTICAST_IF, 4)),
                    "multicast_ttl": sock.getsockopt(ip, socket.IP_MULTICAST_TTL),
                    "ttl": sock.getsockopt(ip, socket.IP_TTL),
                    "multicast_loop": sock.getsockopt(ip, socket.IP_MULTICAST_LOOP),
                    "blocking": sock.getblocking(),
                    "igmp": open("/proc/net/igmp").read(),
                }))
                """,
            )
        )
        await_frames(capture, "vrrp", 1)
    assert report["multicast_all"] == 0
    assert report["device"] == "eth0"
    assert report["multicast_if"] == str(node.ip)
    assert report["multicast_ttl"] == 255
    assert report["ttl"] == 255
    assert report["multicast_loop"] == 0
    assert report["blocking"] is False
    # Joined 224.0.0.18 on eth0 while the socket was open (ip_mreqn with the ifindex) ...
    assert VRRP_GROUP_IGMP in report["igmp"].split("eth0", 1)[1]
    # ... and the membership went away with the socket.
    assert VRRP_GROUP_IGMP not in igmp_groups(node, "eth0")
    adverts = rows(capture.path, "vrrp", "ip.src", "ip.dst", "ip.ttl", "vrrp.prio", "vrrp.ip_addr")
    assert adverts == [[str(node.ip), "224.0.0.18", "255", "42", "198.51.100.7"]]


def test_a_missing_interface_and_a_missing_capability_are_clear_errors(
    make_lab: Callable[[int], Lab],
) -> None:
    node = make_lab(1)[0]
    program = """
        import asyncio
        from ipaddress import IPv4Address
        from agent.host.errors import HostError
        from agent.host.netlink import Netlink
        from agent.host.sockets import open_vrrp_socket

        async def lookup():
            async with Netlink() as netlink:
                await netlink.interface("nope0")

        for attempt in (lambda: asyncio.run(lookup()),
                        lambda: open_vrrp_socket("eth0", 2, IPv4Address("10.0.0.1"))):
            try:
                attempt()
            except HostError as exc:
                print(exc)
        """
    lines = python_in(node, program).splitlines()
    assert lines[0] == "nope0: no such interface"
    # Without CAP_NET_RAW (dropped from the bounding set) the raw socket is refused.
    no_raw = ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw")
    lines = python_in(node, program, prefix=no_raw).splitlines()
    assert lines[1].startswith("eth0: opening a raw VRRP socket needs the CAP_NET_RAW capability")


def test_a_vip_change_without_cap_net_admin_names_the_capability(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(1)
    node = lab[0]
    program = f"""
        import asyncio
        from ipaddress import IPv4Interface
        from agent.host.errors import HostError
        from agent.host.netlink import Netlink

        async def main():
            async with Netlink() as netlink:
                info = await netlink.interface("eth0")
                try:
                    await netlink.add_vip("eth0", info.index, IPv4Interface("{lab.vip()}"))
                except HostError as exc:
                    print(exc)

        asyncio.run(main())
        """
    no_admin = ("setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin")
    assert python_in(node, program, prefix=no_admin).strip() == (
        f"eth0: cannot add VIP {lab.vip()}: EPERM (Operation not permitted); "
        "the agent needs the CAP_NET_ADMIN capability"
    )
    assert not node.has_address(lab.vip())


def test_vips_are_added_and_removed_idempotently_in_the_kernel(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(1)
    node = lab[0]
    vip = lab.vip()
    program = f"""
        import asyncio, sys
        from ipaddress import IPv4Interface
        from agent.host.netlink import Netlink

        async def main(verb):
            vip = IPv4Interface("{vip}")
            async with Netlink() as netlink:
                info = await netlink.interface("eth0")
                change = netlink.add_vip if verb == "add" else netlink.remove_vip
                await change("eth0", info.index, vip)
                await change("eth0", info.index, vip)  # a second time is not an error
                held = await netlink.present_vips("eth0", info.index, [vip])
                print(",".join(map(str, held)))

        asyncio.run(main(sys.argv[1]))
        """
    assert not node.has_address(vip)
    added = node.run([sys.executable, "-c", textwrap.dedent(program), "add"]).stdout
    assert added.strip() == str(vip)
    assert node.has_address(vip)
    # The primary address stays the one the node had: a VIP is never mistaken for it.
    listing = node.run(["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout
    addresses = [a["local"] for a in json.loads(listing)[0]["addr_info"]]
    assert addresses[0] == str(node.ip)
    removed = node.run([sys.executable, "-c", textwrap.dedent(program), "remove"]).stdout
    assert removed.strip() == ""
    assert not node.has_address(vip)


def test_gratuitous_arps_on_the_wire_carry_the_vip_as_sender_and_target(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    node = lab[0]
    vip = lab.vip()
    mac = node.mac()
    with lab.capture() as capture:
        python_in(
            node,
            f"""
            from ipaddress import IPv4Interface
            from agent.host.garp import GarpSender

            sender = GarpSender("eth0", bytes.fromhex("{mac.replace(":", "")}"))
            sender.send([IPv4Interface("{vip}")], 3)
            assert sender.sent == 3, sender.sent
            """,
        )
        await_frames(capture, "arp", 3)
    frames = rows(
        capture.path,
        "arp",
        "frame.len",
        "eth.src",
        "eth.dst",
        "arp.opcode",
        "arp.src.hw_mac",
        "arp.src.proto_ipv4",
        "arp.dst.hw_mac",
        "arp.dst.proto_ipv4",
    )
    garp = ["60", mac, "ff:ff:ff:ff:ff:ff", "1", mac, str(vip.ip), "00:00:00:00:00:00"]
    assert frames == [[*garp, str(vip.ip)]] * 3
