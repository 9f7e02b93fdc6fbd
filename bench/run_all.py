"""Run every benchmark with its defaults (about 8 minutes on 2 cores), or all quickly.

``--quick`` runs each in its smoke-test form (a minute or so); ``--plot`` draws the PNG charts
next to the JSON files; ``--impl`` restricts the implementations. The benchmarks run one
after the other, each in its own namespace lab, so they never disturb each other's numbers.

Usage: .venv/bin/python -m bench.run_all [--quick] [--plot] [--impl NAME ...]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bench import cpu, failover, flood, startup
from bench.common import parser

BENCHMARKS: dict[str, Callable[[list[str] | None], int]] = {
    "failover + handover": failover.main,
    "cpu": cpu.main,
    "flood": flood.main,
    "startup": startup.main,
}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=list(BENCHMARKS))
    args = p.parse_args(argv)
    common = ["--output-dir", str(args.output_dir)]
    common += ["--quick"] if args.quick else []
    common += ["--plot"] if args.plot else []
    for name in args.impl or []:
        common += ["--impl", name]
    failed = []
    began = time.monotonic()
    for name in args.only or BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        if BENCHMARKS[name](common) != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s ===", flush=True)
    print(f"\nall benchmarks: {time.monotonic() - began:.0f} s", end="")
    print(f"; FAILED: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
