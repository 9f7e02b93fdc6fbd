"""With BPF on, the agent stays small: LLVM runs in the loader child only (issue 3 target).

A fresh process loads the filter the agent's way (through :mod:`agent.host.bpf_loader`),
attaches it to a raw socket and opens the ring buffer; its resident memory must stay at or
below 60 MiB, and neither bcc nor LLVM may ever have been in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.bpf, pytest.mark.usefixtures("loaded_filter")]

REPO = Path(__file__).resolve().parents[2]
RSS_LIMIT_KIB = 60 * 1024


def test_agent_with_bpf_on_stays_under_60_mib_and_never_holds_llvm() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.bpf.rss_probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.splitlines()[-1])
    assert not probe["bcc_imported"]
    assert not probe["llvm_mapped"]
    # The high-water mark too: LLVM never passed through this process, even briefly.
    assert probe["hwm_kib"] <= RSS_LIMIT_KIB, probe
    assert probe["rss_kib"] <= RSS_LIMIT_KIB, probe
