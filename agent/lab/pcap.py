"""Read lab captures with tshark, so assertions are about Wireshark's dissection of the wire."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.lab.netns import Capture, LabError, wait_for

_SEPARATOR = "\x1f"  # ASCII unit separator: never inside a dissected field value


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: its capture time (epoch seconds) and the requested fields."""

    time: float
    fields: dict[str, str]

    def __getitem__(self, field: str) -> str:
        return self.fields[field]


def frames(
    pcap: Path, display_filter: str, fields: Sequence[str] = (), *, complete: bool = True
) -> list[Frame]:
    """The frames matching a Wireshark display filter, with the named fields.

    ``complete=False`` reads a capture that dumpcap is still writing: its last block may
    be partial, which makes tshark fail after printing every whole frame.
    """
    columns = ["frame.time_epoch", *fields]
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    argv += ["-E", f"separator={_SEPARATOR}", "-E", "occurrence=a", "-E", "aggregator=,"]
    for column in columns:
        argv += ["-e", column]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"tshark timed out reading {pcap}") from exc
    if done.returncode != 0 and complete:
        raise LabError(f"tshark -Y {display_filter!r} failed on {pcap}: {done.stderr.strip()}")
    result = []
    for line in done.stdout.splitlines():
        values = line.split(_SEPARATOR)
        if len(values) != len(columns):
            continue  # a frame cut short by a partial block
        result.append(Frame(float(values[0]), dict(zip(fields, values[1:], strict=True))))
    return result


def rows(pcap: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """The named fields of each matching frame, as lists (for compact assertions)."""
    return [[frame[field] for field in fields] for frame in frames(pcap, display_filter, fields)]


def await_frames(capture: Capture, display_filter: str, count: int, timeout: float = 10) -> None:
    """Wait until dumpcap has written ``count`` matching frames: frames still queued in
    its socket when it is stopped would otherwise be lost."""
    wait_for(
        lambda: len(frames(capture.path, display_filter, complete=False)) >= count,
        timeout=timeout,
        what=f"{count} frame(s) matching {display_filter!r} in the capture",
        interval=0.05,
    )


def dissection_problems(pcap: Path, display_filter: str) -> list[str]:
    """Malformed-packet and expert-info messages Wireshark raises on the matching frames."""
    problem = f"({display_filter}) && (_ws.malformed || _ws.expert)"
    return [
        f"frame {frame['frame.number']}: {frame['_ws.expert.message'] or 'malformed'}"
        for frame in frames(pcap, problem, ["frame.number", "_ws.expert.message"])
    ]
