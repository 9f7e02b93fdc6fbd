"""What every benchmark shares: the implementations under test, statistics, process CPU and
memory from /proc, the host description, the JSON result files and the command line.

The three implementations are started from the same :class:`~agent.lab.runners.Instance`
descriptions, so a benchmark states its virtual routers once. ``agent-on`` asks for
``bpf = "required"`` rather than ``"auto"``: a benchmark of the eBPF path must never silently
measure the userspace fallback. The agent's ``receive path: ...`` log line is checked too and
recorded with every result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core import timers
from agent.lab import Lab, LabError, wait_for
from agent.lab.netns import Node
from agent.lab.runners import AgentSpeaker, Instance, Speaker, start_agent, start_keepalived

RESULTS = Path(__file__).parent / "results"
#: Allowance on top of the protocol's bound for wake-up, netlink and measurement latency.
SLACK_S = 0.005
_RECEIVE_PATH = re.compile(r"receive path: (.+)$", re.MULTILINE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (the message says what and why)."""


@dataclass(frozen=True, slots=True)
class Implementation:
    """One contender: how to start it in a lab node."""

    name: str
    #: ``[global]`` options for the agent; None for keepalived.
    agent_options: Mapping[str, str] | None

    @property
    def is_agent(self) -> bool:
        return self.agent_options is not None

    def start(self, node: Node, *instances: Instance) -> Speaker:
        if self.agent_options is None:
            return start_keepalived(node, *instances)
        return start_agent(node, *instances, global_options=self.agent_options)

    def receive_path(self, speaker: Speaker, timeout: float = 30) -> str:
        """The receive path the agent reports at start ("-" for keepalived).

        Raises :class:`BenchError` when ``agent-on`` runs without BPF: the daemon then
        does not (yet) honour ``bpf = "required"``, and its numbers would be mislabelled.
        """
        if not isinstance(speaker, AgentSpeaker):
            return "-"
        speaker.proc.wait_for_output(_RECEIVE_PATH.pattern, timeout=timeout)
        found = _RECEIVE_PATH.search(speaker.proc.output())
        assert found is not None
        path = found.group(1).strip()
        wants_bpf = self.agent_options is not None and self.agent_options.get("bpf") != "off"
        if wants_bpf and path.startswith("userspace"):
            raise BenchError(f"{self.name}: asked for bpf but the agent says receive path: {path}")
        return path


IMPLEMENTATIONS: dict[str, Implementation] = {
    "agent-off": Implementation("agent-off", {"bpf": "off"}),
    "agent-on": Implementation("agent-on", {"bpf": "required", "bpf_attach": "socket"}),
    "keepalived": Implementation("keepalived", None),
}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, max and min of durations in seconds, as milliseconds."""
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 3),
        "p95_ms": round(percentile(values, 0.95) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
        "min_ms": round(min(values) * 1000, 3),
    }


def skew_s(priority: int, interval: float) -> float:
    """VRRPv3 Skew_Time (RFC 9568 §6.1) in seconds."""
    return timers.skew_time(3, priority, round(interval * 100))


# ---------------------------------------------------------------------------------------------
# Processes: CPU and memory from /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return text.rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (keepalived forks its VRRP child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, plus their reaped children's time.

    A child that exits and is reaped moves its time into its parent's cutime/cstime, so the
    sum stays continuous across the exit: deltas of it are the tree's CPU time.
    """
    ticks = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            # Fields 14..17 of proc(5) (utime stime cutime cstime) are 11..14 here.
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


class CpuMeter:
    """CPU use of several process trees over one common wall-clock window."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        self._started = time.monotonic()

    def percent(self) -> dict[str, float]:
        """Percent of one core each tree used since the meter was made."""
        wall = time.monotonic() - self._started
        return {
            name: round((cpu_seconds(pid) - self._start[name]) / wall * 100, 2)
            for name, pid in self._pids.items()
        }


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` and summed over its tree, in KiB."""
    result = {"rss_kib": 0, "hwm_kib": 0, "tree_rss_kib": 0, "tree_hwm_kib": 0}
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        rss, hwm = int(values.get("VmRSS", 0)), int(values.get("VmHWM", 0))
        if member == pid:
            result["rss_kib"], result["hwm_kib"] = rss, hwm
        result["tree_rss_kib"] += rss
        result["tree_hwm_kib"] += hwm
    return result


def rx_packets(node: Node) -> int:
    """Packets received on the node's eth0 (the kernel's counter)."""
    link = json.loads(node.run(["ip", "-j", "-s", "link", "show", "dev", "eth0"]).stdout)[0]
    return int(link["stats64"]["rx"]["packets"])


# ---------------------------------------------------------------------------------------------
# Lab helpers


