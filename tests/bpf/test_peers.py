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
from agent.host.errors import HostError
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


@pytest.fixture
def kernel_only(vrrp_filter: VrrpFilter) -> VrrpFilter:
    """VRID 70 (v3, 1 s) in kernel-only mode, we are a Backup with priority 100."""
    vrrp_filter.forget_interface(TEST_RUN_IFINDEX)
    vrrp_filter.configure_interface(
        TEST_RUN_IFINDEX,
        ReceivePolicy({70: VridPolicy(3, 100)}),
        {70: LocalRouter(priority=100, kernel_only=True)},
    )
    return vrrp_filter


def _totals(vrrp_filter: VrrpFilter) -> tuple[int, int]:
    return vrrp_filter.accepted_count(), vrrp_filter.absorbed_count()


def test_kernel_only_keeps_steady_adverts_in_the_kernel_but_records_them(
    kernel_only: VrrpFilter, event_log: EventLog
) -> None:
    advert = _advert(70, FIRST, 150)
    retval, _, _ = _send(kernel_only, advert)
    assert retval == len(advert), "the first advert is news: passed up"
    assert [event.what for event in event_log.drain()] == [K.NEW | K.ABOVE_LOCAL]

    accepted, absorbed = _totals(kernel_only)
    retval, before, after = _send(kernel_only, advert)
    assert retval == 0, "a steady-state advert must not reach the socket"
    assert _totals(kernel_only) == (accepted + 1, absorbed + 1)
    assert event_log.drain() == []
    record = kernel_only.peer(TEST_RUN_IFINDEX, 70)
    assert record is not None
    assert (record.master, record.priority, record.count) == (FIRST, 150, 2)
    assert before <= record.last_reset_ns <= after
    # The timestamps are on the loop.time() clock (CLOCK_MONOTONIC, in seconds).
    assert record.last_reset == record.last_reset_ns / 1e9
    assert time.monotonic() - 1 < record.last_reset <= time.monotonic()
    # RFC 9568 §6.1 with our priority 100: 3 x 1 s + (256 - 100) / 256 x 1 s.
    assert record.master_down_deadline(100) == pytest.approx(record.last_reset + 3 + 156 / 256)

    changed = _advert(70, FIRST, 160)
    retval, _, _ = _send(kernel_only, changed)
    assert retval == len(changed), "a change reaches the socket and the ring buffer"
    assert [event.what for event in event_log.drain()] == [K.PRIORITY_CHANGE | K.ABOVE_LOCAL]
    assert _totals(kernel_only) == (accepted + 2, absorbed + 1)


def test_kernel_only_master_still_sees_adverts_that_may_preempt_it(
    kernel_only: VrrpFilter, event_log: EventLog
) -> None:
    higher, lower = _advert(70, FIRST, 150), _advert(70, SECOND, 90)
    _send(kernel_only, higher)  # recorded while we were Backup
    kernel_only.set_master(TEST_RUN_IFINDEX, 70, master=True)
    # The same master comes back while we are Master: nothing changed in the record, but
    # RFC 9568 §6.4.3 makes us step down, so it must be passed up.
    retval, _, _ = _send(kernel_only, higher)
    assert retval == len(higher)
    # A lower-priority router is news once, then ignorable (§6.4.3: discard).
    assert _send(kernel_only, lower)[0] == len(lower)
    _, absorbed = _totals(kernel_only)
    assert _send(kernel_only, lower)[0] == 0
    assert kernel_only.absorbed_count() == absorbed + 1
    # Back to Backup: the steady state is absorbed again.
    kernel_only.set_master(TEST_RUN_IFINDEX, 70, master=False)
    assert _send(kernel_only, lower)[0] == 0
    event_log.drain()


def test_kernel_only_still_drops_and_counts_invalid_adverts(kernel_only: VrrpFilter) -> None:
    before = kernel_only.drop_counts()[RejectReason.BAD_TTL]
    retval, _, _ = _send(kernel_only, ip(v3(70, source=FIRST), source=FIRST, ttl=64))
    assert retval == 0
    assert kernel_only.drop_counts()[RejectReason.BAD_TTL] == before + 1
    assert kernel_only.peer(TEST_RUN_IFINDEX, 70) is None


def test_set_master_on_an_unconfigured_vrid_is_a_clear_error(kernel_only: VrrpFilter) -> None:
    with pytest.raises(HostError, match="VRID 9 is not configured on ifindex 1"):
        kernel_only.set_master(TEST_RUN_IFINDEX, 9, master=True)
