"""The kernel program and the userspace codec agree on every packet.

Each case of the shared corpus (tests/corpus.py) and of the kernel edge cases
(tests/bpf/cases.py) runs through the loaded program with BPF_PROG_TEST_RUN and through
:func:`agent.core.packet.classify`. The kernel's verdict is its return value (the datagram
length = passed up, 0 = dropped) and its reason is the one per-CPU counter the run moved;
both must equal what ``classify()`` says. The tc observer program runs the same checks on
the same packets: it must move the same counter and always return TC_ACT_OK.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from agent.core.packet import ReceivePolicy, Rejected, RejectReason, VridPolicy, classify
from agent.host.bpf import ACCEPTED_INDEX, DEFAULT_SOURCE, VrrpFilter
from tests.bpf.cases import KERNEL_CASES
from tests.bpf.testrun import TEST_RUN_IFINDEX, run_datagram
from tests.corpus import CORPUS, OTHER_PEER, PEER, SELF, UNICAST_V3_VRID, unicast

pytestmark = pytest.mark.bpf

CASES = [pytest.param(case, id=f"corpus: {case.name}") for case in CORPUS] + [
    pytest.param(case, id=f"kernel: {case.name}") for case in KERNEL_CASES
]


def _counters(vrrp_filter: VrrpFilter) -> list[int]:
    """Every counter of the ``stats`` map, by index: the reasons, then accepted."""
    drops = vrrp_filter.drop_counts()
    return [drops[reason] for reason in RejectReason] + [vrrp_filter.accepted_count()]


def _expected_index(datagram: bytes, policy: ReceivePolicy) -> int:
    userspace = classify(datagram, policy)
    if isinstance(userspace, Rejected):
        return list(RejectReason).index(userspace.reason)
    return ACCEPTED_INDEX


def _moved(before: list[int], after: list[int]) -> dict[int, int]:
    return {
        index: after[index] - before[index]
        for index in range(len(after))
        if after[index] != before[index]
    }


@pytest.mark.parametrize("case", CASES)
def test_kernel_verdict_and_reason_equal_classify(vrrp_filter: VrrpFilter, case: object) -> None:
    datagram: bytes = case.datagram  # type: ignore[attr-defined]
    policy = case.policy  # type: ignore[attr-defined]
    userspace = classify(datagram, policy)
    expected_index = (
        list(RejectReason).index(userspace.reason)
        if isinstance(userspace, Rejected)
        else ACCEPTED_INDEX
    )
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy)

    before = _counters(vrrp_filter)
    retval, _ = run_datagram(vrrp_filter.prog_fd, datagram)
    after = _counters(vrrp_filter)

    moved = {index: after[index] - before[index] for index in range(len(after))}
    moved = {index: delta for index, delta in moved.items() if delta}
    assert moved == {expected_index: 1}, f"classify() says {userspace!r}"
    if isinstance(userspace, Rejected):
        assert retval == 0
    else:
        # Passed up whole: skb->len is the datagram, link-layer padding included.
        assert retval == len(datagram)


def test_reason_indices_in_c_follow_reject_reason_order() -> None:
    """bpf/vrrp_consts.h numbers the reasons itself; the order must be RejectReason's."""
    header = (DEFAULT_SOURCE.parent / "vrrp_consts.h").read_text()
    body = re.search(r"enum vrrp_reason \{(.*?)\};", header, re.DOTALL)
    assert body is not None
    names = re.findall(r"^\s*R_([A-Z_]+)", body.group(1), re.MULTILINE)
    assert names == [reason.name for reason in RejectReason] + ["ACCEPTED", "ABSORBED", "MAX"]


def test_event_bits_in_c_match_peer_event_kind() -> None:
    from agent.host.bpf import PeerEventKind

    header = Path(DEFAULT_SOURCE.parent / "vrrp_consts.h").read_text()
    bits = [int(value) for value in re.findall(r"#define EV_\w+ (\d+)", header)]
    assert bits == [kind.value for kind in PeerEventKind]


_TC_ACT_OK = 0
_IPPROTO_VRRP = 112


@pytest.mark.parametrize("case", CASES)
def test_tc_observer_counts_like_classify_and_never_drops(
    vrrp_filter: VrrpFilter, case: object
) -> None:
    datagram: bytes = case.datagram  # type: ignore[attr-defined]
    policy: ReceivePolicy = case.policy  # type: ignore[attr-defined]
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy)

    before = _counters(vrrp_filter)
    retval, _ = run_datagram(vrrp_filter.tc_prog_fd, datagram)
    after = _counters(vrrp_filter)

    assert retval == _TC_ACT_OK
    # tc sees every packet of the interface: it judges only IPv4 protocol 112.
    ours = len(datagram) >= 20 and datagram[9] == _IPPROTO_VRRP
    expected = {_expected_index(datagram, policy): 1} if ours else {}
    assert _moved(before, after) == expected


def test_reconfiguring_unicast_peers_replaces_the_kernels_peer_set(vrrp_filter: VrrpFilter) -> None:
    """A peer removed from the configuration is unknown to the kernel at once (no stale
    ``unicast_peers`` entry), and a VRID switched back to multicast refuses unicast."""

    def policy(peers: frozenset[IPv4Address]) -> ReceivePolicy:
        return ReceivePolicy(
            {UNICAST_V3_VRID: VridPolicy(3, 100, unicast_peers=peers)},
            own_addresses=frozenset({SELF}),
        )

    def verdict(datagram: bytes) -> dict[int, int]:
        before = _counters(vrrp_filter)
        run_datagram(vrrp_filter.prog_fd, datagram)
        return _moved(before, _counters(vrrp_filter))

    unknown_peer = list(RejectReason).index(RejectReason.UNKNOWN_PEER)
    wrong_destination = list(RejectReason).index(RejectReason.WRONG_DESTINATION)
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy(frozenset({PEER})))
    assert verdict(unicast(3)) == {ACCEPTED_INDEX: 1}
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy(frozenset({OTHER_PEER})))
    assert verdict(unicast(3)) == {unknown_peer: 1}
    assert verdict(unicast(3, source=OTHER_PEER)) == {ACCEPTED_INDEX: 1}
    vrrp_filter.configure_interface(TEST_RUN_IFINDEX, policy(frozenset()))
    assert verdict(unicast(3, source=OTHER_PEER)) == {wrong_destination: 1}
