"""State machine scenarios (RFC 9568 §6.4) on a fake LAN and a fake clock.

Times are asserted exactly against the formulas of :mod:`agent.core.timers`: the clock
jumps from deadline to deadline, so there is no jitter to tolerate.
"""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address

import pytest

from agent.core.packet import Advertisement, ChecksumForm
from agent.core.router import GarpSettings, SendAdvertisement, State, VirtualRouter
from agent.core.timers import master_down_interval, skew_time
from tests.unit.fakelan import VIP, FakeLan, make_config

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def advert_from(source: str, priority: int, interval_cs: int = 100) -> Advertisement:
    return Advertisement(
        version=3,
        vrid=51,
        priority=priority,
        interval_cs=interval_cs,
        addresses=(VIP.ip,),
        source=IPv4Address(source),
        checksum_form=ChecksumForm.PSEUDO_HEADER,
    )


def test_timer_formulas_match_the_rfc_worked_numbers() -> None:
    # protocol.md §5: at 1 s, priority 100 -> skew 0.609 s, master-down 3.609 s.
    assert skew_time(3, 100, 100) == pytest.approx(0.609375)
    assert master_down_interval(3, 100, 100) == pytest.approx(3.609375)
    assert master_down_interval(3, 200, 10) == pytest.approx(0.321875)
    # VRRPv2 skew is in seconds whatever the interval.
    assert skew_time(2, 254, 300) == pytest.approx(2 / 256)
    assert master_down_interval(2, 1, 100) == pytest.approx(3 + 255 / 256)


def test_highest_priority_wins_the_election_at_its_master_down_time() -> None:
    lan = FakeLan()
    for address, priority in ((A, 50), (B, 150), (C, 100)):
        lan.add(make_config(address, priority))
    lan.advance(10)
    assert lan.masters() == [B]
    assert lan.holders() == [B]
    (takeover,) = [t for t in lan.transitions if t.new is State.MASTER]
    assert takeover.at == master_down_interval(3, 150, 100)
    assert "no advert within master-down interval" in takeover.reason


def test_master_advertises_exactly_every_interval() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200, interval_cs=10))
    lan.add(make_config(B, 100, interval_cs=10))
    lan.advance(2)
    sent = [d.at for d in lan.wire if d.sender == A]
    start = master_down_interval(3, 200, 10)
    assert sent[:3] == pytest.approx([start, start + 0.1, start + 0.2])
    assert all(b - a == pytest.approx(0.1) for a, b in itertools.pairwise(sent))


def test_equal_priority_is_won_by_the_higher_primary_address() -> None:
    lan = FakeLan()
    lan.silenced |= {A, B}
    lan.add(make_config(A, 100))
    lan.add(make_config(B, 100))
    lan.advance(5)
    assert sorted(lan.masters()) == [A, B]
    lan.silenced.clear()
    lan.advance(2)
    assert lan.masters() == [B]
    assert lan.holders() == [B]
    (step_down,) = [t for t in lan.transitions if t.old is State.MASTER]
    assert step_down.router == A
    assert "higher address 10.0.0.2" in step_down.reason


def test_two_masters_meeting_leaves_the_higher_priority_one() -> None:
    lan = FakeLan()
    lan.silenced |= {A, B}
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 100))
    lan.advance(5)
    lan.silenced.clear()
    lan.advance(1)
    assert lan.masters() == [A]
    assert lan.holders() == [A]


def test_master_answers_a_lower_priority_advert_at_once() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.advance(4)
    before = len(lan.wire)
    lan.inject(A, advert_from(B, 100))
    assert lan.wire[before:]
    assert lan.wire[before].at == lan.now
    assert lan.routers[A].state is State.MASTER
    # The Adver_Timer restarted from the reply.
    assert lan.routers[A].next_deadline() == pytest.approx(lan.now + 1.0)


def test_higher_priority_backup_preempts_after_master_down_interval() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 100))
    lan.advance(10)
    assert lan.masters() == [A]
    joined_at = lan.now
    lan.add(make_config(B, 200))
    at = lan.run_until_state(B, State.MASTER, limit=joined_at + 10)
    assert at == pytest.approx(joined_at + master_down_interval(3, 200, 100))
    lan.advance(1)
    assert lan.masters() == [B]
    assert lan.holders() == [B]


def test_nopreempt_backup_stays_backup_under_a_lower_priority_master() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 100))
    lan.advance(10)
    lan.add(make_config(B, 200, preempt=False))
    lan.advance(30)
    assert lan.masters() == [A]
    assert lan.routers[B].master_address == IPv4Address(A)


