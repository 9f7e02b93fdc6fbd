"""``python -m agent.lab demo | sweep | flood``: the lab's command line.

``flood`` is what the malformed-packet test runs inside a spare node namespace: it has to be a
separate process there, since its raw socket must be opened in that namespace.
"""

from __future__ import annotations

import argparse
import sys
import time
from ipaddress import IPv4Address

from agent.lab.demo import main as demo_main
from agent.lab.flood import Target, flood, malformed_datagrams
from agent.lab.netns import sweep_stale


def _target(text: str) -> Target:
    """VERSION:VRID:INTERVAL_CS:VIP[:PASSWORD][@UNICAST_PEER]"""
    body, at, peer_text = text.partition("@")
    parts = body.split(":")
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(
            f"expected VERSION:VRID:INTERVAL_CS:VIP[:PASS][@UNICAST_PEER], got {text}"
        )
    try:
        version, vrid, interval_cs = int(parts[0]), int(parts[1]), int(parts[2])
        vip = IPv4Address(parts[3])
        peer = IPv4Address(peer_text) if at else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc}") from exc
    password = parts[4].encode() if len(parts) == 5 else b""
    return Target(version, vrid, interval_cs, vip, password, peer)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent.lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="election, crash failover, return, graceful handover")
    commands.add_parser("sweep", help="delete lab namespaces left behind by dead processes")
    fl = commands.add_parser("flood", help="send malformed adverts (run inside a lab node)")
    fl.add_argument("--interface", default="eth0")
    fl.add_argument("--source", type=IPv4Address, required=True)
    fl.add_argument("--victim", type=IPv4Address, required=True)
    fl.add_argument("--victim-mac", required=True, help="aa:bb:cc:dd:ee:ff")
    fl.add_argument("--target", type=_target, action="append", required=True)
    fl.add_argument("--rate", type=float, default=4000.0, help="frames per second")
    fl.add_argument("--duration", type=float, default=3.0, help="seconds")
    fl.add_argument("--max-frames", type=int, default=50_000)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return demo_main()
    if args.command == "sweep":
        removed = sweep_stale()
        print(f"removed {len(removed)} stale namespaces: {' '.join(removed) or '-'}")
        return 0
    datagrams = malformed_datagrams(tuple(args.target), source=args.source, victim=args.victim)
    started = time.monotonic()
    print(f"flooding {len(datagrams)} kinds: {' '.join(datagrams)}", flush=True)
    sent = flood(
        args.interface,
        list(datagrams.values()),
        destination_mac=bytes.fromhex(args.victim_mac.replace(":", "")),
        rate=args.rate,
        duration=args.duration,
        max_frames=args.max_frames,
    )
    print(f"sent {sent} frames in {time.monotonic() - started:.2f} s", flush=True)
    return 0


sys.exit(main())
