"""Sync groups on the fake LAN: members move together (keepalived vrrp_sync_group)."""

from __future__ import annotations

from agent.core.router import State
from agent.core.syncgroup import GroupStateChanged
from tests.unit.fakelan import FakeLan, make_config

A, B = "10.0.0.1", "10.0.0.2"


def two_nodes_with_two_groups() -> FakeLan:
    """Nodes A (priority 200) and B (100), each running VRID 51 and 52 in one group."""
    lan = FakeLan()
    for address, priority in ((A, 200), (B, 100)):
        for vrid in (51, 52):
            lan.add(make_config(address, priority, vrid=vrid), key=f"{address}/{vrid}")
        lan.add_group(f"G{address}", [f"{address}/51", f"{address}/52"])
    lan.advance(10)
    return lan


def states(lan: FakeLan, address: str) -> tuple[State, State]:
    return (lan.routers[f"{address}/51"].state, lan.routers[f"{address}/52"].state)


def test_the_group_elects_together() -> None:
    lan = two_nodes_with_two_groups()
    assert states(lan, A) == (State.MASTER, State.MASTER)
    assert states(lan, B) == (State.BACKUP, State.BACKUP)
    assert lan.groups[0].state is State.MASTER


def test_one_member_faulting_takes_the_whole_group_away_and_back() -> None:
    lan = two_nodes_with_two_groups()
    lan.set_fault(f"{A}/51", True, "script chk")
    assert states(lan, A) == (State.FAULT, State.FAULT)
    assert lan.routers[f"{A}/52"].fault_causes == {f"sync group G{A}"}
    lan.advance(2)
    assert states(lan, B) == (State.MASTER, State.MASTER)
    assert GroupStateChanged(f"G{A}", State.MASTER, State.FAULT) in lan.group_changes
    lan.set_fault(f"{A}/51", False, "script chk")
    assert states(lan, A) in {(State.BACKUP, State.BACKUP), (State.MASTER, State.MASTER)}
    lan.advance(10)
    assert states(lan, A) == (State.MASTER, State.MASTER)
    assert states(lan, B) == (State.BACKUP, State.BACKUP)


def test_one_member_losing_mastership_takes_the_other_to_backup() -> None:
    lan = two_nodes_with_two_groups()
    # B's VRID 51 alone outranks A: the group must not split across the nodes.
    lan.set_priority(f"{B}/51", 250)
    lan.advance(10)
    assert states(lan, B) == (State.MASTER, State.MASTER)
    assert states(lan, A) == (State.BACKUP, State.BACKUP)
    followed = [t for t in lan.transitions if t.reason.startswith("sync group")]
    assert followed
