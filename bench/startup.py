"""Start-up time and resident memory of one speaker with one virtual router.

A one-node lab; each trial starts the implementation (VRRPv3, 1 s interval, one VIP) and polls
its output every millisecond for two moments, measured from just before the process is
spawned: the agent's ``receive path: ...`` line (it is logged once the receive socket, and with
BPF the loaded filter, are ready; keepalived has no such line) and the first state report
(the agent's ``INITIALIZE -> BACKUP`` transition line, keepalived's first notify). Two seconds
later VmRSS and VmHWM of the main process are read from /proc/<pid>/status, and the sum over
its process tree (keepalived's parent and VRRP child). The largest tree RSS seen while
starting is sampled too: with BPF the agent compiles in a short-lived child, whose memory the
agent's own VmHWM does not show. Target (issue 3): agent with BPF at most 60 MiB resident.

Usage: .venv/bin/python -m bench.startup [--trials N] [--quick] [--plot]
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from agent.lab import Lab, LabError
from agent.lab.runners import Instance, KeepalivedSpeaker, Speaker
from bench.common import (
    Implementation,
    chosen,
    each_implementation,
    memory_kib,
    new_figure,
    parser,
    print_table,
    print_verdicts,
    publish,
    run_main,
    save_figure,
    stop,
)

SETTLE_S = 2.0
RSS_TARGET_MIB = 60
_RECEIVE_PATH = re.compile(r"receive path: ", re.MULTILINE)
_TRANSITION = re.compile(r"\S+: \w+ -> \w+ \(", re.MULTILINE)


def _first_state_seen(speaker: Speaker) -> bool:
    if isinstance(speaker, KeepalivedSpeaker):
        return bool(speaker.states())
    return bool(_TRANSITION.search(speaker.proc.output()))


def one_start(impl: Implementation, lab: Lab, config: Instance) -> dict[str, Any]:
    """Start once; the times in ms and the memory in KiB."""
    began = time.monotonic()
    speaker = impl.start(lab[0], config)
    ready: float | None = None
    state: float | None = None
    peak_tree_kib = 0
    polls = 0
    deadline = began + 30
    while state is None or (impl.is_agent and ready is None):
        now = time.monotonic()
        if now > deadline:
            raise LabError(f"{speaker} did not start within 30 s:\n{speaker.output()}")
        if not speaker.proc.alive():
            raise LabError(f"{speaker} exited:\n{speaker.output()}")
        if ready is None and impl.is_agent and _RECEIVE_PATH.search(speaker.proc.output()):
            ready = now
        if state is None and _first_state_seen(speaker):
            state = now
        if polls % 10 == 0:
            peak_tree_kib = max(peak_tree_kib, memory_kib(speaker.proc.pid)["tree_rss_kib"])
        polls += 1
        time.sleep(0.001)
    receive_path = impl.receive_path(speaker)
    time.sleep(SETTLE_S)
    memory = memory_kib(speaker.proc.pid)
    stop(speaker)
    return {
        "receive_path": receive_path,
        "ready_ms": None if ready is None else (ready - began) * 1000,
        "first_state_ms": (state - began) * 1000,
        "peak_tree_rss_kib": max(peak_tree_kib, memory["tree_rss_kib"]),
        **memory,
    }


def measure(impl: Implementation, *, trials: int) -> dict[str, Any]:
    starts = []
    with Lab(1) as lab:
        config = Instance(vrid=9, priority=100, vips=(lab.vip(),), version=3, advert_interval=1.0)
        for trial in range(trials):
            starts.append(one_start(impl, lab, config))
            last = starts[-1]
            ready = "-" if last["ready_ms"] is None else f"{last['ready_ms']:.0f} ms"
            print(
                f"  {impl.name:10} trial {trial + 1}: ready {ready}, first state "
                f"{last['first_state_ms']:.0f} ms, RSS {last['tree_rss_kib'] / 1024:.1f} MiB",
                flush=True,
            )

    def median(key: str) -> float | None:
        values = [s[key] for s in starts if s[key] is not None]
        return round(float(statistics.median(values)), 1) if values else None

    def mib(key: str) -> float:
        return round(max(int(s[key]) for s in starts) / 1024, 1)

    return {
        "receive_path": starts[0]["receive_path"],
        "ready_ms_median": median("ready_ms"),
        "first_state_ms_median": median("first_state_ms"),
        "rss_mib": mib("rss_kib"),
        "hwm_mib": mib("hwm_kib"),
        "tree_rss_mib": mib("tree_rss_kib"),
        "tree_hwm_mib": mib("tree_hwm_kib"),
        "peak_tree_rss_mib_sampled": mib("peak_tree_rss_kib"),
        "trials": [{k: v for k, v in s.items() if k != "receive_path"} for s in starts],
    }


def report(document: dict[str, Any]) -> None:
    print(f"\n{document['title']}")
    print_table(
        [
            "implementation",
            "ready ms",
            "1st state ms",
            "RSS MiB",
            "HWM MiB",
            "tree RSS",
            "tree HWM",
            "start peak",
        ],
        (
            [
                r["implementation"],
                "-" if r["ready_ms_median"] is None else r["ready_ms_median"],
                r["first_state_ms_median"],
                r["rss_mib"],
                r["hwm_mib"],
                r["tree_rss_mib"],
                r["tree_hwm_mib"],
                r["peak_tree_rss_mib_sampled"],
            ]
            for r in document["results"]
        ),
    )
    print(
        "(times: median from spawn; memory: the largest of the trials, MiB; tree = the process "
        "and its children; start peak = largest tree RSS sampled while starting)"
    )
    print_verdicts(document)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "text": f"agent-on resident at most {RSS_TARGET_MIB} MiB (HWM {row['hwm_mib']} MiB)",
            "met": row["hwm_mib"] <= RSS_TARGET_MIB,
        }
        for row in rows
        if row["implementation"] == "agent-on"
    ]


def plot(document: dict[str, Any], output_dir: Path) -> Path:
    figure, (time_axis, memory_axis) = new_figure(2)
    rows = document["results"]
    names = [r["implementation"] for r in rows]
    xs = range(len(rows))
    ready = [r["ready_ms_median"] or 0 for r in rows]
    time_axis.bar([x - 0.2 for x in xs], ready, 0.4, label="receive path ready")
    time_axis.bar([x + 0.2 for x in xs], [r["first_state_ms_median"] for r in rows], 0.4)
    time_axis.set_xticks(list(xs), names)
    time_axis.set_ylabel("ms from spawn (median)")
    time_axis.legend(["receive path ready", "first state"])
    memory_axis.bar([x - 0.2 for x in xs], [r["tree_rss_mib"] for r in rows], 0.4, label="RSS")
    memory_axis.bar(
        [x + 0.2 for x in xs],
        [r["peak_tree_rss_mib_sampled"] for r in rows],
        0.4,
        label="peak while starting",
    )
    memory_axis.axhline(RSS_TARGET_MIB, color="red", linestyle="--", label="target (agent-on)")
    memory_axis.set_xticks(list(xs), names)
    memory_axis.set_ylabel("MiB (process tree)")
    memory_axis.legend()
    figure.suptitle(document["title"], fontsize=10)
    return save_figure(figure, document["benchmark"], output_dir)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=5)
    args = p.parse_args(argv)
    trials = 1 if args.quick else args.trials
    if trials < 1:
        p.error("--trials must be at least 1")

    def body() -> int:
        rows, skipped = each_implementation(chosen(args), partial(measure, trials=trials))
        document: dict[str, Any] = {
            "title": "start-up time and resident memory, one VRID",
            "trials_per_implementation": trials,
            "results": rows,
            "targets": targets(rows),
            "skipped": skipped,
        }
        publish(
            "startup", document, args.output_dir, report=report, plot=plot if args.plot else None
        )
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
