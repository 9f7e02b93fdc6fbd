"""Fixtures of the BPF tests: the filter is compiled once per test session (about 1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.host.bpf import (
    BpfUnavailable,
    PeerEvent,
    UnavailableCause,
    VrrpFilter,
    load_filter,
)

#: Causes that mean "this machine cannot run BPF tests", not "the program is broken".
_SKIP_CAUSES = {
    UnavailableCause.BCC_MISSING,
    UnavailableCause.NO_PRIVILEGE,
    UnavailableCause.HEADERS_MISSING,
}


class EventLog:
    """Ring-buffer events of the session, drained by the tests that look at them."""

    def __init__(self, vrrp_filter: VrrpFilter) -> None:
        self._filter = vrrp_filter
        self._events: list[PeerEvent] = []
        #: Readable while events are pending (for select or ``loop.add_reader``).
        self.fd = vrrp_filter.open_events(self._events.append)

    def drain(self) -> list[PeerEvent]:
        """Every event written since the last drain, oldest first."""
        self._filter.consume_events()
        events, self._events[:] = list(self._events), []
        return events


@pytest.fixture(scope="session")
def loaded_filter() -> Iterator[tuple[VrrpFilter, EventLog]]:
    try:
        vrrp_filter = load_filter()
    except BpfUnavailable as error:
        if error.cause in _SKIP_CAUSES:
            pytest.skip(str(error))
        raise
    yield vrrp_filter, EventLog(vrrp_filter)
    vrrp_filter.close()


@pytest.fixture
def vrrp_filter(loaded_filter: tuple[VrrpFilter, EventLog]) -> VrrpFilter:
    return loaded_filter[0]


@pytest.fixture
def event_log(loaded_filter: tuple[VrrpFilter, EventLog]) -> EventLog:
    """The session's events, drained so a test sees only its own."""
    loaded_filter[1].drain()
    return loaded_filter[1]
