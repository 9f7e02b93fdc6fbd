"""Read lab captures with tshark, so assertions are about Wireshark's dissection of the wire."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.lab.netns import LabError

_SEPARATOR = "\x1f"  # ASCII unit separator: never inside a dissected field value


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: its capture time (epoch seconds) and the requested fields."""

    time: float
    fields: dict[str, str]

    def __getitem__(self, field: str) -> str:
        return self.fields[field]


def frames(pcap: Path, display_filter: str, fields: Sequence[str] = ()) -> list[Frame]:
    """The frames matching a Wireshark display filter, with the named fields."""
    columns = ["frame.time_epoch", *fields]
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    argv += ["-E", f"separator={_SEPARATOR}", "-E", "occurrence=a", "-E", "aggregator=,"]
    for column in columns:
        argv += ["-e", column]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"tshark timed out reading {pcap}") from exc
    if done.returncode != 0:
        raise LabError(f"tshark -Y {display_filter!r} failed on {pcap}: {done.stderr.strip()}")
    result = []
    for line in done.stdout.splitlines():
        values = line.split(_SEPARATOR)
        result.append(Frame(float(values[0]), dict(zip(fields, values[1:], strict=True))))
    return result


def dissection_problems(pcap: Path, display_filter: str) -> list[str]:
    """Malformed-packet and expert-info messages Wireshark raises on the matching frames."""
    problem = f"({display_filter}) && (_ws.malformed || _ws.expert)"
    return [
        f"frame {frame['frame.number']}: {frame['_ws.expert.message'] or 'malformed'}"
        for frame in frames(pcap, problem, ["frame.number", "_ws.expert.message"])
    ]
