"""agent.host.metrics: the metrics a status dict becomes, and the HTTP endpoint serving them.

The collector's output is parsed back with prometheus_client's own parser, as a scraper
would read it; the server runs on 127.0.0.1 with a free port and is spoken to with raw
bytes, including the garbage a port scanner sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent.host import metrics
from agent.host.errors import HostError
from agent.host.metrics import MetricsServer, metrics_registry, start_metrics_server
from tests.unit.status_example import status_example

Families = dict[str, Any]


def scrape(status: dict[str, Any], keepalived_names: bool = False) -> Families:
    text = generate_latest(metrics_registry(lambda: status, keepalived_names)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families: Families, name: str) -> list[Sample]:
    """Samples of one family; ``name`` may be a counter's ``..._total`` sample name."""
    family = families[name.removesuffix("_total")]
    return list(family.samples)


def value(families: Families, metric: str, /, **labels: str) -> float:
    """The value of the one sample named ``metric`` with (at least) these labels."""
    matches = [
        sample.value
        for family in families.values()
        for sample in family.samples
        if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (metric, labels, matches)
    return matches[0]


VI_1 = {"name": "VI_1", "interface": "eth0", "vrid": "51"}
VI_2 = {"name": "VI_2", "interface": "eth1", "vrid": "52"}


class TestOwnMetrics:
    def test_state_has_one_series_per_state_and_1_for_the_current(self) -> None:
        families = scrape(status_example())
        states = {
            (s.labels["name"], s.labels["state"]): s.value
            for s in samples(families, "vrrp_instance_state")
        }
        assert states == {
            ("VI_1", "INITIALIZE"): 0, ("VI_1", "BACKUP"): 0,
            ("VI_1", "MASTER"): 1, ("VI_1", "FAULT"): 0,
            ("VI_2", "INITIALIZE"): 0, ("VI_2", "BACKUP"): 1,
            ("VI_2", "MASTER"): 0, ("VI_2", "FAULT"): 0,
        }  # fmt: skip

    def test_priorities_flags_and_master(self) -> None:
        families = scrape(status_example())
        assert value(families, "vrrp_instance_base_priority", **VI_1) == 150
        assert value(families, "vrrp_instance_priority", **VI_1) == 140
        assert value(families, "vrrp_instance_priority", **VI_2) == 0
        assert value(families, "vrrp_instance_drained", **VI_2) == 1
        assert value(families, "vrrp_instance_fault", **VI_2) == 1
        assert value(families, "vrrp_instance_fault", **VI_1) == 0
        assert value(families, "vrrp_instance_advert_interval_seconds", **VI_2) == 2.0
        assert value(families, "vrrp_instance_master_info", master_address="192.168.1.3") == 1
        assert value(families, "vrrp_instance_master_priority", **VI_2) == 200
        # VI_1 is master itself: no advert received, so no age series for it.
        ages = samples(families, "vrrp_instance_last_advert_age_seconds")
        assert [(s.labels["name"], s.value) for s in ages] == [("VI_2", 0.75)]
        assert value(families, "vrrp_instance_last_transition_age_seconds", **VI_1) == 95.25

    def test_counters(self) -> None:
        families = scrape(status_example())
        assert value(families, "vrrp_instance_adverts_sent_total", **VI_1) == 3590
        assert value(families, "vrrp_instance_adverts_received_total", **VI_2) == 1800
        assert value(families, "vrrp_instance_priority_zero_sent_total", **VI_1) == 1
        assert value(families, "vrrp_instance_priority_zero_received_total", **VI_1) == 2
        assert value(families, "vrrp_instance_gratuitous_arps_sent_total", **VI_1) == 20
        assert (
            value(
                families,
                "vrrp_instance_transitions_total",
                **VI_1,
                **{"from": "BACKUP", "to": "MASTER", "cause": "master_down"},
            )
            == 2
        )
        assert value(families, "vrrp_instance_adverts_rejected_total", reason="bad_ttl") == 3

    def test_drops_by_path_and_ebpf_counters(self) -> None:
        families = scrape(status_example())
        drops = {
            (s.labels["path"], s.labels["interface"], s.labels["reason"]): s.value
            for s in samples(families, "vrrp_packets_dropped_total")
        }
        assert drops == {
            ("userspace", "eth0", "bad_ttl"): 3,
            ("ebpf", "", "bad_checksum"): 9,
            ("ebpf", "", "unknown_vrid"): 11,
        }
        assert value(families, "vrrp_userspace_adverts_accepted_total", interface="eth1") == 1800
        assert value(families, "vrrp_ebpf_adverts_accepted_total") == 5000
        assert value(families, "vrrp_ebpf_adverts_absorbed_total") == 4900

    def test_without_ebpf_there_are_no_ebpf_series(self) -> None:
        status = status_example()
        status["bpf"] = None
        families = scrape(status)
        assert not any(name.startswith("vrrp_ebpf_") for name in families)
        paths = {s.labels["path"] for s in samples(families, "vrrp_packets_dropped_total")}
        assert paths == {"userspace"}

    def test_checks_and_duration_histogram(self) -> None:
        families = scrape(status_example())
        check = {"check": "chk_http", "kind": "script"}
        assert value(families, "vrrp_check_up", **check) == 0
        assert value(families, "vrrp_check_runs_total", **check) == 100
        assert value(families, "vrrp_check_failures_total", **check) == 7
        assert value(families, "vrrp_check_timeouts_total", **check) == 2
        assert value(families, "vrrp_check_skipped_total", **check) == 1
        assert value(families, "vrrp_check_last_exit_code", **check) == 1
        buckets = {
            s.labels["le"]: s.value
            for s in samples(families, "vrrp_check_duration_seconds")
            if s.name.endswith("_bucket") and s.labels["check"] == "chk_http"
        }
        assert buckets == {"0.01": 60, "0.1": 95, "1.0": 98, "+Inf": 100}
        assert value(families, "vrrp_check_duration_seconds_count", **check) == 100
        assert value(families, "vrrp_check_duration_seconds_sum", **check) == 4.5
        # The TCP check never exited with a status: no exit code series for it.
        exits = samples(families, "vrrp_check_last_exit_code")
        assert [s.labels["check"] for s in exits] == ["chk_http"]

    def test_notify_agent_sync_groups_and_receive_path(self) -> None:
        families = scrape(status_example())
        assert value(families, "vrrp_notify_calls_total") == 8
        assert value(families, "vrrp_notify_failures_total") == 1
        assert value(families, "vrrp_notify_timeouts_total") == 2
        assert value(families, "vrrp_notify_dropped_total") == 3
        assert value(families, "vrrp_up") == 1
        assert value(families, "vrrp_agent_info", version="0.1.0", event_loop="uvloop") == 1
        assert (
            value(families, "vrrp_receive_path_info", receive_path="ebpf-socket", bpf_mode="auto")
            == 1
        )
        assert value(families, "vrrp_sync_group_state", group="G1", state="MASTER") == 1

    def test_start_time_is_now_minus_uptime(self) -> None:
        import time

        start = value(scrape(status_example()), "vrrp_start_time_seconds")
        assert abs(start - (time.time() - 3600.5)) < 5

    def test_every_scrape_reads_the_status_again(self) -> None:
        status = status_example()
        registry = metrics_registry(lambda: status)
        status["instances"][0]["counters"]["adverts_sent"] = 1
        first = generate_latest(registry).decode()
        status["instances"][0]["counters"]["adverts_sent"] = 2
        second = generate_latest(registry).decode()
        line = 'vrrp_instance_adverts_sent_total{interface="eth0",name="VI_1",vrid="51"}'
        assert f"{line} 1.0" in first
        assert f"{line} 2.0" in second

    def test_malformed_duration_buckets_are_an_error_not_a_wrong_histogram(self) -> None:
        status = status_example()
        status["checks"][0]["duration_buckets"]["counts"] = [1, 2]
        with pytest.raises(ValueError, match="malformed duration_buckets"):
            scrape(status)


class TestNamingRules:
    """Prometheus naming rules (prometheus.io/docs/practices/naming)."""

    @pytest.fixture
    def families(self) -> Families:
        return scrape(status_example())

    def test_prefix_and_characters(self, families: Families) -> None:
        for name in families:
            assert re.fullmatch(r"vrrp_[a-z0-9_]+", name), name

    def test_counters_end_in_total_and_nothing_else_does(self, families: Families) -> None:
        for family in families.values():
            for sample in family.samples:
                assert sample.name.endswith("_total") == (family.type == "counter"), sample.name

    def test_info_gauges_are_constant_1(self, families: Families) -> None:
        for name, family in families.items():
            if name.endswith("_info"):
                assert family.type == "gauge"
                assert {sample.value for sample in family.samples} <= {1.0}

    def test_times_are_in_seconds(self, families: Families) -> None:
        for name in families:
            if re.search(r"(^|_)(age|time|duration|interval)(_|$)", name):
                assert name.endswith("_seconds"), name

    def test_no_label_is_called_instance(self, families: Families) -> None:
        # Prometheus sets "instance" to the scrape target; ours would be renamed.
        for family in families.values():
            for sample in family.samples:
                assert "instance" not in sample.labels, sample.name

    def test_families_have_help(self, families: Families) -> None:
        assert all(family.documentation for family in families.values())


class TestKeepalivedNames:
    def test_off_by_default(self) -> None:
        assert not [name for name in scrape(status_example()) if name.startswith("keepalived")]

    def test_state_per_vip_with_keepalived_codes(self) -> None:
        families = scrape(status_example(), keepalived_names=True)
        states = {
            (s.labels["iname"], s.labels["intf"], s.labels["vrid"], s.labels["ip_address"]): s.value
            for s in samples(families, "keepalived_vrrp_state")
        }
        assert states == {
            ("VI_1", "eth0", "51", "10.0.0.100"): 2,  # MASTER
            ("VI_1", "eth0", "51", "10.0.0.101"): 2,
            ("VI_2", "eth1", "52", "192.168.1.10"): 1,  # BACKUP
        }
        assert value(families, "keepalived_up") == 1

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("keepalived_advertisements_received_total", 12),
            ("keepalived_advertisements_sent_total", 3590),
            ("keepalived_become_master_total", 2),
            ("keepalived_release_master_total", 1),
            ("keepalived_priority_zero_received_total", 2),
            ("keepalived_priority_zero_sent_total", 1),
            ("keepalived_packet_length_errors_total", 3),  # short_packet 1 + bad_length 2
            ("keepalived_ip_ttl_errors_total", 3),
            ("keepalived_invalid_type_received_total", 4),
            ("keepalived_advertisements_interval_errors_total", 5),
            ("keepalived_authentication_mismatch_total", 6),
            ("keepalived_authentication_invalid_total", 0),
            ("keepalived_authentication_failure_total", 0),
            ("keepalived_address_list_errors_total", 0),
        ],
    )
    def test_counters_of_vi_1(self, name: str, expected: int) -> None:
        families = scrape(status_example(), keepalived_names=True)
        assert value(families, name, iname="VI_1", intf="eth0", vrid="51") == expected

    def test_script_status_good_1_bad_0(self) -> None:
        families = scrape(status_example(), keepalived_names=True)
        assert value(families, "keepalived_script_status", name="chk_http") == 0
        assert value(families, "keepalived_script_status", name="tcp_VI_1") == 1

    def test_our_names_stay(self) -> None:
        assert "vrrp_instance_state" in scrape(status_example(), keepalived_names=True)


