"""The peer map and the ring-buffer events follow a sequence of adverts.

Scenario (RFC 9568 §6.4.2 terms): we are a Backup with priority 100 on VRID 60, preempt on.
A master at 150 appears, repeats itself, raises its priority, is replaced by a master at
200 which changes its interval, drops to 90 (below us: no Master_Down_Timer reset), then
resigns with priority 0, twice. Every step checks the peer record and the exact events.
"""

from __future__ import annotations

import asyncio
import select
import time
from ipaddress import IPv4Address

import pytest

from agent.core.packet import ReceivePolicy, RejectReason, VridPolicy
from agent.host.bpf import LocalRouter, PeerEvent, PeerEventKind, PeerRecord, VrrpFilter
from tests.bpf.cases import ip, v3
from tests.bpf.conftest import EventLog
from tests.bpf.testrun import TEST_RUN_IFINDEX, run_datagram

pytestmark = pytest.mark.bpf

FIRST = IPv4Address("192.0.2.2")
SECOND = IPv4Address("192.0.2.3")
K = PeerEventKind


def _advert(vrid: int, source: IPv4Address, priority: int, interval_cs: int = 100) -> bytes:
    return ip(v3(vrid, priority=priority, source=source, interval_cs=interval_cs), source=source)


def _send(vrrp_filter: VrrpFilter, datagram: bytes) -> tuple[int, int, int]:
    """Run one advert; returns (retval, monotonic ns before, after)."""
    before = time.monotonic_ns()
    retval, _ = run_datagram(vrrp_filter.prog_fd, datagram)
    return retval, before, time.monotonic_ns()


@pytest.fixture
def vrid_60(vrrp_filter: VrrpFilter) -> VrrpFilter:
    """VRID 60 (v3, 1 s) and 61 (preempt off) on the test-run interface, no peers yet."""
    vrrp_filter.forget_interface(TEST_RUN_IFINDEX)
    policy = ReceivePolicy({60: VridPolicy(3, 100), 61: VridPolicy(3, 100)})
    local = {60: LocalRouter(priority=100), 61: LocalRouter(priority=100, preempt=False)}
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy, local)
    return vrrp_filter


def test_advert_sequence_updates_peer_and_writes_only_changes(
    vrid_60: VrrpFilter, event_log: EventLog
) -> None:
    steps: list[tuple[bytes, K | None]] = [
        (_advert(60, FIRST, 150), K.NEW | K.ABOVE_LOCAL),
        (_advert(60, FIRST, 150), None),
        (_advert(60, FIRST, 160), K.PRIORITY_CHANGE | K.ABOVE_LOCAL),
        (_advert(60, SECOND, 200), K.NEW_MASTER | K.PRIORITY_CHANGE | K.ABOVE_LOCAL),
        (_advert(60, SECOND, 200, interval_cs=50), K.INTERVAL_CHANGE),
        (_advert(60, SECOND, 90, interval_cs=50), K.PRIORITY_CHANGE),
        (_advert(60, SECOND, 0, interval_cs=50), K.PRIORITY_CHANGE | K.PRIORITY_ZERO),
        (_advert(60, SECOND, 0, interval_cs=50), K.PRIORITY_ZERO),
    ]
    last_reset = 0
    for count, (datagram, expected_event) in enumerate(steps, start=1):
        retval, before, after = _send(vrid_60, datagram)
        assert retval == len(datagram)

        record = vrid_60.peer(TEST_RUN_IFINDEX, 60)
        assert record is not None
        assert record.count == count
        assert before <= record.last_seen_ns <= after
        # Priority 90 is below ours with preempt on: it does not reset Master_Down_Timer.
        if record.priority == 90:
            assert record.last_reset_ns == last_reset
        else:
            assert record.last_reset_ns == record.last_seen_ns
        last_reset = record.last_reset_ns

        events = event_log.drain()
        if expected_event is None:
            assert events == []
            continue
        assert len(events) == 1
        event = events[0]
        assert event.what == expected_event
        assert (event.ifindex, event.vrid, event.version) == (TEST_RUN_IFINDEX, 60, 3)
        assert (event.source, event.priority) == (record.master, record.priority)
        assert event.interval_cs == record.interval_cs
        assert event.ts_ns == record.last_seen_ns

    assert vrid_60.peer(TEST_RUN_IFINDEX, 60) == PeerRecord(
        ifindex=TEST_RUN_IFINDEX,
        vrid=60,
        master=SECOND,
        priority=0,
        version=3,
        interval_cs=50,
        last_seen_ns=last_reset,
        last_reset_ns=last_reset,
        count=len(steps),
    )


