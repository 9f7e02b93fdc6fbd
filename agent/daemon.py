"""The agent process: signals, systemd notifications, reload and operator commands.

Lifecycle of :func:`run` (the wiring itself is :class:`agent.runtime.Runtime`):

1. Resolve every configured interface; remove configured VIPs this node still holds (a
   ``kill -9`` leaves them in the kernel, and a backup holding a VIP would answer ARP for
   it next to the real master); choose the receive path (``[global] bpf``); open sockets;
   start routers, checks and notify dispatch. Then tell systemd READY=1.
2. Run. SIGHUP (or ``vrrp-agent reload``) re-reads the configuration: an invalid file is
   rejected with its error and the running configuration stays; otherwise it is applied
   as a diff (:meth:`agent.runtime.Runtime.reload`).
3. On SIGTERM or SIGINT shut every router down (RFC 9568 §6.4.3: a master sends a
   priority-0 advert and removes its VIPs), run the STOP notifications, wait for netlink,
   stop the checks, close sockets and eBPF attachments, return 0. Further signals during
   the shutdown are logged and ignored, so an impatient second Ctrl-C cannot leave VIPs
   behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from agent.config import AgentConfig, ConfigError
from agent.host import sdnotify
from agent.host.control import ControlServer, start_control_server
from agent.host.errors import HostError
from agent.host.metrics import MetricsServer, start_metrics_server
from agent.host.netlink import Netlink
from agent.runtime import Runtime

log = logging.getLogger("agent")

#: Re-reads the configuration from where it came (file or environment) for a reload;
#: raises :class:`~agent.config.ConfigError` when it is invalid.
ConfigSource = Callable[[], AgentConfig]


async def run(config: AgentConfig, reload_source: ConfigSource | None = None) -> int:
    """Run the agent until SIGTERM/SIGINT, then return 0 after a clean shutdown.

    Problems found at startup (missing interface, missing capability, no IPv4 address,
    ``bpf = "required"`` without a usable eBPF filter) raise
    :class:`~agent.host.errors.HostError` after undoing whatever was already set up;
    the CLI prints them as ``error: <message>``. Logging is set up by the caller.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    watchdog: _Watchdog | None = None
    try:
        async with Netlink() as netlink:
            runtime = Runtime(config, loop, netlink)
            agent = _Process(runtime, reload_source)
            _install_signal_handlers(loop, stop, agent.request_reload)
            try:
                await runtime.start()
                await agent.start_servers()
                sdnotify.notify(
                    f"{sdnotify.READY}\nSTATUS={len(config.instances)} virtual router(s) running"
                )
                period = sdnotify.watchdog_period()
                watchdog = _Watchdog(loop, period) if period is not None else None
                await stop.wait()
                sdnotify.notify(sdnotify.STOPPING)
                log.info("shutting down")
                await agent.wait_for_reload()
            finally:
                await agent.close_servers()
                await runtime.stop()
        if watchdog is not None:
            watchdog.cancel()
    finally:
        # The VIPs are released and the process is about to exit: from here on a stray
        # SIGINT or SIGTERM must not turn a clean exit into a KeyboardInterrupt.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    log.info("stopped")
    return 0


class _Process:
    """Operator requests (reload, drain, status) against the running :class:`Runtime`."""

    def __init__(self, runtime: Runtime, reload_source: ConfigSource | None) -> None:
        self.runtime = runtime
        self._reload_source = reload_source
        self._reloading: asyncio.Task[dict[str, Any]] | None = None
        self._metrics: MetricsServer | None = None
        self._control: ControlServer | None = None

    async def start_servers(self) -> None:
        """The metrics endpoint and the control socket, as ``[global]`` asks."""
        settings = self.runtime.config.global_
        if settings.metrics_listen:
            self._metrics = await start_metrics_server(
                settings.metrics_listen, self.runtime.status, settings.metrics_keepalived_names
            )
            host, port = self._metrics.address[:2]
            log.info("metrics: http://%s:%d/metrics", host, port)
        if settings.control_socket:
            self._control = await start_control_server(settings.control_socket, self.handle)
            log.info("control socket: %s", settings.control_socket)

    async def close_servers(self) -> None:
        for server in (self._metrics, self._control):
            if server is not None:
                server.close()
                await server.wait_closed()
        self._metrics = self._control = None

    def request_reload(self) -> None:
        """SIGHUP: start a reload unless one is running."""
        if self._reloading is not None and not self._reloading.done():
            log.warning("SIGHUP: a reload is already in progress")
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload())

    async def wait_for_reload(self) -> None:
        """Let a reload in progress finish before the shutdown takes everything down."""
        if self._reloading is not None:
            await asyncio.wait({self._reloading})

    async def reload(self) -> dict[str, Any]:
        """Validate the new configuration first; keep the running one if it is invalid."""
        if self._reload_source is None:
            return {
                "ok": False,
                "message": "started with --from-env: the environment of a running process "
                "cannot change; restart the agent to apply a new one",
            }
        sdnotify.notify(sdnotify.reloading())
        try:
            try:
                new = await asyncio.to_thread(self._reload_source)
            except ConfigError as error:
                log.error("reload rejected, running configuration kept: %s", error)
                return {"ok": False, "message": f"invalid configuration: {error}"}
            try:
                summary = await self.runtime.reload(new)
            except ValueError as error:
                log.error("reload rejected, running configuration kept: %s", error)
                return {"ok": False, "message": str(error)}
            except HostError as error:
                # Past the checks: part of the new configuration is applied.
                log.error("reload failed part-way: %s", error)
                return {"ok": False, "message": f"reload failed part-way: {error}"}
            return {"ok": True, "message": summary}
        finally:
            sdnotify.notify(sdnotify.READY)

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control-socket command (see :mod:`agent.host.control`)."""
        command = request.get("command")
        if command == "status":
            return self.runtime.status()
        if command == "reload":
            return await self.reload()
        if command in ("drain", "undrain"):
            name = request.get("instance")
            if not isinstance(name, str):
                return {"ok": False, "message": f"{command} needs an instance name"}
            try:
                message = self.runtime.set_drained(name, command == "drain")
            except KeyError:
                known = ", ".join(sorted(self.runtime.drivers)) or "none"
                return {"ok": False, "message": f"no instance {name!r} (instances: {known})"}
            return {"ok": True, "message": message}
        return {"ok": False, "message": f"unknown command {command!r}"}


class _Watchdog:
    """Pings systemd's watchdog from the event loop itself (``WatchdogSec=``): a stuck
    loop stops the pings, and systemd restarts the agent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = loop
        self._period = period
        self._handle: asyncio.TimerHandle | None = None
        self._ping()

    def _ping(self) -> None:
        sdnotify.notify(sdnotify.WATCHDOG)
        self._handle = self._loop.call_later(self._period, self._ping)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, reload: Callable[[], None]
) -> None:
    def on_stop(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s: shutdown already in progress", signum.name)
        else:
            log.info("%s received", signum.name)
            stop.set()

    def on_hup() -> None:
        if stop.is_set():
            log.warning("SIGHUP: shutting down, reload ignored")
        else:
            log.info("SIGHUP received: reloading the configuration")
            reload()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