def test_preempt_delay_holds_back_preemption() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 100))
    lan.advance(10)
    joined_at = lan.now
    lan.add(make_config(B, 200, preempt_delay=10.0))
    at = lan.run_until_state(B, State.MASTER, limit=joined_at + 30)
    # No preemption during the delay; then at most one master-down interval more.
    assert joined_at + 10 <= at <= joined_at + 10 + master_down_interval(3, 200, 100)


def test_priority_zero_makes_the_best_backup_take_over_after_its_skew() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 100))
    lan.add(make_config(C, 50))
    lan.advance(10)
    released_at = lan.now
    lan.shutdown(A)
    assert lan.wire[-1].priority == 0
    assert lan.vips[A] == set()
    at = lan.run_until_state(B, State.MASTER, limit=released_at + 5)
    assert at == pytest.approx(released_at + skew_time(3, 100, 100))
    lan.advance(5)
    assert lan.masters() == [B]
    (takeover,) = [t for t in lan.transitions if t.router == B and t.new is State.MASTER]
    assert "released (priority 0)" in takeover.reason


def test_killed_master_is_replaced_one_master_down_interval_after_its_last_advert() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200, interval_cs=10))
    lan.add(make_config(B, 100, interval_cs=10))
    lan.advance(3)
    last_advert = max(d.at for d in lan.wire if d.sender == A)
    lan.kill(A)
    at = lan.run_until_state(B, State.MASTER, limit=10)
    assert at == pytest.approx(last_advert + master_down_interval(3, 100, 10))


def test_address_owner_takes_over_at_startup_without_waiting() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.advance(10)
    lan.add(make_config(B, 255))
    assert lan.routers[B].state is State.MASTER
    (owner_start,) = [t for t in lan.transitions if t.router == B]
    assert owner_start.reason == "startup as address owner (priority 255)"
    lan.advance(0.5)
    assert lan.masters() == [B]
    assert lan.holders() == [B]


def test_owner_preempts_even_with_preempt_off() -> None:
    lan = FakeLan()
    lan.silenced.add(B)
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 255, preempt=False))
    lan.advance(5)
    lan.silenced.clear()
    lan.advance(2)
    assert lan.masters() == [B]


def test_v3_backup_learns_the_masters_interval_and_recomputes_skew() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200, interval_cs=50))
    lan.add(make_config(B, 100, interval_cs=100))
    lan.advance(10)
    backup = lan.routers[B]
    assert backup.master_adver_interval_cs == 50
    assert backup.skew_time == pytest.approx(156 * 50 / 256 / 100)
    last_advert = max(d.at for d in lan.wire if d.sender == A)
    assert backup.next_deadline() == pytest.approx(last_advert + 1.5 + 156 * 0.5 / 256)


def test_v2_routers_elect_and_fail_over() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200, version=2))
    lan.add(make_config(B, 100, version=2))
    lan.advance(10)
    assert lan.masters() == [A]
    last_advert = max(d.at for d in lan.wire if d.sender == A)
    lan.kill(A)
    at = lan.run_until_state(B, State.MASTER, limit=20)
    assert at == pytest.approx(last_advert + 3 + 156 / 256)


def test_v2_interval_mismatch_is_not_accepted_so_both_become_master() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200, version=2, interval_cs=100))
    lan.add(make_config(B, 100, version=2, interval_cs=200))
    lan.advance(15)
    assert sorted(lan.masters()) == [A, B]
    assert lan.routers[B].stats.adverts_received == 0


def test_gratuitous_arp_bursts_after_takeover_then_refreshes() -> None:
    garp = GarpSettings(master_delay=5.0, master_repeat=3, master_refresh=60.0)
    lan = FakeLan()
    lan.add(make_config(A, 200, garp=garp))
    lan.advance(130)
    became_master = master_down_interval(3, 200, 100)
    assert [at for at, _, _ in lan.garps] == pytest.approx(
        [became_master, became_master + 5, became_master + 65, became_master + 125]
    )
    assert [count for _, _, count in lan.garps] == [3, 3, 1, 1]


def test_no_second_burst_and_no_refresh_when_disabled() -> None:
    garp = GarpSettings(master_delay=0.0, master_repeat=2, master_refresh=0.0)
    lan = FakeLan()
    lan.add(make_config(A, 200, garp=garp))
    lan.advance(60)
    assert [count for _, _, count in lan.garps] == [2]


