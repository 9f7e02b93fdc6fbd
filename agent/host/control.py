"""The control socket: ``vrrp-agent status``, ``reload``, ``drain`` and ``undrain``.

Theory of operation
-------------------
Operators ask keepalived for its state with signals and files in /tmp (keepalived.md
§6); we answer on a unix socket instead (``[global] control_socket``). A unix socket,
not TCP, because its file mode is the access control: it is created with mode 0600, so
only the agent's user (root) can drain an instance. The mode is set through the umask
around ``bind()`` rather than a ``chmod`` afterwards, so there is no moment at which
another user could connect. A missing parent directory is created with mode 0700.

The protocol is one JSON object per line in each direction, so that ``socat`` or a
three-line script can use it as well as the CLI::

    {"command": "status"}                       -> the status dict (contract.md)
    {"command": "reload"}                       -> {"ok": true, "message": "..."}
    {"command": "drain", "instance": "VI_1"}    -> {"ok": true, "message": "..."}
    {"command": "undrain", "instance": "VI_1"}  -> {"ok": true, "message": "..."}

Requests are validated here; the daemon's handler only sees well-formed ones. Anything
else is answered with ``{"ok": false, "error": "..."}`` and the connection stays usable,
and an exception in the handler becomes such an answer too: the control socket must
never take the agent down.

A socket file left by a crashed agent is replaced at start-up. One that still answers
belongs to a running agent, whose pid the kernel tells us (``SO_PEERCRED``): starting a
second agent on the same socket would make the first unreachable, so that is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from agent.host.errors import HostError

log = logging.getLogger("agent.control")

#: The daemon's side: a well-formed request in, the response dict out.
ControlHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: Commands and whether they take an ``instance``: required (True), optional (None) or
#: not at all (False).
COMMANDS: Final[Mapping[str, bool | None]] = {
    "status": None,
    "reload": False,
    "drain": True,
    "undrain": True,
}
#: Longest request line the server reads, in bytes.
MAX_REQUEST: Final = 64 * 1024
#: Longest response the client reads (a status of 255 instances is well below this).
MAX_RESPONSE: Final = 16 * 1024 * 1024
#: Seconds the client waits for an answer: a reload validates a file and may load eBPF.
CLIENT_TIMEOUT: Final = 30.0
#: Seconds the start-up check waits for an existing socket to accept a connection.
PROBE_TIMEOUT: Final = 2.0
#: Exit status of the CLI when the agent is not running (as ``systemctl status`` does).
EXIT_NOT_RUNNING: Final = 3

_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


# -- server ------------------------------------------------------------------------------


class ControlServer:
    """The listening control socket; :meth:`close` removes the file."""

    def __init__(self, path: str, handler: ControlHandler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._identity: tuple[int, int] | None = None

    def close(self) -> None:
        """Stop listening, drop open connections and remove the socket file if it is
        still ours (not one a newer agent has put in its place)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._identity is not None:
            with contextlib.suppress(OSError):
                info = os.lstat(self.path)
                if (info.st_dev, info.st_ino) == self._identity:
                    os.unlink(self.path)
            self._identity = None

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def _start(self) -> None:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as error:
            raise HostError(
                f"control socket {self.path}: cannot create directory {directory}: {error.strerror}"
            ) from None
        await _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # umask, not chmod after bind: the socket never exists with a wider mode.
            # Nothing is awaited between the two umask calls.
            old_umask = os.umask(0o177)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old_umask)
            info = os.lstat(self.path)
            self._identity = (info.st_dev, info.st_ino)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST
            )
        except OSError as error:
            sock.close()
            self.close()
            raise HostError(f"control socket {self.path}: {error.strerror}") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as eof:
                    # The client closed its side: answer a last request without a newline.
                    if eof.partial.strip():
                        await _send(writer, await self._answer(eof.partial))
                    return
                except asyncio.LimitOverrunError:
                    await _send(writer, _error(f"request longer than {MAX_REQUEST} bytes"))
                    return
                if line.strip():
                    await _send(writer, await self._answer(line))
        except ConnectionError:
            pass  # the client went away; nothing to answer
        except Exception:  # never let one client take the control socket down
            log.exception("control socket: unexpected error while serving a client")
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError as error:  # includes UnicodeDecodeError
            return _error(f"not valid JSON: {error}")
        problem = validate_request(request)
        if problem is not None:
            return _error(problem)
        try:
            return await self._handler(request)
        except Exception as error:
            log.exception("control socket: %s failed", request["command"])
            return _error(f"{request['command']} failed: {error}")


