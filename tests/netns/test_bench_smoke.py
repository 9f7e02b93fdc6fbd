"""The benchmark code runs end to end (it is not part of ``make test`` otherwise).

Runs the quick form of the failover benchmark for the userspace agent as a separate process,
exactly as ``python -m bench.failover`` would be run by hand, and checks what it wrote: three
real takeovers, each between the protocol's floor and a generous ceiling, and the agent's own
report of its receive path. Numbers are not judged here; bench/ is for that.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]


def test_failover_benchmark_quick_mode_writes_its_result(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench.failover", "--quick", "--impl", "agent-off"]
    argv += ["--mode", "kill", "--output-dir", str(tmp_path)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "p50 ms" in done.stdout  # the table was printed

    document = json.loads((tmp_path / "failover.json").read_text())
    assert document["host"]["nproc"] >= 1
    assert document["skipped"] == {}
    (row,) = document["results"]
    assert row["implementation"] == "agent-off"
    assert row["receive_path"].startswith("userspace")
    # kill -9 at a 10 ms interval: the backup waits at least 2 intervals after the last
    # advert and far less than a second.
    assert len(row["trials_ms"]) == 3
    assert all(20 <= t <= 500 for t in row["trials_ms"]), row["trials_ms"]
    assert row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
