"""CPU of a backup and of a master running 100 virtual routers at a 10 ms advert interval.

Node 0 runs 100 VRRPv3 instances at priority 200 (master of all), node 1 the same 100 at
priority 100 (backup of all): 10,000 adverts/s on the segment. After both settle, the CPU
time of each speaker's whole process tree (utime + stime from /proc/<pid>/stat, including
children, e.g. keepalived's VRRP process) is sampled over a window (10 s by default) and
reported as percent of one core. A backup with the eBPF filter in kernel-only mode should do
no per-advert work in userspace at all. Target (issue 3): agent backup with BPF at most half
of keepalived's. Resident memory at the end of the window is recorded too.

Usage: .venv/bin/python -m bench.cpu [--window S] [--vrids N] [--quick] [--plot]
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from agent.lab import Lab
from agent.lab.runners import Instance
from bench.common import (
    CpuMeter,
    Implementation,
    chosen,
    each_implementation,
    memory_kib,
    new_figure,
    parser,
    print_table,
    publish,
    run_main,
    rx_packets,
    save_figure,
    start_master,
    stop,
    wait_all,
)

SETTLE_S = 2.0


def instances(lab: Lab, count: int, priority: int, interval: float) -> list[Instance]:
    return [
        Instance(
            vrid=i + 1,
            priority=priority,
            vips=(lab.vip(50 + i),),
            version=3,
            advert_interval=interval,
            name=f"VI_{i + 1}",
            garp_master_delay=0,
        )
        for i in range(count)
    ]


def measure(impl: Implementation, *, vrids: int, window: float, interval: float) -> dict[str, Any]:
    with Lab(2) as lab:
        masters = instances(lab, vrids, 200, interval)
        backups = instances(lab, vrids, 100, interval)
        master = start_master(impl, lab, *masters)
        backup = impl.start(lab[1], *backups)
        wait_all(backup, "BACKUP", (i.name for i in backups), timeout=60)
        receive_path = impl.receive_path(backup)
        time.sleep(SETTLE_S)
        before = (master.states(), backup.states())
        received = rx_packets(lab[1])
        meter = CpuMeter({"master": master.proc.pid, "backup": backup.proc.pid})
        time.sleep(window)
        cpu = meter.percent()
        # What the backup's interface received: proves the master really sent 100 x 100/s.
        adverts_per_s = (rx_packets(lab[1]) - received) / window
        memory = {"master": memory_kib(master.proc.pid), "backup": memory_kib(backup.proc.pid)}
        stable = (master.states(), backup.states()) == before
        for speaker in (backup, master):
            stop(speaker)
    print(
        f"  {impl.name:10} backup {cpu['backup']:5.1f} %  master {cpu['master']:5.1f} %"
        f"  ({adverts_per_s:.0f} packets/s at the backup)"
        f"{'' if stable else '  (state changed during the window!)'}",
        flush=True,
    )
    return {
        "receive_path": receive_path,
        "backup_cpu_percent": cpu["backup"],
        "master_cpu_percent": cpu["master"],
        "packets_per_s_at_backup": round(adverts_per_s),
        "backup_rss_mib": round(memory["backup"]["tree_rss_kib"] / 1024, 1),
        "master_rss_mib": round(memory["master"]["tree_rss_kib"] / 1024, 1),
        "memory_kib": memory,
        "no_transition_during_window": stable,
    }


def report(document: dict[str, Any]) -> None:
    print(f"\n{document['title']}")
    print_table(
        [
            "implementation",
            "backup CPU %",
            "master CPU %",
            "backup RSS MiB",
            "master RSS MiB",
            "pkt/s at backup",
        ],
        (
            [
                r["implementation"],
                r["backup_cpu_percent"],
                r["master_cpu_percent"],
                r["backup_rss_mib"],
                r["master_rss_mib"],
                r["packets_per_s_at_backup"],
            ]
            for r in document["results"]
        ),
    )
    target = document.get("target")
    if target:
        print(target["text"], "->", "met" if target["met"] else "MISSED")
    for name, reason in document["skipped"].items():
        print(f"{name}: skipped ({reason})")


def target(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Issue 3: the agent's backup CPU with BPF at most half of keepalived's."""
    found = {r["implementation"]: r for r in rows}
    if "agent-on" not in found or "keepalived" not in found:
        return None
    limit = found["keepalived"]["backup_cpu_percent"] / 2
    return {
        "text": f"agent-on backup CPU <= keepalived / 2 = {limit:.1f} %",
        "met": found["agent-on"]["backup_cpu_percent"] <= limit,
    }


def plot(document: dict[str, Any], output_dir: Path) -> Path:
    figure, (axis,) = new_figure()
    rows = document["results"]
    xs = range(len(rows))
    axis.bar([x - 0.2 for x in xs], [r["backup_cpu_percent"] for r in rows], 0.4, label="backup")
    axis.bar([x + 0.2 for x in xs], [r["master_cpu_percent"] for r in rows], 0.4, label="master")
    axis.set_xticks(list(xs), [r["implementation"] for r in rows])
    axis.set_ylabel("% of one core")
    axis.set_title(document["title"], fontsize=10)
    axis.legend()
    return save_figure(figure, document["benchmark"], output_dir)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--vrids", type=int, default=100)
    p.add_argument("--window", type=float, default=10.0, help="seconds of CPU sampling")
    p.add_argument("--interval", type=float, default=0.01, help="advert interval, s (v3)")
    args = p.parse_args(argv)
    window = 2.0 if args.quick else args.window
    vrids = 10 if args.quick else args.vrids
    if not 1 <= vrids <= 150:
        p.error("--vrids must be 1..150 (one VIP each in the lab /24)")

    def body() -> int:
        rows, skipped = each_implementation(
            chosen(args), partial(measure, vrids=vrids, window=window, interval=args.interval)
        )
        document: dict[str, Any] = {
            "title": (f"CPU, {vrids} VRIDs at v3 {args.interval * 1000:g} ms, {window:g} s window"),
            "vrids": vrids,
            "window_s": window,
            "interval_s": args.interval,
            "results": rows,
            "target": target(rows),
            "skipped": skipped,
        }
        publish("cpu", document, args.output_dir, report=report, plot=plot if args.plot else None)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