def validate_request(request: object) -> str | None:
    """Why ``request`` is not a well-formed control request, or None if it is."""
    if not isinstance(request, dict):
        return 'a request must be a JSON object such as {"command": "status"}'
    command = request.get("command")
    if not isinstance(command, str) or command not in COMMANDS:
        return f"unknown command {json.dumps(command)}; known: {', '.join(COMMANDS)}"
    unknown = sorted(set(request) - {"command", "instance"})
    if unknown:
        return f"{command}: unknown key(s) {', '.join(map(json.dumps, unknown))}"
    takes_instance = COMMANDS[command]
    if "instance" in request:
        if takes_instance is False:
            return f"{command} takes no instance"
        if not isinstance(request["instance"], str):
            return f"{command}: instance must be a string (an instance name)"
    elif takes_instance:
        return f'{command} needs "instance": the name of the instance'
    return None


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


async def _send(writer: asyncio.StreamWriter, response: Mapping[str, Any]) -> None:
    try:
        data = json.dumps(response, allow_nan=False)
    except (TypeError, ValueError) as error:
        log.error("control socket: response is not JSON-serialisable: %s", error)
        data = json.dumps(_error("internal error: the response could not be encoded"))
    writer.write(data.encode() + b"\n")
    await writer.drain()


async def _remove_stale(path: str) -> None:
    """Remove a socket file no process listens on; refuse one that a live agent holds."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise HostError(
            f"control socket {path}: the path exists and is not a socket; remove it or set "
            "[global] control_socket to another path"
        )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _, writer = await asyncio.open_unix_connection(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("control socket %s: removed the stale socket of an earlier run", path)
        return
    except TimeoutError:
        raise HostError(
            f"control socket {path} is in use by another agent that does not answer"
        ) from None
    except OSError as error:
        raise HostError(f"control socket {path}: {error.strerror}") from None
    pid = _peer_pid(writer.get_extra_info("socket"))
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    raise HostError(f"control socket {path} is in use by another agent (pid {pid})")


def _peer_pid(sock: socket.socket | None) -> int | str:
    """The pid of the process that listens on the other end (``SO_PEERCRED``)."""
    if sock is None:
        return "unknown"
    pid, _, _ = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return int(pid)


async def start_control_server(path: str, handler: ControlHandler) -> ControlServer:
    """Listen on the unix socket ``path`` (mode 0600) and answer requests with ``handler``.

    Creates the parent directory (mode 0700) if it is missing and replaces a stale socket
    file. Raises :class:`~agent.host.errors.HostError` if another agent is listening on
    ``path``, or if the path cannot be used (not a socket, permission denied).
    """
    server = ControlServer(path, handler)
    await server._start()
    log.info("control socket: listening on %s", path)
    return server


# -- client (the CLI; blocking, never called on the event loop) --------------------------


class ControlError(Exception):
    """The CLI could not get an answer; ``str()`` is one line for the user."""

    #: The CLI's exit status for this failure.
    exit_status = 2


class AgentNotRunning(ControlError):
    """Nothing listens on the control socket."""

    exit_status = EXIT_NOT_RUNNING


def send_request(
    path: str, request: Mapping[str, Any], timeout: float = CLIENT_TIMEOUT
) -> dict[str, Any]:
    """Send one request to the agent at ``path`` and return its answer (a dict).

    Raises :class:`AgentNotRunning` when no agent listens there and :class:`ControlError`
    for anything else that prevents an answer (permission, timeout, garbled reply).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, NotADirectoryError):
            raise AgentNotRunning(
                f"no control socket at {path}: the agent is not running (or uses another "
                "control_socket: give --socket PATH or --config FILE)"
            ) from None
        except ConnectionRefusedError:
            raise AgentNotRunning(
                f"the agent is not running: nothing listens on {path} (left by an earlier run)"
            ) from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {path}: the control socket is mode 0600, run this "
                "as the agent's user (root)"
            ) from None
        except TimeoutError:
            raise ControlError(f"{path}: the agent did not accept within {timeout:g} s") from None
        except OSError as error:
            raise ControlError(f"cannot connect to {path}: {error.strerror}") from None
        try:
            sock.sendall(json.dumps(dict(request)).encode() + b"\n")
            data = _read_line(sock)
        except TimeoutError:
            raise ControlError(f"{path}: no answer from the agent within {timeout:g} s") from None
        except OSError as error:
            raise ControlError(f"{path}: connection failed: {error.strerror}") from None
    try:
        response = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: the agent sent something that is not JSON") from None
    if not isinstance(response, dict):
        raise ControlError(f"{path}: the agent sent JSON that is not an object")
    return response


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ControlError("the agent closed the connection without an answer")
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise ControlError(f"the agent's answer is longer than {MAX_RESPONSE} bytes")
