"""Rise/fall hysteresis and keepalived's weight arithmetic."""

from __future__ import annotations

import pytest

from agent.core.tracking import Hysteresis, TrackedState, effective_priority, is_faulted


def test_fall_failures_in_a_row_take_it_down_and_rise_successes_bring_it_up() -> None:
    check = Hysteresis(rise=2, fall=3)
    assert check.up
    assert [check.record(False) for _ in range(3)] == [False, False, True]
    assert not check.up
    assert [check.record(True) for _ in range(2)] == [False, True]
    assert check.up


def test_an_interrupted_streak_starts_again() -> None:
    check = Hysteresis(rise=1, fall=2)
    check.record(False)
    check.record(True)
    assert not check.record(False)
    assert check.up
    assert check.record(False)
    assert not check.up


@pytest.mark.parametrize(
    ("base", "items", "expected"),
    [
        (100, [TrackedState(20, True)], 120),
        (100, [TrackedState(20, False)], 100),
        (100, [TrackedState(-30, False)], 70),
        (100, [TrackedState(-30, True)], 100),
        (250, [TrackedState(20, True)], 254),
        (10, [TrackedState(-50, False)], 1),
        (255, [TrackedState(-50, False)], 255),
        (100, [TrackedState(10, True), TrackedState(-5, False), TrackedState(0, True)], 105),
    ],
)
def test_weights_adjust_and_clamp_the_priority(
    base: int, items: list[TrackedState], expected: int
) -> None:
    assert effective_priority(base, items) == expected


def test_only_a_down_item_with_weight_zero_faults() -> None:
    assert is_faulted([TrackedState(0, False)])
    assert not is_faulted([TrackedState(0, True), TrackedState(-10, False)])
