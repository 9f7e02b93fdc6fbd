"""Notify scripts and the notify FIFO: telling the outside world about state changes.

keepalived runs notify scripts fire-and-forget: unqueued, unordered, without a timeout, so
two quick transitions can run ``notify_backup`` after ``notify_master`` and a hung script
lives forever (keepalived.md §5, §12). Here every instance and every sync group has its own
FIFO queue: calls run one at a time in transition order, each bounded by a timeout after
which its process group is killed (the machinery of :mod:`agent.host.scripts`). The
protocol only ever *enqueues* (a synchronous, non-blocking call), so no script can delay
an advertisement or a failover, and a hung call delays the next one by at most its timeout.

Arguments follow keepalived.conf(5): a per-state script (``notify_master`` ...) runs with
its configured arguments only; the generic ``notify`` runs *after* it with four arguments
appended: ``INSTANCE``/``GROUP``, the name, the new state in upper case, the priority
(ipfailover.md §4.6: what the OpenShift image's scripts receive).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from agent.host.scripts import (
    DEFAULT_KILL_GRACE,
    RateLimitedLog,
    ScriptUser,
    run_process,
)

log = logging.getLogger("agent")

#: Default seconds a notify call may run before its process group is killed. keepalived has
#: no limit at all; long enough for a cloud API call that moves an address.
DEFAULT_NOTIFY_TIMEOUT: Final = 10.0
#: Pending calls per instance or group beyond which new ones are dropped (and counted): a
#: hung script plus a flapping instance must not grow memory without bound.
DEFAULT_MAX_QUEUE: Final = 64


class Kind(StrEnum):
    """``$1`` of the generic notify script and the first word of a FIFO line."""

    INSTANCE = "INSTANCE"
    GROUP = "GROUP"


class NotifyState(StrEnum):
    """``$3``: the state an instance or group has just entered (keepalived's upper case)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"


@dataclass(frozen=True, slots=True)
class Command:
    """An executable and its configured arguments (exec'd directly, no shell)."""

    argv: tuple[str, ...]
    user: ScriptUser | None = None


@dataclass(frozen=True, slots=True)
class NotifyScripts:
    """The notify scripts of one instance or sync group; any may be absent."""

    notify: Command | None = None
    master: Command | None = None
    backup: Command | None = None
    fault: Command | None = None
    stop: Command | None = None
    #: Seconds each call may run before its process group is killed (None: the
    #: dispatcher's default).
    timeout: float | None = None

    def calls(self, kind: Kind, name: str, state: NotifyState, priority: int) -> list[Command]:
        """The commands one transition runs, in keepalived's order: the per-state script,
        then the generic ``notify`` with ``$1..$4`` appended."""
        per_state = {
            NotifyState.MASTER: self.master,
            NotifyState.BACKUP: self.backup,
            NotifyState.FAULT: self.fault,
            NotifyState.STOP: self.stop,
        }[state]
        calls = [] if per_state is None else [per_state]
        if self.notify is not None:
            extra = (kind.value, name, state.value, str(priority))
            calls.append(Command(self.notify.argv + extra, self.notify.user))
        return calls


def fifo_line(kind: Kind, name: str, state: NotifyState, priority: int) -> str:
    """keepalived's notify FIFO line (keepalived.md §5), e.g. ``INSTANCE "VI_1" MASTER 100``."""
    return f'{kind.value} "{name}" {state.value} {priority}\n'


class NotifyFifo:
    """Writes transition lines to a named pipe without ever blocking.

    The FIFO is created (mode 0600) if missing, as keepalived does, and removed on close if
    we created it. It is opened with O_NONBLOCK: with no reader the open fails (ENXIO), with
    a slow reader a full pipe fails the write (EAGAIN), and a reader that went away fails it
    with EPIPE; each case drops the line, counts it, logs rate-limited and retries the open
    at the next line. A line of at most PIPE_BUF (4096) bytes is written whole or not at all.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.written = 0
        self.dropped = 0
        self._fd: int | None = None
        self._created = False
        self._log = RateLimitedLog()

    def write(self, kind: Kind, name: str, state: NotifyState, priority: int) -> bool:
        """Write one line; True if the reader got it, False if it was dropped."""
        fd = self._open()
        if fd is not None:
            try:
                os.write(fd, fifo_line(kind, name, state, priority).encode())
            except BlockingIOError:
                self._log(logging.WARNING, "notify FIFO %s: full, line dropped", self.path)
            except OSError as exc:
                self._close_fd()
                self._log(logging.WARNING, "notify FIFO %s: %s, line dropped", self.path, exc)
            else:
                self.written += 1
                return True
        self.dropped += 1
        return False

    def _open(self) -> int | None:
        if self._fd is not None:
            return self._fd
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self.path, flags)
            except FileNotFoundError:
                os.mkfifo(self.path, 0o600)
                self._created = True
                fd = os.open(self.path, flags)
        except OSError as exc:
            reason = "no reader" if exc.errno == errno.ENXIO else exc.strerror
            self._log(logging.WARNING, "notify FIFO %s: %s, line dropped", self.path, reason)
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            self._log(logging.ERROR, "notify FIFO %s: not a FIFO, line dropped", self.path)
            return None
        self._fd = fd
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()
        if self._created:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._created = False


@dataclass(slots=True)
class NotifyCounters:
    """Plain counters for metrics."""

    calls: int = 0
    failures: int = 0
    timeouts: int = 0
    #: Calls never started: queue full, or enqueued after close.
    dropped: int = 0


class NotifyDispatcher:
    """Per-instance and per-group FIFO queues of notify calls, run in the background.

    ``scripts`` maps ``(Kind, name)`` to that instance's or group's scripts; a transition of
    something without scripts only goes to the FIFO. The dispatcher owns ``fifo`` and
    closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        scripts: Mapping[tuple[Kind, str], NotifyScripts],
        *,
        fifo: NotifyFifo | None = None,
        timeout: float = DEFAULT_NOTIFY_TIMEOUT,
        kill_grace: float = DEFAULT_KILL_GRACE,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.scripts = dict(scripts)
        self.fifo = fifo
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.max_queue = max_queue
        self.counters = NotifyCounters()
        self._queues: dict[tuple[Kind, str], deque[tuple[Command, float]]] = {}
        self._workers: dict[tuple[Kind, str], asyncio.Task[None]] = {}
        self._closed = False
        self._drop_log = RateLimitedLog()

    def enqueue(self, kind: Kind, name: str, state: NotifyState, priority: int) -> None:
        """Record a transition: write the FIFO line now and queue the scripts' calls.

        Never blocks and never waits for a script, so the protocol can call it from its
        action handling. Needs a running event loop when scripts are configured.
        """
        if self._closed:
            self.counters.dropped += 1
            log.warning("notify %s %s %s after shutdown, ignored", kind, name, state)
            return
        if self.fifo is not None:
            self.fifo.write(kind, name, state, priority)
        key = (kind, name)
        scripts = self.scripts.get(key)
        if scripts is None:
            return
        queue = self._queues.setdefault(key, deque())
        for command in scripts.calls(kind, name, state, priority):
            if len(queue) >= self.max_queue:
                self.counters.dropped += 1
                self._drop_log(
                    logging.ERROR,
                    "notify %s %s %s: %d calls already pending, call dropped",
                    kind,
                    name,
                    state,
                    len(queue),
                )
                continue
            queue.append((command, self.timeout if scripts.timeout is None else scripts.timeout))
        if queue and key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._work(key, queue), name=f"notify {kind} {name}"
            )

    async def _work(self, key: tuple[Kind, str], queue: deque[tuple[Command, float]]) -> None:
        try:
            while queue:
                command, time_limit = queue.popleft()
                result = await run_process(
                    command.argv,
                    time_limit=time_limit,
                    kill_grace=self.kill_grace,
                    user=command.user,
                )
                self.counters.calls += 1
                self.counters.failures += 0 if result.ok else 1
                self.counters.timeouts += 1 if result.timed_out else 0
                output = f"; output: {result.output}" if result.output else ""
                log.log(
                    logging.INFO if result.ok else logging.WARNING,
                    "notify %s %s: %s: %s%s",
                    key[0],
                    key[1],
                    " ".join(command.argv),
                    result.describe(),
                    output,
                )
        finally:
            # Leaving with calls still queued happens only on cancellation (aclose).
            del self._workers[key]

    async def aclose(self, limit: float | None = None) -> None:
        """Stop accepting calls and let the queued ones run (each within its timeout, so a
        final STOP notification still happens); after ``limit`` seconds (None: no overall
        limit) kill whatever still runs. Returns when no notify process is left."""
        self._closed = True
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=limit)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            dropped = sum(len(q) for q in self._queues.values())
            if dropped:
                self.counters.dropped += dropped
                log.warning("notify: %d calls not run at shutdown", dropped)
        self._queues.clear()
        if self.fifo is not None:
            self.fifo.close()
