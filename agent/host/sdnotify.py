"""systemd service notifications (``sd_notify(3)``) without libsystemd.

With ``Type=notify`` systemd considers the service started only when the process says
``READY=1``, so ``systemctl start`` (and units ordered ``After=vrrp-agent``) wait until the
routers run instead of until the interpreter was exec'd. ``STOPPING=1`` and
``RELOADING=1`` make ``systemctl status`` tell the truth during a shutdown and a reload,
and ``WATCHDOG=1`` pings let systemd restart an agent whose event loop is stuck: a stuck
loop sends no adverts, so its backups would take over while it still holds the VIPs.

The protocol is one ``AF_UNIX`` datagram of newline-separated ``KEY=VALUE`` lines sent to
the socket named by ``$NOTIFY_SOCKET`` (``sd_notify(3)``, "NOTES"); a name starting with
``@`` is in the abstract namespace, where the ``@`` stands for a leading NUL byte. Writing
it here avoids a dependency (libsystemd or a PyPI wrapper) for twenty lines of socket
code, and lets the agent guarantee what libsystemd does not: the send never blocks the
event loop (a full receive queue drops the message and returns ``False``).

Outside systemd (no ``$NOTIFY_SOCKET``: a terminal, a container, the tests' lab) every
call is a cheap no-op returning ``False``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

#: The service finished starting: every router runs (``sd_notify(3)``, ``READY=1``).
READY = "READY=1"
#: The service begins its shutdown: routers release their VIPs (``STOPPING=1``).
STOPPING = "STOPPING=1"
#: Keep-alive for ``WatchdogSec=`` (``WATCHDOG=1``).
WATCHDOG = "WATCHDOG=1"


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (one or more ``KEY=VALUE`` lines) to the service manager.

    Returns ``True`` when the datagram was handed to the kernel, ``False`` when there is no
    service manager to tell (``$NOTIFY_SOCKET`` unset or not a unix socket address) or the
    send failed: notifications are advisory, and a failure must never stop the agent.
    ``environ`` defaults to :data:`os.environ`; tests pass their own.
    """
    address = _socket_address(os.environ if environ is None else environ)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        # Non-blocking: systemd reads these promptly, but if its queue is ever full we
        # drop a status message rather than stall adverts and timers behind it.
        sock.setblocking(False)
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True


def reloading(monotonic_ns: int | None = None) -> str:
    """The ``RELOADING=1`` message, stamped as systemd ≥ 253 expects.

    ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, microseconds) lets systemd tell this reload from
    an older one (``sd_notify(3)``, ``RELOADING=1``); older versions ignore the line. Send
    :data:`READY` when the reload is done, whatever its outcome.
    """
    now = time.monotonic_ns() if monotonic_ns is None else monotonic_ns
    return f"RELOADING=1\nMONOTONIC_USEC={now // 1000}"


def watchdog_period(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or ``None`` when no watchdog is armed.

    systemd passes ``WatchdogSec=`` as ``$WATCHDOG_USEC`` and, for this process,
    ``$WATCHDOG_PID``; a ``$WATCHDOG_PID`` naming another process means the variables were
    inherited and are not ours (``sd_watchdog_enabled(3)``). We ping at half the timeout,
    as that page recommends, so one late ping is not yet a restart.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


def _socket_address(environ: Mapping[str, str]) -> str | None:
    """``$NOTIFY_SOCKET`` as a Python ``AF_UNIX`` address, or None if unusable.

    Only filesystem paths and abstract names are unix sockets; systemd also documents
    ``vsock:`` addresses (for virtual machines), which the agent has no use for.
    """
    name = environ.get("NOTIFY_SOCKET", "")
    if name.startswith("@") and len(name) > 1:
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None
