"""Shared pytest wiring: skip what this machine cannot run, and labs that always tear down."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from agent.lab import Lab


@cache
def _netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "dumpcap", "tshark"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} on PATH"
    try:
        subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` is unusable here: {exc}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    netns_reason = _netns_unavailable()
    keepalived_missing = shutil.which("keepalived") is None
    for item in items:
        if netns_reason and item.get_closest_marker("netns"):
            item.add_marker(pytest.mark.skip(reason=netns_reason))
        if keepalived_missing and item.get_closest_marker("keepalived"):
            item.add_marker(pytest.mark.skip(reason="needs the keepalived binary"))


_LABS = pytest.StashKey[list[Lab]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """When a test that built labs fails, attach the tails of the labs' process logs."""
    report: pytest.TestReport = yield
    if report.failed:
        for lab in item.stash.get(_LABS, []):
            for log in sorted(lab.workdir.glob("*.log")):
                report.sections.append((f"lab log {log}", log.read_text(errors="replace")[-3000:]))
    return report


@pytest.fixture
def make_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], Lab]]:
    """Build labs of N nodes; all are torn down after the test, whatever happened.

    Logs, configs and captures go to the test's tmp_path, which pytest keeps for the last
    few runs: that is where to look after a failure.
    """
    labs = request.node.stash.setdefault(_LABS, [])
    with contextlib.ExitStack() as stack:

        def make(nodes: int = 3) -> Lab:
            lab = stack.enter_context(Lab(nodes, workdir=tmp_path / f"lab{len(labs)}"))
            labs.append(lab)
            return lab

        yield make


@pytest.fixture
def lab(make_lab: Callable[[int], Lab]) -> Lab:
    """A three-node lab."""
    return make_lab(3)
