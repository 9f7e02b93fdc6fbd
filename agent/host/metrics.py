"""Prometheus metrics and the small HTTP endpoint that serves them.

Theory of operation
-------------------
There is no second set of counters here. :class:`StatusCollector` is a prometheus_client
custom collector whose :meth:`~StatusCollector.collect` calls the daemon's ``status()``
(the dict ``vrrp-agent status --json`` prints; coord/contract.md "Status/metrics
contract") and turns that one snapshot into metric families. Metrics and the status
command therefore can never disagree, and a counter cannot be forgotten on one side. The
collector lives on its own :class:`~prometheus_client.CollectorRegistry`, so the
library's process-wide default registry (and anything another import put there) never
leaks into our output.

Names follow the Prometheus naming rules: a ``vrrp_`` prefix, base units in the name
(``_seconds``), ``_total`` on counters, ``_info`` on constant-1 gauges that carry text in
labels. The instance labels are ``name``, ``interface`` and ``vrid``; ``instance`` is
avoided because Prometheus sets that label to the scrape target. With
``[global] metrics_keepalived_names`` the same snapshot is also exported under the names
of mehdy/keepalived-exporter (keepalived.md §13) so that existing dashboards keep working;
:data:`KEEPALIVED_STATE_CODES` and :data:`KEEPALIVED_ERROR_REASONS` document the mapping.

The HTTP server is :func:`asyncio.start_server` on the agent's own event loop, with no
thread: ``GET /healthz`` answering proves that the loop runs (which is what the
Kubernetes liveness probe should check), and a scrape reads the routers' state between
two events, so a snapshot is always consistent. Requests are parsed just enough for a
scraper or a probe: one request per connection (``Connection: close``), a head of at most
:data:`MAX_REQUEST_HEAD` bytes that must arrive within :data:`REQUEST_TIMEOUT` seconds, at
most :data:`MAX_CONNECTIONS` at once; anything else gets a 4xx status or is closed, and
no input can raise out of the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from agent.config import parse_listen_address
from agent.host.errors import HostError

log = logging.getLogger("agent.metrics")

#: What the daemon hands in: a function returning the status dict of the contract.
StatusSource = Callable[[], Mapping[str, Any]]

#: The router states in the order their series appear (RFC 9568 §6.4).
STATES: Final = ("INITIALIZE", "BACKUP", "MASTER", "FAULT")
#: keepalived's numeric ``state`` (``VRRP_STATE_INIT`` = 0, ``BACKUP`` = 1, ``MASTER`` =
#: 2, ``FAULT`` = 3 in keepalived/include/vrrp.h), which ``keepalived_vrrp_state`` carries.
KEEPALIVED_STATE_CODES: Final = {"INITIALIZE": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}
#: keepalived's per-instance error counters and the reject reasons
#: (:class:`agent.core.packet.RejectReason`) that feed them. keepalived counts a bad IP
#: payload length, a short packet and a VRRP length that does not match the address count
#: all as ``packet_len_err``; it folds a wrong auth type and a wrong password into its
#: auth counters, which we cannot tell apart (``auth_mismatch``), so they go to
#: ``authentication_mismatch`` and the other two auth counters stay 0, as does the
#: address-list counter (we accept an advert whose address list differs, as RFC 9568 §7.1
#: allows, and do not count it).
KEEPALIVED_ERROR_REASONS: Final[Mapping[str, tuple[str, ...]]] = {
    "packet_length_errors": ("bad_ip_header", "short_packet", "bad_length"),
    "ip_ttl_errors": ("bad_ttl",),
    "invalid_type_received": ("bad_type",),
    "advertisements_interval_errors": ("interval_mismatch", "bad_interval"),
    "address_list_errors": (),
    "authentication_invalid": (),
    "authentication_mismatch": ("auth_mismatch",),
    "authentication_failure": (),
}

#: Largest request head (request line and headers) accepted, in bytes.
MAX_REQUEST_HEAD: Final = 8192
#: Seconds a client has to send its request head, and then to take the response.
REQUEST_TIMEOUT: Final = 5.0
#: Connections served at once; more are closed at once (a scraper needs one).
MAX_CONNECTIONS: Final = 32
#: The classic text exposition format, which every Prometheus version reads.
CONTENT_TYPE_METRICS: Final = "text/plain; version=0.0.4; charset=utf-8"

_INSTANCE_LABELS: Final = ("name", "interface", "vrid")
_KEEPALIVED_LABELS: Final = ("iname", "intf", "vrid")
_CHECK_LABELS: Final = ("check", "kind")


# -- the collector -------------------------------------------------------------------------


class StatusCollector:
    """A prometheus_client collector that builds every metric from one ``status()`` call."""

    def __init__(self, status: StatusSource, keepalived_names: bool = False) -> None:
        self._status = status
        self._keepalived_names = keepalived_names

    def collect(self) -> Iterator[Metric]:
        snapshot = self._status()
        yield from _agent_metrics(snapshot["agent"])
        yield from _instance_metrics(snapshot["instances"])
        yield from _sync_group_metrics(snapshot["sync_groups"])
        yield from _receive_metrics(snapshot["interfaces"], snapshot["bpf"])
        yield from _check_metrics(snapshot["checks"])
        yield from _notify_metrics(snapshot["notify"])
        if self._keepalived_names:
            yield from _keepalived_metrics(snapshot)


def metrics_registry(status: StatusSource, keepalived_names: bool = False) -> CollectorRegistry:
    """A registry of its own holding only a :class:`StatusCollector` over ``status``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, keepalived_names))
    return registry


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    # prometheus_client appends the ``_total`` to the sample name itself.
    return CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(labels))


