"""The core stays pure: no clock, no sockets, no processes, no host libraries.

This is what keeps the state machine deterministic under test (style.md §7, principle 1);
a stray ``import time`` in agent/core would let wall-clock time leak into the protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "agent" / "core"
FORBIDDEN = {
    "asyncio", "socket", "time", "os", "subprocess", "select", "signal", "threading",
    "pyroute2", "bcc", "prometheus_client", "uvloop", "agent.host", "agent.daemon",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_that_touches_the_host(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
