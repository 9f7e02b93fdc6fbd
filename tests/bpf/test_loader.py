"""The loader says clearly why the filter is unavailable, so the daemon can fall back."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.packet import AuthType, ReceivePolicy, VridPolicy
from agent.host.bpf import (
    BpfUnavailable,
    LocalRouter,
    UnavailableCause,
    VrrpFilter,
    load_filter,
)
from agent.host.errors import HostError

REPO = Path(__file__).resolve().parents[2]

#: Run in a child process: tries to load the filter and prints the outcome as JSON.
_TRY_LOAD = """
import json
from agent.host.bpf import BpfUnavailable, load_filter
try:
    load_filter()
except BpfUnavailable as error:
    print(json.dumps([error.cause, str(error)]))
else:
    print(json.dumps(["loaded", ""]))
"""


def _try_load_in(prefix: list[str], setup: str = "") -> tuple[str, str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop capabilities or remount /lib/modules in a child")
    result = subprocess.run(
        [*prefix, sys.executable, "-c", setup + _TRY_LOAD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cause, message = json.loads(result.stdout.splitlines()[-1])
    return cause, message


def test_missing_bcc_is_reported_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs the privilege to load BPF, or the capability check answers first")
    # The loader child inherits PYTHONPATH; a `bcc` package there that fails to import
    # stands for a host without python3-bpfcc.
    (tmp_path / "bcc").mkdir()
    (tmp_path / "bcc" / "__init__.py").write_text("raise ImportError('No module named bcc')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    # Parameters nobody else uses, so the per-process cache cannot answer instead.
    with pytest.raises(BpfUnavailable) as raised:
        load_filter(ringbuf_pages=64)
    assert raised.value.cause is UnavailableCause.BCC_MISSING
    assert "python3-bpfcc" in str(raised.value)


@pytest.mark.bpf
@pytest.mark.usefixtures("loaded_filter")  # this machine can load BPF at all
def test_missing_capability_is_reported_as_such() -> None:
    cause, message = _try_load_in(["setpriv", "--bounding-set=-bpf,-sys_admin", "--"])
    assert cause == UnavailableCause.NO_PRIVILEGE
    assert "CAP_BPF" in message


@pytest.mark.bpf
@pytest.mark.usefixtures("loaded_filter")
def test_missing_kernel_headers_are_reported_as_such(tmp_path: Path) -> None:
    # A private mount namespace hides the header tree from this child only.
    hide = (
        "import subprocess\n"
        f"subprocess.run(['mount', '--bind', {str(tmp_path)!r}, "
        f"'/lib/modules/{platform.release()}'], check=True)\n"
    )
    cause, message = _try_load_in(["unshare", "--mount", "--propagation", "private", "--"], hide)
    assert cause == UnavailableCause.HEADERS_MISSING
    assert "kernel headers" in message


@pytest.mark.bpf
def test_compile_error_is_a_load_failure_quoting_the_compiler(
    tmp_path: Path, loaded_filter: tuple[VrrpFilter, object]
) -> None:
    source = tmp_path / "broken.c"
    source.write_text("int vrrp_sock(struct __sk_buff *skb) { return undeclared; }\n")
    with pytest.raises(BpfUnavailable) as raised:
        load_filter(source)
    assert raised.value.cause is UnavailableCause.LOAD_FAILED
    assert "undeclared" in str(raised.value)


@pytest.mark.bpf
def test_loading_twice_returns_the_same_filter(
    loaded_filter: tuple[VrrpFilter, object],
) -> None:
    assert load_filter() is loaded_filter[0]


@pytest.mark.bpf
def test_attaching_to_a_non_socket_is_a_clear_host_error(
    loaded_filter: tuple[VrrpFilter, object],
) -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(HostError, match=f"cannot attach the eBPF filter to fd {read_end}"):
            loaded_filter[0].attach(read_end)
        os.fstat(read_end)  # the caller's fd is still open
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.bpf
@pytest.mark.parametrize(
    ("policy", "local", "message"),
    [
        (VridPolicy(3, 5000), LocalRouter(), "advert_interval_cs must be 1..4095, got 5000"),
        (VridPolicy(4, 100), LocalRouter(), "version must be 2..3, got 4"),
        (VridPolicy(3, 100), LocalRouter(priority=300), "local priority must be 1..255, got 300"),
        (VridPolicy(2, 100, AuthType.SIMPLE, b"123456789"), LocalRouter(), "at most 8 bytes"),
    ],
)
def test_values_the_map_cannot_hold_are_refused(
    loaded_filter: tuple[VrrpFilter, object],
    policy: VridPolicy,
    local: LocalRouter,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=f"VRID 7: .*{message}"):
        loaded_filter[0].configure_interface(1, ReceivePolicy({7: policy}), {7: local})
