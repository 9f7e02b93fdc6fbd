"""agent.host.control and the CLI commands on top of it, over real unix sockets.

The daemon's side is a fake handler that records what it was asked; everything else —
socket file, mode, stale-socket handling, protocol, CLI output and exit status — is the
real thing. The CLI is blocking, so it runs in a thread while the server runs on the
test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent.cli import main
from agent.host.control import (
    AgentNotRunning,
    ControlServer,
    send_request,
    start_control_server,
)
from agent.host.errors import HostError
from tests.unit.status_example import status_example

ROOT = Path(__file__).resolve().parents[2]


class FakeDaemon:
    """Answers like the daemon: status dict, reload result, drain of known instances."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reload_ok = True

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        command = request["command"]
        if command == "status":
            return status_example()
        if command == "reload":
            if self.reload_ok:
                return {"ok": True, "message": "reloaded: 0 added, 0 removed, 1 changed"}
            return {"ok": False, "message": "agent.toml: instance[0].vrid: must be 1..255"}
        if command == "explode":  # never reached: the server validates first
            raise AssertionError
        if request["instance"] == "boom":
            raise RuntimeError("handler crashed")
        if request["instance"] not in ("VI_1", "VI_2"):
            return {"ok": False, "message": f"no instance named {request['instance']!r}"}
        return {"ok": True, "message": f"{request['instance']}: {command}ed"}


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "run" / "control.sock")


@pytest_asyncio.fixture
async def server(path: str, daemon: FakeDaemon) -> AsyncIterator[ControlServer]:
    running = await start_control_server(path, daemon)
    yield running
    running.close()
    await running.wait_closed()


async def raw_exchange(path: str, *lines: bytes) -> list[Any]:
    """Send lines on one connection; return one decoded answer per line."""
    reader, writer = await asyncio.open_unix_connection(path)
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        async with asyncio.timeout(5):
            answers.append(json.loads(await reader.readline()))
    writer.close()
    return answers


def exists(path: str) -> bool:
    """A plain function: a check of the file system, kept out of the coroutines."""
    return os.path.exists(path)