def wait_all(speaker: Speaker, state: str, names: Iterable[str], *, timeout: float) -> float:
    """Wait until every instance in ``names`` reports ``state``; return when that was seen."""
    wanted = set(names)

    def reached() -> bool:
        if not speaker.proc.alive():
            raise LabError(f"{speaker} exited:\n{speaker.output()}")
        latest = dict(speaker.states())
        return all(latest.get(name) == state for name in wanted)

    return wait_for(reached, timeout, what=f"{speaker}: {len(wanted)} x {state}", interval=0.02)


def start_master(impl: Implementation, lab: Lab, *configs: Instance) -> Speaker:
    """Start the master in node 0 and wait until it holds every VIP and node 1 let them go."""
    launched = time.monotonic()
    master = impl.start(lab[0], *configs)
    wait_all(master, "MASTER", (c.name for c in configs), timeout=60)
    for config in configs:
        vip = config.vips[0].ip
        if not lab[0].has_address(vip):
            lab[0].wait_address(vip, since=launched, timeout=30)
        if lab[1].has_address(vip):
            lab[1].wait_address(vip, added=False, since=launched, timeout=30)
    return master


def stop(speaker: Speaker) -> None:
    """SIGKILL a speaker's process group and reap it."""
    speaker.kill()
    speaker.proc.wait(10)


# ---------------------------------------------------------------------------------------------
# Results


def host_info() -> dict[str, Any]:
    """The machine a result was measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def write_result(name: str, document: dict[str, Any], output_dir: Path) -> Path:
    """Add the name and the host to ``document``, write ``<output_dir>/<name>.json``."""
    document.update(benchmark=name, host=host_info(), measured_at=round(time.time()))
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def print_verdicts(document: Mapping[str, Any]) -> None:
    """The targets met or missed, and the implementations that were skipped."""
    for verdict in document["targets"]:
        print(verdict["text"], "->", "met" if verdict["met"] else "MISSED")
    for name, reason in document["skipped"].items():
        print(f"{name}: skipped ({reason})")


def publish(
    name: str,
    document: dict[str, Any],
    output_dir: Path,
    *,
    report: Callable[[dict[str, Any]], None],
    plot: Callable[[dict[str, Any], Path], object] | None,
) -> None:
    """Print the table, write the JSON and, when asked, draw the PNG chart."""
    report(document)
    write_result(name, document, output_dir)
    if plot is not None:
        plot(document, output_dir)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A plain fixed-width table on stdout: numbers right-aligned, text left-aligned."""
    raw = [list(row) for row in rows]
    body = [[_cell(value) for value in row] for row in raw]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    numeric = [
        any(isinstance(r[i], int | float) for r in raw)
        and all(isinstance(r[i], int | float) or r[i] == "-" for r in raw)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    print(line(headers))
    for row in body:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def new_figure(panels: int = 1) -> tuple[Any, list[Any]]:
    """A matplotlib figure (Agg backend: no display needed) with ``panels`` side by side.

    matplotlib is an optional extra (``pip install -e '.[bench]'``), imported only with
    ``--plot``, so the benchmarks run without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BenchError("--plot needs matplotlib: pip install -e '.[bench]'") from exc
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    return figure, list(axes[0])


def save_figure(figure: Any, name: str, output_dir: Path) -> Path:
    path = output_dir / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")
    return path


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="few trials, short windows (smoke test)")
    p.add_argument("--plot", action="store_true", help="also draw <name>.png (needs matplotlib)")
    p.add_argument("--output-dir", type=Path, default=RESULTS)
    p.add_argument(
        "--impl",
        action="append",
        choices=list(IMPLEMENTATIONS),
        help="run only these implementations (repeatable; default: all)",
    )
    return p


def chosen(args: argparse.Namespace) -> list[Implementation]:
    return [IMPLEMENTATIONS[name] for name in (args.impl or IMPLEMENTATIONS)]


def each_implementation(
    impls: Iterable[Implementation], measure: Callable[[Implementation], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Measure every implementation; one that cannot be measured is skipped, with the reason.

    Only :class:`BenchError` skips (today: ``agent-on`` while the daemon lacks the eBPF path);
    a lab failure aborts the benchmark, since its numbers would be suspect.
    """
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for impl in impls:
        try:
            rows.append({"implementation": impl.name, **measure(impl)})
        except BenchError as exc:
            print(f"  {impl.name}: skipped: {exc}", flush=True)
            skipped[impl.name] = str(exc)
    return rows, skipped


def run_main(body: Callable[[], int]) -> int:
    """Run a benchmark body; lab and benchmark failures become one error line, exit 1."""
    try:
        return body()
    except (LabError, BenchError) as exc:
        print(f"error: {exc}")
        return 1
