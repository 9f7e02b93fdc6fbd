"""The flood sender of bench/flood.py: runs inside a lab node (``ip netns exec``).

Sends invalid or foreign VRRPv3 adverts (unknown VRID, TTL 64, bad checksum; built by
:func:`agent.lab.flood.malformed_datagrams`, each with exactly that one defect) to the
victim's MAC only, at ``--rate`` frames/s in total, split over ``--senders`` processes (each
a pre-built frame list sent with one ``send`` per frame on an ``AF_PACKET`` socket, paced per
1 ms slice). The lab's :func:`agent.lab.flood.flood` paces per 10 ms: at 50,000 frames/s that
is bursts of 500 frames, which overflow a raw socket's default receive buffer before any
receiver can wake up, so a receiver would lose its real master's adverts to the generator's
burstiness rather than to the rate. Prints ``flooding ...`` when it starts and
``sent N frames in T s`` at the end: the caller computes the achieved rate from those.

This is a script, not a module of the ``bench`` package: it is started by path in the
node's namespace and needs nothing but ``agent``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import struct
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

from agent.core.packet import RejectReason
from agent.lab.flood import Target, malformed_datagrams

KINDS = (RejectReason.UNKNOWN_VRID, RejectReason.BAD_TTL, RejectReason.BAD_CHECKSUM)
SLICE_S = 0.001
_ETH_P_IP = 0x0800


def flood(
    interface: str, datagrams: list[bytes], destination_mac: bytes, rate: float, duration: float
) -> int:
    """Send the datagrams round-robin at ``rate`` frames/s for ``duration`` s; return the count."""
    own_mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    header = (
        destination_mac + bytes.fromhex(own_mac.replace(":", "")) + struct.pack("!H", _ETH_P_IP)
    )
    frames = [header + datagram for datagram in datagrams]
    kinds = len(frames)
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((interface, 0))
        send = sock.send
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            due = int((elapsed + SLICE_S) * rate)
            while sent < due:
                send(frames[sent % kinds])
                sent += 1
            time.sleep(SLICE_S)
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", default="eth0")
    p.add_argument("--source", type=IPv4Address, required=True)
    p.add_argument("--victim", type=IPv4Address, required=True)
    p.add_argument("--victim-mac", required=True)
    p.add_argument("--vrid", type=int, required=True)
    p.add_argument("--interval-cs", type=int, required=True)
    p.add_argument("--vip", type=IPv4Address, required=True)
    p.add_argument("--rate", type=float, required=True, help="frames/s, all senders together")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--senders", type=int, default=1)
    args = p.parse_args(argv)
    if args.senders < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--senders, --rate and --duration must be positive")
    target = Target(3, args.vrid, args.interval_cs, args.vip)
    every = malformed_datagrams((target,), source=args.source, victim=args.victim)
    datagrams = [every[kind] for kind in KINDS]
    mac = bytes.fromhex(args.victim_mac.replace(":", ""))
    share = args.rate / args.senders
    jobs = [
        (args.interface, datagrams[i:] + datagrams[:i], mac, share, args.duration)
        for i in range(args.senders)  # each sender starts at another kind
    ]
    print(f"flooding {' '.join(KINDS)} with {args.senders} sender(s)", flush=True)
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.senders) as pool:
        results = [pool.apply_async(flood, job) for job in jobs]
        sent = sum(result.get(args.duration + 30) for result in results)
    print(f"sent {sent} frames in {time.monotonic() - started:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