def _agent_metrics(agent: Mapping[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("vrrp_up", "1 while the agent runs and answers scrapes.", value=1)
    yield GaugeMetricFamily(
        "vrrp_start_time_seconds",
        "Start time of the agent since the Unix epoch, in seconds.",
        value=round(time.time() - float(agent["uptime_seconds"]), 3),
    )
    yield InfoMetricFamily(
        "vrrp_agent",
        "Version of the agent and the asyncio event loop it runs on.",
        value={"version": str(agent["version"]), "event_loop": str(agent["event_loop"])},
    )
    yield InfoMetricFamily(
        "vrrp_receive_path",
        "How adverts are received: userspace, ebpf-socket or ebpf-tc; the configured "
        "[global] bpf mode; and why eBPF is not in use, if it is not.",
        value={
            "receive_path": str(agent["receive_path"]),
            "bpf_mode": str(agent["bpf_mode"]),
            "bpf_unavailable_reason": str(agent["bpf_unavailable_reason"] or ""),
        },
    )


def _instance_metrics(instances: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    info = InfoMetricFamily(
        "vrrp_instance",
        "Configuration of a VRRP instance.",
        labels=_INSTANCE_LABELS,
    )
    state = _gauge(
        "vrrp_instance_state",
        "1 for the instance's current state, 0 for the others.",
        (*_INSTANCE_LABELS, "state"),
    )
    base_priority = _gauge(
        "vrrp_instance_base_priority", "Configured priority (1..255).", _INSTANCE_LABELS
    )
    priority = _gauge(
        "vrrp_instance_priority",
        "Effective priority: the base priority moved by check and interface weights, "
        "0 while drained.",
        _INSTANCE_LABELS,
    )
    interval = _gauge(
        "vrrp_instance_advert_interval_seconds", "Configured advert interval.", _INSTANCE_LABELS
    )
    drained = _gauge(
        "vrrp_instance_drained", "1 while an operator has drained the instance.", _INSTANCE_LABELS
    )
    fault = _gauge(
        "vrrp_instance_fault",
        "1 while the instance has a fault cause (failed check, interface down).",
        _INSTANCE_LABELS,
    )
    master = InfoMetricFamily(
        "vrrp_instance_master",
        "The current master of the virtual router as far as this node knows.",
        labels=_INSTANCE_LABELS,
    )
    master_priority = _gauge(
        "vrrp_instance_master_priority", "Priority the current master advertises.", _INSTANCE_LABELS
    )
    advert_age = _gauge(
        "vrrp_instance_last_advert_age_seconds",
        "Seconds since the last advert from the master was received.",
        _INSTANCE_LABELS,
    )
    transition_age = _gauge(
        "vrrp_instance_last_transition_age_seconds",
        "Seconds since the instance last changed state.",
        _INSTANCE_LABELS,
    )
    counters = {
        key: _counter(name, doc, _INSTANCE_LABELS)
        for key, name, doc in (
            ("adverts_sent", "vrrp_instance_adverts_sent_total", "Adverts sent."),
            ("adverts_received", "vrrp_instance_adverts_received_total", "Adverts accepted."),
            (
                "priority_zero_sent",
                "vrrp_instance_priority_zero_sent_total",
                "Priority-0 adverts sent (releasing mastership).",
            ),
            (
                "priority_zero_received",
                "vrrp_instance_priority_zero_received_total",
                "Priority-0 adverts received (the master released).",
            ),
            (
                "garps_sent",
                "vrrp_instance_gratuitous_arps_sent_total",
                "Gratuitous ARP replies sent for the VIPs.",
            ),
        )
    }
    transitions = _counter(
        "vrrp_instance_transitions_total",
        "State changes by old state, new state and cause.",
        (*_INSTANCE_LABELS, "from", "to", "cause"),
    )
    rejected = _counter(
        "vrrp_instance_adverts_rejected_total",
        "Datagrams for this VRID the userspace receive path dropped, by reason.",
        (*_INSTANCE_LABELS, "reason"),
    )
    for instance in instances:
        labels = [str(instance["name"]), str(instance["interface"]), str(instance["vrid"])]
        info.add_metric(
            labels,
            {
                "version": str(instance["version"]),
                "preempt": "true" if instance["preempt"] else "false",
                "primary_address": str(instance["primary_address"]),
                "vips": ",".join(instance["vips"]),
            },
        )
        for name in STATES:
            state.add_metric([*labels, name], 1 if instance["state"] == name else 0)
        base_priority.add_metric(labels, instance["base_priority"])
        priority.add_metric(labels, instance["priority"])
        interval.add_metric(labels, instance["advert_interval_seconds"])
        drained.add_metric(labels, 1 if instance["drained"] else 0)
        fault.add_metric(labels, 1 if instance["fault_causes"] else 0)
        if instance["master"] is not None:
            current = instance["master"]
            master.add_metric(labels, {"master_address": str(current["address"])})
            master_priority.add_metric(labels, current["priority"])
            if current["last_advert_age_seconds"] is not None:
                advert_age.add_metric(labels, current["last_advert_age_seconds"])
        if instance["last_transition"] is not None:
            transition_age.add_metric(labels, instance["last_transition"]["age_seconds"])
        for key, family in counters.items():
            family.add_metric(labels, instance["counters"][key])
        for change in instance["transitions"]:
            transitions.add_metric(
                [*labels, change["from"], change["to"], change["cause"]], change["count"]
            )
        for reason, count in sorted(instance["rejected_by_reason"].items()):
            rejected.add_metric([*labels, reason], count)
    yield from (info, state, base_priority, priority, interval, drained, fault, master)
    yield from (master_priority, advert_age, transition_age, *counters.values())
    yield from (transitions, rejected)


def _sync_group_metrics(groups: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    state = _gauge(
        "vrrp_sync_group_state",
        "1 for the sync group's current state, 0 for the others.",
        ("group", "state"),
    )
    for group in groups:
        for name in STATES:
            state.add_metric([str(group["name"]), name], 1 if group["state"] == name else 0)
    yield state


def _receive_metrics(
    interfaces: Sequence[Mapping[str, Any]], bpf: Mapping[str, Any] | None
) -> Iterator[Metric]:
    accepted = _counter(
        "vrrp_userspace_adverts_accepted_total",
        "Adverts the userspace receive path accepted on an interface.",
        ("interface",),
    )
    dropped = _counter(
        "vrrp_packets_dropped_total",
        'Received datagrams dropped, by reason; path="userspace" per interface, '
        'path="ebpf" for the kernel filter (interface="").',
        ("path", "interface", "reason"),
    )
    for interface in interfaces:
        name = str(interface["name"])
        accepted.add_metric([name], interface["userspace_accepted"])
        for reason, count in sorted(interface["userspace_rejected"].items()):
            dropped.add_metric(["userspace", name, reason], count)
    yield accepted
    ebpf_accepted = _counter(
        "vrrp_ebpf_adverts_accepted_total", "Adverts the eBPF filter accepted."
    )
    absorbed = _counter(
        "vrrp_ebpf_adverts_absorbed_total",
        "Steady-state adverts the eBPF socket filter kept in the kernel (kernel-only mode).",
    )
    if bpf is not None:
        ebpf_accepted.add_metric([], bpf["accepted"])
        absorbed.add_metric([], bpf["absorbed"])
        for reason, count in sorted(bpf["dropped"].items()):
            dropped.add_metric(["ebpf", "", reason], count)
        yield from (ebpf_accepted, absorbed)
    yield dropped


def _check_metrics(checks: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    up = _gauge("vrrp_check_up", "1 while the check passes.", _CHECK_LABELS)
    last_exit = _gauge(
        "vrrp_check_last_exit_code",
        "Exit status of the last run of a check script (negative: killed by that signal).",
        _CHECK_LABELS,
    )
    counters = {
        key: _counter(f"vrrp_check_{key}_total", doc, _CHECK_LABELS)
        for key, doc in (
            ("runs", "Runs of the check."),
            ("failures", "Failed runs (timeouts included)."),
            ("timeouts", "Runs killed or abandoned at the timeout."),
            ("skipped", "Runs skipped because the previous one was still running."),
        )
    }
    duration = HistogramMetricFamily(
        "vrrp_check_duration_seconds", "Duration of check runs.", labels=list(_CHECK_LABELS)
    )
    for check in checks:
        labels = [str(check["name"]), str(check["kind"])]
        up.add_metric(labels, 1 if check["up"] else 0)
        if check["last_exit"] is not None:
            last_exit.add_metric(labels, check["last_exit"])
        for key, family in counters.items():
            family.add_metric(labels, check[key])
        buckets = check["duration_buckets"]
        duration.add_metric(labels, _histogram_buckets(buckets), sum_value=buckets["sum"])
    yield from (up, last_exit, *counters.values(), duration)


def _histogram_buckets(buckets: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``{"le": [...], "counts": [...]}`` -> prometheus_client's ``[(le, cumulative)]``.

    ``counts`` has one more entry than ``le`` (the last is +Inf, which JSON cannot write);
    an ``le`` that already ends with infinity is taken as it is.
    """
    bounds = [float(bound) for bound in buckets["le"]]
    counts = list(buckets["counts"])
    if len(counts) == len(bounds) + 1:
        bounds.append(math.inf)
    if len(counts) != len(bounds) or not bounds or bounds[-1] != math.inf:
        raise ValueError(f"malformed duration_buckets: le={bounds} counts={counts}")
    # The spelling prometheus_client's own Histogram uses for bucket bounds.
    return [
        ("+Inf" if math.isinf(bound) else repr(bound), float(count))
        for bound, count in zip(bounds, counts, strict=True)
    ]


def _notify_metrics(notify: Mapping[str, Any]) -> Iterator[Metric]:
    for key, doc in (
        ("calls", "Notify script calls started (and FIFO lines written)."),
        ("failures", "Notify calls that exited non-zero or could not start."),
        ("timeouts", "Notify calls killed at notify_timeout."),
        ("dropped", "Notifications dropped (queue full, or no reader on the FIFO)."),
    ):
        yield CounterMetricFamily(f"vrrp_notify_{key}", doc, value=notify[key])


def _keepalived_metrics(snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    """The mehdy/keepalived-exporter names (labels ``iname``, ``intf``, ``vrid``)."""
    yield GaugeMetricFamily("keepalived_up", "Status (vrrp-agent: always 1).", value=1)
    state = _gauge(
        "keepalived_vrrp_state",
        "State of vrrp: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT; one series per VIP.",
        (*_KEEPALIVED_LABELS, "ip_address"),
    )
    simple = {
        key: _counter(f"keepalived_{name}_total", doc, _KEEPALIVED_LABELS)
        for key, name, doc in (
            ("adverts_received", "advertisements_received", "Advertisements received"),
            ("adverts_sent", "advertisements_sent", "Advertisements sent"),
            ("priority_zero_received", "priority_zero_received", "Priority zero received"),
            ("priority_zero_sent", "priority_zero_sent", "Priority zero sent"),
        )
    }
    become = _counter("keepalived_become_master_total", "Became master", _KEEPALIVED_LABELS)
    release = _counter("keepalived_release_master_total", "Released master", _KEEPALIVED_LABELS)
    errors = {
        name: _counter(
            f"keepalived_{name}_total", name.replace("_", " ").capitalize(), _KEEPALIVED_LABELS
        )
        for name in KEEPALIVED_ERROR_REASONS
    }
    for instance in snapshot["instances"]:
        labels = [str(instance["name"]), str(instance["interface"]), str(instance["vrid"])]
        code = KEEPALIVED_STATE_CODES[instance["state"]]
        for vip in instance["vips"]:
            state.add_metric([*labels, str(vip).partition("/")[0]], code)
        for key, family in simple.items():
            family.add_metric(labels, instance["counters"][key])
        transitions = instance["transitions"]
        become.add_metric(labels, sum(t["count"] for t in transitions if t["to"] == "MASTER"))
        release.add_metric(labels, sum(t["count"] for t in transitions if t["from"] == "MASTER"))
        rejected = instance["rejected_by_reason"]
        for name, reasons in KEEPALIVED_ERROR_REASONS.items():
            errors[name].add_metric(labels, sum(rejected.get(reason, 0) for reason in reasons))
    yield from (state, *simple.values(), become, release, *errors.values())
    script_status = _gauge("keepalived_script_status", "Tracker Script Status", ("name",))
    for check in snapshot["checks"]:
        # keepalived's VRRP_SCRIPT status: BAD = 0, GOOD = 1.
        script_status.add_metric([str(check["name"])], 1 if check["up"] else 0)
    yield script_status


# -- the HTTP server -----------------------------------------------------------------------


class _HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class MetricsServer:
    """The running HTTP endpoint; :meth:`close` then ``await`` :meth:`wait_closed`."""

    def __init__(self, status: StatusSource, keepalived_names: bool) -> None:
        self._status = status
        self._registry = metrics_registry(status, keepalived_names)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: ``(host, port)`` actually bound: the port is the real one when 0 was asked for.
        self.address: tuple[str, int] = ("", 0)

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_REQUEST_HEAD, reuse_address=True
        )
        bound = self._server.sockets[0].getsockname()
        self.address = (str(bound[0]), int(bound[1]))

    def close(self) -> None:
        """Stop listening and drop connections still being served."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    method, path = await _read_request(reader)
                status, content_type, body, extra = self._respond(method, path)
            except _HttpError as error:
                method, status, content_type = "GET", error.status, "text/plain; charset=utf-8"
                body, extra = f"{error.reason}\n".encode(), {}
            except TimeoutError:
                method, status, content_type = "GET", 408, "text/plain; charset=utf-8"
                body, extra = b"request timeout\n", {}
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away before finishing its request
            head = _response_head(status, content_type, len(body), extra)
            writer.write(head if method == "HEAD" else head + body)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a client that does not read its response is not our problem
        except Exception:  # never let one request take the endpoint down
            log.exception("metrics endpoint: unexpected error while serving a request")
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await writer.wait_closed()

    def _respond(self, method: str, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        if path not in ("/metrics", "/healthz", "/status"):
            return 404, "text/plain; charset=utf-8", b"not found: try /metrics\n", {}
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n", {"Allow": "GET, HEAD"}
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n", {}
        try:
            if path == "/metrics":
                return 200, CONTENT_TYPE_METRICS, generate_latest(self._registry), {}
            body = json.dumps(self._status(), allow_nan=False, sort_keys=False) + "\n"
            return 200, "application/json", body.encode(), {}
        except Exception:
            log.exception("metrics endpoint: cannot build %s", path)
            return 500, "text/plain; charset=utf-8", b"internal error; see the agent log\n", {}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """Read the request head; return the method and the path without its query string."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _HttpError(431, "request head too large") from None
        size += len(line)
        if size > MAX_REQUEST_HEAD:
            raise _HttpError(431, "request head too large")
        line = line.rstrip(b"\r\n")
        if not line:
            break
        lines.append(line)
    if not lines:
        raise _HttpError(400, "empty request")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _HttpError(400, "malformed request line")
    method, target, _ = parts
    if not (method.isascii() and method.isalpha() and method.isupper()):
        raise _HttpError(400, "malformed method")
    return method, target.partition("?")[0]


def _response_head(status: int, content_type: str, length: int, extra: Mapping[str, str]) -> bytes:
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        "Connection: close",
        "Cache-Control: no-store",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")


async def start_metrics_server(
    listen: str, status: StatusSource, keepalived_names: bool = False
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/status`` on ``listen`` (``"host:port"``, an
    IPv4 address or a bracketed IPv6 one; port 0 picks a free port, see
    :attr:`MetricsServer.address`).

    ``status`` is called on the event loop for every ``/metrics`` and ``/status`` request.
    Raises :class:`~agent.host.errors.HostError` naming the address when it cannot listen
    (port taken, address not on this host).
    """
    try:
        host, port = parse_listen_address(listen)
    except ValueError as error:
        raise HostError(f"metrics_listen {listen!r}: {error}") from None
    server = MetricsServer(status, keepalived_names)
    try:
        await server._start(host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise HostError(
                f"metrics_listen {listen}: address already in use (another vrrp-agent or "
                'exporter? set [global] metrics_listen to another port, or "" to disable)'
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise HostError(f"metrics_listen {listen}: not an address of this host") from None
        raise HostError(f"metrics_listen {listen}: cannot listen: {error.strerror}") from None
    log.info("metrics: serving /metrics, /healthz and /status on %s", listen)
    return server
