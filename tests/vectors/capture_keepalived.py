"""Capture golden VRRP advertisements from a real keepalived (run as root, by hand).

Why: the codec must decode what keepalived really sends, byte for byte, and the eBPF filter
is tested against the same bytes (``tests/corpus.py``). Our own encoder cannot be the
source of truth for its own tests, so the expected decode written to each ``.json``
sidecar comes from the keepalived configuration below, never from ``agent.core.packet``.

What it does: builds two throwaway network namespaces ``vc<pid>a`` (keepalived) and
``vc<pid>b`` (capture) joined by a veth pair, starts one keepalived with one instance per
scenario in the first, reads frames with an ``AF_PACKET`` socket opened inside the
second, stores the first advert of each instance while it is master, stops keepalived
with SIGTERM and stores the priority-0 advert each instance sends when it gives up
(RFC 3768 §6.4.3, RFC 9568 §6.4.3). The namespaces and keepalived are always removed,
also on errors and Ctrl-C. Nothing touches the root namespace's interfaces.

Usage (from the repository root; see tests/vectors/README.md)::

    .venv/bin/python tests/vectors/capture_keepalived.py [--out tests/vectors]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Fixed documentation addresses (RFC 5737) so that regenerating gives the same vectors
# apart from the IP identification field, which keepalived increments.
KEEPALIVED_ADDRESS = "192.0.2.1"
CAPTURE_ADDRESS = "192.0.2.2"
GROUP = "224.0.0.18"
ETH_P_IP = 0x0800
IPPROTO_VRRP = 112
CLONE_NEWNET = 0x40000000
CAPTURE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Scenario:
    """One keepalived vrrp_instance and the vector files it produces."""

    name: str
    version: int
    vrid: int
    priority: int
    advert_int: str  # as written in keepalived.conf, seconds
    vips: tuple[str, ...]
    auth_pass: str | None = None

    @property
    def interval_cs(self) -> int:
        return round(float(self.advert_int) * 100)

    def config(self) -> str:
        vips = "\n".join(f"        {vip}/24" for vip in self.vips)
        auth = ""
        if self.auth_pass is not None:
            auth = (
                "    authentication {\n"
                "        auth_type PASS\n"
                f"        auth_pass {self.auth_pass}\n"
                "    }\n"
            )
        return (
            f"vrrp_instance {self.name} {{\n"
            "    state MASTER\n"
            "    interface eth0\n"
            f"    version {self.version}\n"
            f"    virtual_router_id {self.vrid}\n"
            f"    priority {self.priority}\n"
            f"    advert_int {self.advert_int}\n"
            f"{auth}"
            f"    virtual_ipaddress {{\n{vips}\n    }}\n"
            "}\n"
        )


SCENARIOS = (
    Scenario("v3_p100_1vip_1s", 3, 51, 100, "1", ("192.0.2.100",)),
    Scenario(
        "v3_p150_3vip_100ms", 3, 52, 150, "0.1", ("192.0.2.110", "192.0.2.111", "192.0.2.112")
    ),
    Scenario("v2_p100_1vip_noauth", 2, 53, 100, "1", ("192.0.2.120",)),
    Scenario("v2_p150_2vip_pass", 2, 54, 150, "2", ("192.0.2.130", "192.0.2.131"), "s3cr3t"),
)


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def keepalived_config() -> str:
    globals_ = "global_defs {\n    router_id vc_capture\n    vrrp_garp_master_repeat 1\n}\n"
    return globals_ + "".join(scenario.config() for scenario in SCENARIOS)


def packet_socket_in(namespace: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` inside ``namespace``.

    A socket belongs to the namespace its creator was in, so the thread switches in,
    creates the socket and switches back (Python 3.11 has no os.setns: use libc).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/ns/net") as home, open(f"/run/netns/{namespace}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into capture namespace")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            sock.bind((ifname, ETH_P_IP))
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    sock.settimeout(0.5)
    return sock


def collect(sock: socket.socket, wanted: set[tuple[int, bool]]) -> dict[tuple[int, bool], bytes]:
    """Read adverts until one per (vrid, is_priority_zero) in ``wanted`` was seen."""
    found: dict[tuple[int, bool], bytes] = {}
    deadline = time.monotonic() + CAPTURE_TIMEOUT_S
    while wanted - found.keys():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no advert seen for {sorted(wanted - found.keys())}")
        try:
            packet = sock.recv(65535)
        except TimeoutError:
            continue
        if len(packet) < 20 or packet[9] != IPPROTO_VRRP:
            continue
        header_len = (packet[0] & 0x0F) * 4
        total_len = struct.unpack_from("!H", packet, 2)[0]
        datagram = packet[:total_len]
        vrid, priority = datagram[header_len + 1], datagram[header_len + 2]
        key = (vrid, priority == 0)
        if key in wanted and key not in found:
            found[key] = datagram
    return found


def sidecar(scenario: Scenario, datagram: bytes, priority: int) -> dict[str, object]:
    """The expected decode, taken from the keepalived configuration (not from our codec)."""
    tos, identification, flags_fragment, ttl = struct.unpack_from("!xBxxHHB", datagram)
    return {
        "origin": "keepalived 2.2.7 (Debian 12), captured by tests/vectors/capture_keepalived.py",
        "keepalived_config": scenario.config().splitlines(),
        "ip": {
            "source": KEEPALIVED_ADDRESS,
            "destination": GROUP,
            "ttl": ttl,
            "tos": tos,
            "identification": identification,
            "flags_fragment": flags_fragment,
            "header_length": (datagram[0] & 0x0F) * 4,
        },
        "vrrp": {
            "version": scenario.version,
            "vrid": scenario.vrid,
            "priority": priority,
            "interval_cs": scenario.interval_cs,
            "addresses": list(scenario.vips),
            # keepalived sends VRRPv3 over IPv4 with the pseudo-header (protocol.md §4).
            "checksum_form": "pseudo_header" if scenario.version == 3 else "message_only",
            "auth_type": "simple" if scenario.auth_pass is not None else "none",
            "auth_password": scenario.auth_pass or "",
        },
    }


def write_vector(out: Path, name: str, datagram: bytes, decode: dict[str, object]) -> None:
    hex_lines = [datagram[i : i + 16].hex(" ") for i in range(0, len(datagram), 16)]
    (out / f"{name}.hex").write_text("\n".join(hex_lines) + "\n")
    (out / f"{name}.json").write_text(json.dumps(decode, indent=2) + "\n")
    print(f"wrote {name} ({len(datagram)} bytes)")


def capture(out: Path) -> None:
    pid = os.getpid()
    ns_ka, ns_cap = f"vc{pid}a", f"vc{pid}b"
    created: list[str] = []
    keepalived: subprocess.Popen[bytes] | None = None
    try:
        for namespace in (ns_ka, ns_cap):
            run("ip", "netns", "add", namespace)
            created.append(namespace)
            run("ip", "-n", namespace, "link", "set", "lo", "up")
        # The veth pair is created inside the keepalived namespace: the root namespace
        # never sees either end.
        run("ip", "-n", ns_ka, "link", "add", "eth0", "type", "veth",
            "peer", "name", "eth0", "netns", ns_cap)  # fmt: skip
        for namespace, address in ((ns_ka, KEEPALIVED_ADDRESS), (ns_cap, CAPTURE_ADDRESS)):
            run("ip", "-n", namespace, "address", "add", f"{address}/24", "dev", "eth0")
            run("ip", "-n", namespace, "link", "set", "eth0", "up")
        sock = packet_socket_in(ns_cap, "eth0")
        with tempfile.TemporaryDirectory(prefix="vc-capture-") as tmp, sock:
            conf = Path(tmp, "keepalived.conf")
            conf.write_text(keepalived_config())
            keepalived = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns_ka,
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-P",
                    "-f",
                    str(conf),
                    "-p",
                    f"{tmp}/keepalived.pid",
                    "-r",
                    f"{tmp}/vrrp.pid",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            adverts = collect(sock, {(s.vrid, False) for s in SCENARIOS})
            keepalived.send_signal(signal.SIGTERM)
            releases = collect(sock, {(s.vrid, True) for s in SCENARIOS})
            keepalived.wait(timeout=10)
        for scenario in SCENARIOS:
            advert = adverts[(scenario.vrid, False)]
            write_vector(out, scenario.name, advert, sidecar(scenario, advert, scenario.priority))
            release = releases[(scenario.vrid, True)]
            name = scenario.name.replace(f"_p{scenario.priority}_", "_p0_", 1)
            write_vector(out, name, release, sidecar(scenario, release, 0))
    finally:
        if keepalived is not None and keepalived.poll() is None:
            keepalived.send_signal(signal.SIGTERM)
            try:
                keepalived.wait(timeout=5)
            except subprocess.TimeoutExpired:
                keepalived.kill()
                keepalived.wait()
        for namespace in created:
            subprocess.run(["ip", "netns", "delete", namespace], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: must run as root (network namespaces)", file=sys.stderr)
        return 2
    capture(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