def test_fault_releases_mastership_and_blocks_election_until_cleared() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 100))
    lan.advance(10)
    faulted_at = lan.now
    lan.set_fault(A, True, "script chk")
    assert lan.routers[A].state is State.FAULT
    assert lan.wire[-1].priority == 0
    assert lan.vips[A] == set()
    at = lan.run_until_state(B, State.MASTER, limit=faulted_at + 5)
    assert at == pytest.approx(faulted_at + skew_time(3, 100, 100))
    # A router in FAULT never takes over, even when the master dies.
    lan.kill(B)
    lan.advance(30)
    assert lan.routers[A].state is State.FAULT
    # Cleared: negotiate from BACKUP, then win by priority.
    lan.set_fault(A, False, "script chk")
    assert lan.routers[A].state is State.BACKUP
    lan.run_until_state(A, State.MASTER, limit=lan.now + 5)


def test_shutdown_of_a_backup_sends_nothing() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 100))
    lan.advance(10)
    before = len(lan.wire)
    lan.shutdown(B)
    assert len(lan.wire) == before
    assert lan.routers[B].state is State.INITIALIZE
    assert lan.routers[B].next_deadline() is None


def test_handle_timer_called_early_does_nothing() -> None:
    lan = FakeLan()
    router = lan.add(make_config(A, 100))
    deadline = router.next_deadline()
    assert deadline is not None
    router.handle_timer(deadline - 0.001)
    assert router.state is State.BACKUP
    assert router.pop_actions() == []


def test_fake_clock_refuses_to_go_backwards() -> None:
    lan = FakeLan()
    lan.advance(1)
    with pytest.raises(ValueError, match="backwards"):
        lan.run_until(0.5)


def test_master_lowering_its_priority_lets_a_higher_backup_preempt() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 150))
    lan.advance(10)
    lowered_at = lan.now
    lan.set_priority(A, 100)
    assert lan.wire[-1].priority == 100
    at = lan.run_until_state(B, State.MASTER, limit=lowered_at + 10)
    assert at <= lowered_at + master_down_interval(3, 150, 100)
    lan.advance(2)
    assert lan.masters() == [B]


def test_fault_holds_while_any_cause_remains() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.advance(5)
    lan.set_fault(A, True, "script chk")
    lan.set_fault(A, True, "link eth1")
    lan.set_fault(A, False, "script chk")
    assert lan.routers[A].state is State.FAULT
    assert lan.routers[A].fault_causes == {"link eth1"}
    lan.set_fault(A, False, "link eth1")
    assert lan.routers[A].state is State.BACKUP
    assert lan.transitions[-1].reason == "link eth1 recovered"


def test_a_router_faulted_before_start_starts_in_fault() -> None:
    lan = FakeLan()
    router = lan.add(make_config(A, 200), start=False)
    router.set_fault("link eth0", True, lan.now)
    lan.start(A)
    assert router.state is State.FAULT
    lan.advance(30)
    assert lan.masters() == []


def test_drain_hands_over_after_the_skew_and_never_takes_back_until_undrained() -> None:
    lan = FakeLan()
    lan.add(make_config(A, 200))
    lan.add(make_config(B, 100))
    lan.advance(10)
    drained_at = lan.now
    lan.set_drained(A, True)
    assert lan.wire[-1].priority == 0
    at = lan.run_until_state(B, State.MASTER, limit=drained_at + 5)
    assert at == pytest.approx(drained_at + skew_time(3, 100, 100))
    # Drained: A never preempts B, and does not take over even when B dies.
    lan.advance(10)
    lan.kill(B)
    lan.advance(20)
    assert lan.routers[A].state is State.BACKUP
    (drain,) = [t for t in lan.transitions if t.router == A and t.old is State.MASTER]
    assert drain.reason == "drained by operator"
    lan.set_drained(A, False)
    lan.run_until_state(A, State.MASTER, limit=lan.now + 5)


def test_late_timer_calls_do_not_stretch_the_advert_interval() -> None:
    """A loop that always wakes 1 ms late still advertises every 10 ms on average."""
    router = VirtualRouter(make_config(A, 255, interval_cs=1))
    router.start(0.0)
    router.pop_actions()
    sent = 0
    for _ in range(1000):
        deadline = router.next_deadline()
        assert deadline is not None
        router.handle_timer(deadline + 0.001)
        sent += sum(isinstance(a, SendAdvertisement) for a in router.pop_actions())
    assert router.next_deadline() == pytest.approx(10.01, abs=1e-6)
    assert sent == 1000
