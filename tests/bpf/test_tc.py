"""The tc observer on a real interface: counts real traffic, never drops, cleans up.

Everything happens in a private network namespace ``vb<pid>`` holding a veth pair (vba ->
vbb), deleted in a ``finally`` whatever happens; the root namespace's interfaces are never
touched. The attaching processes are children run with ``ip netns exec`` (tc_probe.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.host.bpf import TC_FILTER_NAME

pytestmark = [pytest.mark.bpf, pytest.mark.usefixtures("loaded_filter")]

REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("needs root, ip(8) and tc(8) for a private network namespace")
    name = f"vb{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "add", "vba", "type", "veth", "peer", "name", "vbb")
        _ip("-n", name, "addr", "add", "10.77.0.2/24", "dev", "vbb")
        for link in ("vba", "vbb", "lo"):
            _ip("-n", name, "link", "set", link, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def _probe_command(netns: str, mode: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.bpf.tc_probe", mode]


def _probe(netns: str, mode: str) -> dict[str, Any]:
    result = subprocess.run(
        _probe_command(netns, mode),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _tc(netns: str, *args: str) -> str:
    return subprocess.run(
        ["tc", "-n", netns, *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _assert_observed_real_traffic(report: dict[str, Any]) -> None:
    # The valid advert was accepted and recorded; the bad ones were judged, not dropped;
    # the UDP packet was not ours to count.
    assert report["accepted"] == 1
    assert report["drops"] == {"bad_ttl": 1, "unknown_vrid": 1}
    assert report["peer"] == ["10.77.0.9", 150, 1]
    # An observer: an unfiltered raw VRRP socket still got all three VRRP packets.
    assert report["unfiltered_socket_received"] == 3


def test_attach_counts_real_traffic_and_close_detaches(netns: str) -> None:
    report = _probe(netns, "cycle")
    _assert_observed_real_traffic(report)
    assert _tc(netns, "filter", "show", "dev", "vbb", "ingress") == ""
    assert "clsact" not in _tc(netns, "qdisc", "show", "dev", "vbb")


def test_filter_left_by_kill_9_is_found_and_removed(netns: str) -> None:
    holder = subprocess.Popen(
        _probe_command(netns, "hold"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line, holder.stderr.read() if holder.stderr else ""
        _assert_observed_real_traffic(json.loads(line))
    finally:
        holder.kill()  # SIGKILL: no chance to detach
        holder.wait(timeout=30)
    assert holder.returncode == -9
    assert TC_FILTER_NAME in _tc(netns, "filter", "show", "dev", "vbb", "ingress")

    assert _probe(netns, "clean") == {"removed": 1}
    assert _tc(netns, "filter", "show", "dev", "vbb", "ingress") == ""
    assert _probe(netns, "clean") == {"removed": 0}