# -- HTTP --------------------------------------------------------------------------------


async def exchange(port: int, request: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes; return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    if half_close:
        writer.write_eof()
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    return data


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Connection"] == "close"
    return int(status_line.split(" ")[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n".encode()
    return parse_response(await exchange(port, request))


@pytest.fixture
def status() -> dict[str, Any]:
    return status_example()


@pytest_asyncio.fixture
async def server(status: dict[str, Any]) -> AsyncIterator[MetricsServer]:
    running = await start_metrics_server("127.0.0.1:0", lambda: status, keepalived_names=True)
    yield running
    running.close()
    await running.wait_closed()


class TestHttpServer:
    @pytest.mark.asyncio
    async def test_metrics(self, server: MetricsServer) -> None:
        code, headers, body = await get(server.address[1], "/metrics")
        assert code == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        names = {family.name for family in text_string_to_metric_families(body.decode())}
        assert {"vrrp_instance_state", "keepalived_vrrp_state"} <= names

    @pytest.mark.asyncio
    async def test_healthz(self, server: MetricsServer) -> None:
        assert (await get(server.address[1], "/healthz"))[::2] == (200, b"ok\n")

    @pytest.mark.asyncio
    async def test_status_is_the_same_dict(
        self, server: MetricsServer, status: dict[str, Any]
    ) -> None:
        code, headers, body = await get(server.address[1], "/status?pretty=1")
        assert (code, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(body) == status

    @pytest.mark.asyncio
    async def test_head_has_no_body(self, server: MetricsServer) -> None:
        data = await exchange(server.address[1], b"HEAD /healthz HTTP/1.1\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"Content-Length: 3" in head
        assert body == b""

    @pytest.mark.asyncio
    async def test_unknown_path_and_method(self, server: MetricsServer) -> None:
        assert (await get(server.address[1], "/"))[0] == 404
        assert (await get(server.address[1], "/metrics/x"))[0] == 404
        code, headers, _ = await get(server.address[1], "/metrics", method="POST")
        assert (code, headers["Allow"]) == (405, "GET, HEAD")

    @pytest.mark.parametrize(
        "garbage",
        [
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",  # HTTP/0.9
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"\xff\xfe\x00 / HTTP/1.1\n\n",
        ],
    )
    @pytest.mark.asyncio
    async def test_garbage_gets_400_and_the_server_lives_on(
        self, server: MetricsServer, garbage: bytes
    ) -> None:
        assert parse_response(await exchange(server.address[1], garbage))[0] == 400
        assert (await get(server.address[1], "/healthz"))[0] == 200

    @pytest.mark.asyncio
    async def test_bare_newlines_are_accepted(self, server: MetricsServer) -> None:
        data = await exchange(server.address[1], b"GET /healthz HTTP/1.0\n\n")
        assert parse_response(data)[::2] == (200, b"ok\n")

    @pytest.mark.asyncio
    async def test_oversized_head_gets_431(self, server: MetricsServer) -> None:
        request = b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n\r\n"
        assert parse_response(await exchange(server.address[1], request))[0] == 431
        many = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n"
        assert parse_response(await exchange(server.address[1], many))[0] == 431

    @pytest.mark.asyncio
    async def test_client_closing_early_gets_nothing_and_harms_nothing(
        self, server: MetricsServer
    ) -> None:
        assert await exchange(server.address[1], b"GET /metr", half_close=True) == b""
        assert await exchange(server.address[1], b"", half_close=True) == b""
        assert (await get(server.address[1], "/healthz"))[0] == 200

    @pytest.mark.asyncio
    async def test_slow_client_gets_408(
        self, server: MetricsServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(metrics, "REQUEST_TIMEOUT", 0.2)
        data = await exchange(server.address[1], b"GET /metrics HTTP/1.1\r\n")
        assert parse_response(data)[0] == 408

    @pytest.mark.asyncio
    async def test_a_failing_status_gives_500_but_healthz_still_answers(self) -> None:
        def broken() -> dict[str, Any]:
            raise RuntimeError("boom")

        running = await start_metrics_server("127.0.0.1:0", broken)
        try:
            assert (await get(running.address[1], "/metrics"))[0] == 500
            assert (await get(running.address[1], "/status"))[0] == 500
            assert (await get(running.address[1], "/healthz"))[0] == 200
        finally:
            running.close()
            await running.wait_closed()

    @pytest.mark.asyncio
    async def test_closed_server_refuses(self, status: dict[str, Any]) -> None:
        running = await start_metrics_server("127.0.0.1:0", lambda: status)
        port = running.address[1]
        running.close()
        await running.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)


class TestListenErrors:
    @pytest.mark.asyncio
    async def test_port_in_use_names_the_address(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(HostError, match=rf"metrics_listen 127\.0\.0\.1:{port}: address "):
                await start_metrics_server(f"127.0.0.1:{port}", status_example)

    @pytest.mark.skipif(
        Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() != "0",
        reason="ip_nonlocal_bind lets any address be bound",
    )
    @pytest.mark.asyncio
    async def test_address_not_on_this_host(self) -> None:
        with pytest.raises(HostError, match=r"192\.0\.2\.1:9650: not an address of this host"):
            await start_metrics_server("192.0.2.1:9650", status_example)

    @pytest.mark.parametrize("listen", ["9650", "localhost:9650", "[x]:1"])
    @pytest.mark.asyncio
    async def test_malformed_listen_string(self, listen: str) -> None:
        with pytest.raises(HostError, match="metrics_listen"):
            await start_metrics_server(listen, status_example)


def test_the_grafana_dashboard_only_queries_metrics_the_agent_exports() -> None:
    """deploy/grafana/vrrp-agent.json must not rot when a metric is renamed."""
    import json
    import re
    from pathlib import Path

    from prometheus_client import generate_latest

    from agent.host.metrics import metrics_registry
    from tests.unit.status_example import status_example

    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "vrrp-agent.json").read_text()
    )
    exported = generate_latest(metrics_registry(status_example)).decode()
    names = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if line[:1] != "#"}
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bvrrp_[a-z_]+", target["expr"])
    }
    assert queried
    assert queried <= names, queried - names