async def request(path: str, message: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(send_request, path, message)


class TestProtocol:
    @pytest.mark.asyncio
    async def test_status_returns_the_handlers_dict(self, server: ControlServer) -> None:
        assert await request(server.path, {"command": "status"}) == status_example()

    @pytest.mark.asyncio
    async def test_drain_passes_the_instance(
        self, server: ControlServer, daemon: FakeDaemon
    ) -> None:
        answer = await request(server.path, {"command": "drain", "instance": "VI_1"})
        assert answer == {"ok": True, "message": "VI_1: drained"}
        assert daemon.requests == [{"command": "drain", "instance": "VI_1"}]

    @pytest.mark.parametrize(
        ("line", "error"),
        [
            (b"{nope\n", "not valid JSON: "),
            (b"\xff\xfe\n", "not valid JSON: "),
            (b"[1, 2]\n", 'a request must be a JSON object such as {"command": "status"}'),
            (b'{"command": "explode"}\n',
             'unknown command "explode"; known: status, reload, drain, undrain'),
            (b"{}\n", "unknown command null; known: status, reload, drain, undrain"),
            (b'{"command": "drain"}\n', 'drain needs "instance": the name of the instance'),
            (b'{"command": "drain", "instance": 5}\n',
             "drain: instance must be a string (an instance name)"),
            (b'{"command": "reload", "instance": "VI_1"}\n', "reload takes no instance"),
            (b'{"command": "status", "verbose": true}\n', 'status: unknown key(s) "verbose"'),
        ],
    )  # fmt: skip
    @pytest.mark.asyncio
    async def test_bad_requests_get_an_error_and_the_connection_stays_usable(
        self, server: ControlServer, daemon: FakeDaemon, line: bytes, error: str
    ) -> None:
        bad, good = await raw_exchange(server.path, line, b'{"command": "reload"}\n')
        assert bad["ok"] is False
        assert bad["error"].startswith(error)
        assert good["ok"] is True
        assert daemon.requests == [{"command": "reload"}]

    @pytest.mark.asyncio
    async def test_a_crashing_handler_is_an_error_answer(self, server: ControlServer) -> None:
        answer = await request(server.path, {"command": "drain", "instance": "boom"})
        assert answer == {"ok": False, "error": "drain failed: handler crashed"}
        assert (await request(server.path, {"command": "reload"}))["ok"] is True

    @pytest.mark.asyncio
    async def test_request_without_newline_before_eof_is_answered(
        self, server: ControlServer
    ) -> None:
        reader, writer = await asyncio.open_unix_connection(server.path)
        writer.write(b'{"command": "reload"}')
        writer.write_eof()
        async with asyncio.timeout(5):
            assert json.loads(await reader.readline())["ok"] is True
        writer.close()

    @pytest.mark.asyncio
    async def test_oversized_request(self, server: ControlServer) -> None:
        (answer,) = await raw_exchange(server.path, b"x" * 100_000 + b"\n")
        assert answer == {"ok": False, "error": "request longer than 65536 bytes"}
        assert (await request(server.path, {"command": "reload"}))["ok"] is True

    @pytest.mark.asyncio
    async def test_blank_lines_are_ignored(self, server: ControlServer) -> None:
        (answer,) = await raw_exchange(server.path, b'\n\n{"command": "reload"}\n')
        assert answer["ok"] is True


class TestSocketFile:
    @pytest.mark.asyncio
    async def test_mode_0600_in_a_new_0700_directory(self, server: ControlServer) -> None:
        info = os.stat(server.path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700

    @pytest.mark.asyncio
    async def test_umask_is_restored(self, path: str, daemon: FakeDaemon) -> None:
        before = os.umask(0o022)
        try:
            running = await start_control_server(path, daemon)
            assert os.umask(0o022) == 0o022
            running.close()
        finally:
            os.umask(before)

    @pytest.mark.asyncio
    async def test_removed_on_close(self, path: str, daemon: FakeDaemon) -> None:
        running = await start_control_server(path, daemon)
        running.close()
        await running.wait_closed()
        assert not exists(path)

    @pytest.mark.asyncio
    async def test_stale_socket_is_replaced(self, path: str, daemon: FakeDaemon) -> None:
        os.makedirs(os.path.dirname(path))
        with socket.socket(socket.AF_UNIX) as crashed:  # bound, never listening: a corpse
            crashed.bind(path)
        running = await start_control_server(path, daemon)
        try:
            assert (await request(path, {"command": "reload"}))["ok"] is True
        finally:
            running.close()

    @pytest.mark.asyncio
    async def test_live_socket_is_refused_with_the_pid(self, server: ControlServer) -> None:
        with pytest.raises(HostError) as info:
            await start_control_server(server.path, FakeDaemon())
        assert str(info.value) == (
            f"control socket {server.path} is in use by another agent (pid {os.getpid()})"
        )
        # The running agent keeps its socket.
        assert (await request(server.path, {"command": "reload"}))["ok"] is True

    @pytest.mark.asyncio
    async def test_a_regular_file_is_not_deleted(self, tmp_path: Path) -> None:
        victim = tmp_path / "important.txt"
        victim.write_text("data")
        with pytest.raises(HostError, match="exists and is not a socket"):
            await start_control_server(str(victim), FakeDaemon())
        assert victim.read_text() == "data"

    @pytest.mark.asyncio
    async def test_close_leaves_a_newer_agents_socket_alone(
        self, path: str, daemon: FakeDaemon
    ) -> None:
        old = await start_control_server(path, daemon)
        os.unlink(path)  # someone removed it, and a new agent took the path
        new = await start_control_server(path, daemon)
        old.close()
        assert exists(path)
        new.close()
        assert not exists(path)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory anyone may enter (tmp_path is 0700), so that only the socket's own
    mode can keep another user out."""
    with tempfile.TemporaryDirectory(prefix="vrrp-ctl-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def run_as_nobody(argv: list[str]) -> tuple[int, bytes, bytes]:
    """``vrrp-agent ARGV`` in a forked child running as ``nobody``.

    Forked rather than exec'd: nobody may lack the right to read the checkout or its
    virtual environment (a clone in a 0700 directory), which says nothing about the
    control socket's own mode.
    """
    nobody = pwd.getpwnam("nobody")
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 125
        try:
            os.dup2(out_write, 1)
            os.dup2(err_write, 2)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_write)
    os.close(err_write)
    with os.fdopen(out_read, "rb") as out_file, os.fdopen(err_read, "rb") as err_file:
        out, err = out_file.read(), err_file.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


class TestAccessControl:
    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")
    @pytest.mark.asyncio
    async def test_another_user_is_refused_by_the_socket_mode(
        self, world_readable_dir: Path, daemon: FakeDaemon
    ) -> None:
        path = str(world_readable_dir / "control.sock")
        running = await start_control_server(path, daemon)
        try:
            returncode, out, err = await asyncio.to_thread(
                run_as_nobody, ["drain", "VI_1", "--socket", path]
            )
        finally:
            running.close()
        assert (returncode, out) == (2, b"")
        assert err.decode() == (
            f"error: permission denied on {path}: the control socket is mode 0600, run this "
            "as the agent's user (root)\n"
        )
        assert daemon.requests == []


# -- CLI -----------------------------------------------------------------------------------


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


class TestCli:
    @pytest.mark.asyncio
    async def test_status_human(
        self, server: ControlServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await cli("status", "--socket", server.path) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "vrrp-agent 0.1.0, pid 4242, up 1h 0m, uvloop event loop"
        header, vi_1, vi_2, note = out[2:6]
        assert header.split() == [
            "NAME", "STATE", "INTERFACE", "VRID", "PRIORITY", "MASTER", "LAST-ADVERT", "VIPS"
        ]  # fmt: skip
        assert vi_1.split() == [
            "VI_1", "MASTER", "eth0", "51", "(v3)", "140", "(base", "150)", "this", "node",
            "-", "10.0.0.100/24,", "10.0.0.101/32",
        ]  # fmt: skip
        assert vi_2.split() == [
            "VI_2", "BACKUP", "eth1", "52", "(v2)", "0", "(base", "100)", "192.168.1.3",
            "(priority", "200)", "0.8", "s", "ago", "192.168.1.10/24",
        ]  # fmt: skip
        assert note == "  VI_2: drained (vrrp-agent undrain to end); fault: chk_http failed"
        assert "  chk_http (script): DOWN, 100 runs, 7 failed, 2 timed out, 1 skipped, " in (
            "\n".join(out)
        )
        assert "  eth0: accepted 12, dropped: bad_ttl 3" in out
        assert (
            "  eBPF (socket): accepted 5000, kept in the kernel 4900, "
            "dropped: bad_checksum 9, unknown_vrid 11"
        ) in out

    @pytest.mark.asyncio
    async def test_status_json(
        self, server: ControlServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await cli("status", "--json", "--socket", server.path) == 0
        assert json.loads(capsys.readouterr().out) == status_example()

    @pytest.mark.asyncio
    async def test_drain_and_undrain(
        self, server: ControlServer, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await cli("drain", "VI_1", "--socket", server.path) == 0
        assert await cli("undrain", "VI_1", "--socket", server.path) == 0
        assert capsys.readouterr().out == "VI_1: drained\nVI_1: undrained\n"
        assert daemon.requests == [
            {"command": "drain", "instance": "VI_1"},
            {"command": "undrain", "instance": "VI_1"},
        ]

    @pytest.mark.asyncio
    async def test_refusal_exits_1(
        self, server: ControlServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await cli("drain", "VI_9", "--socket", server.path) == 1
        assert capsys.readouterr().err == "error: no instance named 'VI_9'\n"

    @pytest.mark.asyncio
    async def test_reload_ok_and_refused(
        self, server: ControlServer, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await cli("reload", "--socket", server.path) == 0
        daemon.reload_ok = False
        assert await cli("reload", "--socket", server.path) == 1
        captured = capsys.readouterr()
        assert captured.out == "reloaded: 0 added, 0 removed, 1 changed\n"
        assert captured.err == "error: agent.toml: instance[0].vrid: must be 1..255\n"

    @pytest.mark.asyncio
    async def test_socket_from_the_config_file(
        self, server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[global]\ncontrol_socket = "{server.path}"\n'
            '[[instance]]\nname = "VI_1"\ninterface = "eth0"\nvrid = 51\nvips = ["10.0.0.1"]\n'
        )
        assert await cli("drain", "VI_2", "--config", str(config)) == 0
        assert capsys.readouterr().out == "VI_2: drained\n"


class TestCliWithoutAgent:
    def test_missing_socket_exits_3(self, path: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["status", "--socket", path]) == 3
        assert capsys.readouterr().err == (
            f"error: no control socket at {path}: the agent is not running (or uses another "
            "control_socket: give --socket PATH or --config FILE)\n"
        )

    def test_stale_socket_exits_3(self, path: str, capsys: pytest.CaptureFixture[str]) -> None:
        os.makedirs(os.path.dirname(path))
        with socket.socket(socket.AF_UNIX) as crashed:
            crashed.bind(path)
        assert main(["reload", "--socket", path]) == 3
        assert capsys.readouterr().err == (
            f"error: the agent is not running: nothing listens on {path} (left by an earlier run)\n"
        )

    def test_client_raises_agent_not_running(self, path: str) -> None:
        with pytest.raises(AgentNotRunning):
            send_request(path, {"command": "status"})

    def test_disabled_in_the_config(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "agent.toml"
        config.write_text(
            '[global]\ncontrol_socket = ""\n'
            '[[instance]]\nname = "VI_1"\ninterface = "eth0"\nvrid = 51\nvips = ["10.0.0.1"]\n'
        )
        assert main(["status", "--config", str(config)]) == 2
        assert capsys.readouterr().err == (
            f'error: {config}: control_socket is disabled ("") in this file\n'
        )

    def test_invalid_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["status", "--config", str(tmp_path / "nope.toml")]) == 2
        assert capsys.readouterr().err.startswith("error: ")

    def test_drain_needs_a_name(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["drain"]) == 2
        assert "the following arguments are required: NAME" in capsys.readouterr().err

    def test_socket_and_config_are_exclusive(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["status", "--socket", "/a", "--config", "/b"]) == 2
        assert "not allowed with argument" in capsys.readouterr().err

    def test_a_garbled_answer_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = str(tmp_path / "odd.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            listener.listen()

            def answer_garbage() -> None:
                connection, _ = listener.accept()
                with connection:
                    connection.recv(1000)
                    connection.sendall(b"<html>\n")

            import threading

            thread = threading.Thread(target=answer_garbage)
            thread.start()
            assert main(["status", "--socket", path]) == 2
            thread.join(5)
        assert capsys.readouterr().err == (
            f"error: {path}: the agent sent something that is not JSON\n"
        )
