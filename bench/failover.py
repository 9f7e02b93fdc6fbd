"""Failover time after kill -9 of the master: vrrp-agent vs keepalived.

For each implementation and timer setting, a two-node lab runs a backup (priority 100) and a
master (priority 200). Each trial kills the master's whole process group with SIGKILL and
measures, from the kill to the kernel's RTM_NEWADDR for the VIP on the backup, how long the
segment had no master. The master is then restarted; it removes its stale VIP, preempts, and
the next trial starts once the backup has given the VIP back.

The protocol floor is Master_Down_Interval = 3 x interval + skew minus the time since the last
advert (protocol.md §5): the measured value lies between 2 and 3 intervals + skew + latency.

Usage: .venv/bin/python bench/failover.py [--trials N] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from agent.lab import Lab, LabError
from agent.lab.runners import (
    Instance,
    Speaker,
    master_down_interval,
    start_agent,
    start_keepalived,
)

RUNNERS: dict[str, Callable[..., Speaker]] = {"agent": start_agent, "keepalived": start_keepalived}


@dataclass(frozen=True)
class Setting:
    label: str
    version: int
    interval: float


SETTINGS = (
    Setting("v2 1 s", 2, 1.0),
    Setting("v3 100 ms", 3, 0.1),
    Setting("v3 10 ms", 3, 0.01),
)


@dataclass(frozen=True)
class Row:
    implementation: str
    setting: str
    version: int
    interval_s: float
    master_down_interval_s: float
    trials_s: list[float]
    p50_s: float
    p95_s: float
    max_s: float

    @classmethod
    def of(cls, kind: str, setting: Setting, times: list[float]) -> Row:
        probe = Instance(1, 100, (), setting.version, setting.interval)
        return cls(
            implementation=kind,
            setting=setting.label,
            version=setting.version,
            interval_s=setting.interval,
            master_down_interval_s=round(master_down_interval(probe), 6),
            trials_s=[round(t, 6) for t in times],
            p50_s=round(percentile(times, 0.5), 6),
            p95_s=round(percentile(times, 0.95), 6),
            max_s=round(max(times), 6),
        )


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _start_master(kind: str, lab: Lab, config: Instance) -> Speaker:
    """Start the master and wait until it holds the VIP and the backup has let it go."""
    vip = config.vips[0].ip
    launched = time.monotonic()
    master = RUNNERS[kind](lab[0], config)
    master.wait_state("MASTER", timeout=30)
    lab[0].wait_address(vip, since=launched, timeout=30)
    if lab[1].has_address(vip):
        lab[1].wait_address(vip, added=False, since=launched, timeout=30)
    return master


def measure(kind: str, setting: Setting, trials: int) -> list[float]:
    """Failover times in seconds of ``trials`` kill -9 trials."""
    results: list[float] = []
    with Lab(2) as lab:
        backup_cfg = Instance(
            vrid=77,
            priority=100,
            vips=(lab.vip(),),
            version=setting.version,
            advert_interval=setting.interval,
            garp_master_delay=0,
        )
        master_cfg = replace(backup_cfg, priority=200)
        vip = backup_cfg.vips[0].ip
        backup = RUNNERS[kind](lab[1], backup_cfg)
        backup.wait_state("BACKUP", timeout=30)
        for trial in range(trials):
            master = _start_master(kind, lab, master_cfg)
            # Let a few adverts pass so the backup's timer is in its steady state, then kill
            # at a random phase of the advert cycle: the result spans the protocol's range.
            time.sleep(3 * setting.interval + random.uniform(0, setting.interval))
            killed = master.kill()
            took_over = lab[1].wait_address(vip, since=killed, timeout=30)
            results.append(took_over - killed)
            print(
                f"  {kind:10} {setting.label:9} trial {trial + 1}: "
                f"{(took_over - killed) * 1000:8.1f} ms",
                flush=True,
            )
            master.proc.wait(10)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "failover.json"
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    rows: list[Row] = []
    try:
        for setting in SETTINGS:
            for kind in RUNNERS:
                times = measure(kind, setting, args.trials)
                rows.append(Row.of(kind, setting, times))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"\n{'implementation':14} {'setting':10} {'MDI':>8} {'p50':>8} {'p95':>8} {'max':>8}")
    for row in rows:
        print(
            f"{row.implementation:14} {row.setting:10} {row.master_down_interval_s * 1000:6.1f}ms "
            f"{row.p50_s * 1000:6.1f}ms {row.p95_s * 1000:6.1f}ms {row.max_s * 1000:6.1f}ms"
        )
    print("(MDI: the backup's Master_Down_Interval, 3 x interval + skew at priority 100)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "failover after kill -9 of the master (kill -> VIP on the backup)",
        "trials": args.trials,
        "host": {"kernel": platform.release(), "python": platform.python_version()},
        "results": [asdict(row) for row in rows],
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
