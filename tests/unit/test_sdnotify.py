"""sd_notify over a real AF_UNIX datagram socket, as systemd's notify socket receives it."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.host import sdnotify


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, like systemd's /run/systemd/notify."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def test_ready_reaches_a_filesystem_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    assert sdnotify.notify(sdnotify.READY + "\nSTATUS=2 routers", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=2 routers"


def test_messages_arrive_in_order(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    env = {"NOTIFY_SOCKET": path}
    for state in (sdnotify.READY, sdnotify.WATCHDOG, sdnotify.STOPPING):
        assert sdnotify.notify(state, env)
    assert [sock.recv(64) for _ in range(3)] == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]


def test_abstract_namespace_name() -> None:
    # "@name" means the abstract socket "\0name" (sd_notify(3)); nothing on disk.
    name = f"vrrp-agent-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        assert sdnotify.notify(sdnotify.WATCHDOG, {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"WATCHDOG=1"


def test_reloading_carries_the_monotonic_timestamp(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    before = time.monotonic_ns() // 1000
    assert sdnotify.notify(sdnotify.reloading(), {"NOTIFY_SOCKET": path})
    after = time.monotonic_ns() // 1000
    first, second = sock.recv(128).decode().split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert sdnotify.reloading(5_000_999) == "RELOADING=1\nMONOTONIC_USEC=5000"


@pytest.mark.parametrize(
    "environ",
    [
        {},  # not under systemd
        {"NOTIFY_SOCKET": ""},
        {"NOTIFY_SOCKET": "@"},
        {"NOTIFY_SOCKET": "relative/path"},
        {"NOTIFY_SOCKET": "vsock:2:1234"},
    ],
)
def test_no_usable_socket_is_a_quiet_no_op(environ: dict[str, str]) -> None:
    assert sdnotify.notify(sdnotify.READY, environ) is False


def test_missing_socket_file_returns_false(tmp_path: Path) -> None:
    assert sdnotify.notify(sdnotify.READY, {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_full_queue_drops_instead_of_blocking(receiver: tuple[socket.socket, str]) -> None:
    # Nobody reads: the kernel's per-socket datagram queue fills (net.unix.max_dgram_qlen)
    # and a blocking sender would hang the event loop. We must get False, quickly.
    sock, path = receiver
    env = {"NOTIFY_SOCKET": path}
    started = time.monotonic()
    results = [sdnotify.notify(sdnotify.WATCHDOG, env) for _ in range(2000)]
    assert time.monotonic() - started < 2.0
    assert results[0] is True
    assert False in results
    assert sock.recv(64) == b"WATCHDOG=1"


def test_watchdog_period_is_half_the_timeout() -> None:
    pid = str(os.getpid())
    assert sdnotify.watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": pid}) == 5.0
    assert sdnotify.watchdog_period({"WATCHDOG_USEC": "3000000"}) == 1.5


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "-5"},
        # Inherited from a parent that systemd watches: not ours (sd_watchdog_enabled(3)).
        {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"},
        {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "x"},
    ],
)
def test_no_watchdog(environ: dict[str, str]) -> None:
    assert sdnotify.watchdog_period(environ) is None


def test_reads_the_process_environment(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.notify(sdnotify.STOPPING)
    assert sock.recv(64) == b"STOPPING=1"
    assert sdnotify.watchdog_period() == 1.0