def test_event_carries_the_previous_master(vrid_60: VrrpFilter, event_log: EventLog) -> None:
    _send(vrid_60, _advert(60, FIRST, 150, interval_cs=100))
    _send(vrid_60, _advert(60, SECOND, 120, interval_cs=20))
    events = event_log.drain()
    assert [event.what for event in events] == [
        K.NEW | K.ABOVE_LOCAL,
        K.NEW_MASTER | K.PRIORITY_CHANGE | K.INTERVAL_CHANGE | K.ABOVE_LOCAL,
    ]
    assert (events[1].old_source, events[1].old_priority, events[1].old_interval_cs) == (
        FIRST,
        150,
        100,
    )


def test_lower_priority_resets_the_timer_without_preempt(vrid_60: VrrpFilter) -> None:
    retval, before, after = _send(vrid_60, _advert(61, FIRST, 50))
    assert retval > 0
    record = vrid_60.peer(TEST_RUN_IFINDEX, 61)
    assert record is not None
    assert before <= record.last_reset_ns == record.last_seen_ns <= after


def test_rejected_adverts_leave_peers_and_events_alone(
    vrid_60: VrrpFilter, event_log: EventLog
) -> None:
    _send(vrid_60, _advert(60, FIRST, 150))
    event_log.drain()
    bad_ttl = ip(v3(60, priority=200, source=SECOND), source=SECOND, ttl=64)
    unknown_vrid = _advert(62, SECOND, 200)
    for datagram in (bad_ttl, unknown_vrid):
        retval, _, _ = _send(vrid_60, datagram)
        assert retval == 0
    assert event_log.drain() == []
    assert [(p.vrid, p.master, p.priority, p.count) for p in vrid_60.peers()] == [
        (60, FIRST, 150, 1)
    ]


def test_reconfiguring_forgets_peers_of_removed_vrids(vrid_60: VrrpFilter) -> None:
    _send(vrid_60, _advert(60, FIRST, 150))
    _send(vrid_60, _advert(61, FIRST, 150))
    vrid_60.configure_interface(TEST_RUN_IFINDEX, ReceivePolicy({61: VridPolicy(3, 100)}))
    assert [record.vrid for record in vrid_60.peers()] == [61]
    unknown_before = vrid_60.drop_counts()[RejectReason.UNKNOWN_VRID]
    retval, _, _ = _send(vrid_60, _advert(60, FIRST, 150))
    assert retval == 0
    assert vrid_60.drop_counts()[RejectReason.UNKNOWN_VRID] == unknown_before + 1


def test_snapshot_holds_counters_and_peers(vrid_60: VrrpFilter) -> None:
    before = vrid_60.snapshot()
    _send(vrid_60, _advert(60, FIRST, 150))
    _send(vrid_60, ip(v3(60, source=FIRST), source=FIRST, ttl=1))
    after = vrid_60.snapshot()
    assert after.accepted == before.accepted + 1
    changed = {
        reason: after.drops[reason] - before.drops[reason]
        for reason in after.drops
        if after.drops[reason] != before.drops[reason]
    }
    assert changed == {RejectReason.BAD_TTL: 1}
    assert [(p.vrid, p.master) for p in after.peers] == [(60, FIRST)]


@pytest.mark.asyncio
async def test_events_wake_an_asyncio_reader_on_the_ring_buffer_fd(
    vrid_60: VrrpFilter, event_log: EventLog
) -> None:
    """The daemon's intended use: the ring-buffer fd on the loop, no thread, no blocking."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[list[PeerEvent]] = asyncio.Queue()
    assert not select.select([event_log.fd], [], [], 0)[0]
    loop.add_reader(event_log.fd, lambda: arrived.put_nowait(event_log.drain()))
    try:
        _send(vrid_60, _advert(60, FIRST, 150))
        events = await asyncio.wait_for(arrived.get(), timeout=1)
    finally:
        loop.remove_reader(event_log.fd)
    assert [(event.what, event.source) for event in events] == [(K.NEW | K.ABOVE_LOCAL, FIRST)]
    assert not select.select([event_log.fd], [], [], 0)[0]
