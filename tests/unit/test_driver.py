"""The asyncio driver: real VirtualRouters on a real event loop, fake kernel at the edges.

The socket is one end of an AF_UNIX datagram socketpair (a real fd, so ``add_reader`` and
non-blocking reads behave as with the raw socket); netlink and the GARP sender are
recorders. Intervals are tens of milliseconds so the suite stays quick.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface

import pytest

from agent.core.packet import (
    Advertisement,
    ChecksumForm,
    ReceivePolicy,
    Rejected,
    RejectReason,
    classify,
    encode_advertisement,
    encode_ipv4_datagram,
)
from agent.core.router import GarpSettings, RouterConfig, State, VirtualRouter
from agent.host import driver as driver_module
from agent.host.driver import RECEIVE_BATCH, InterfaceReceiver, RouterDriver
from agent.host.errors import HostError

OURS = IPv4Address("192.0.2.1")
PEER = IPv4Address("192.0.2.2")
VIP = IPv4Interface("192.0.2.100/24")
VRID = 51


def router(priority: int = 100, interval_cs: int = 10) -> VirtualRouter:
    return VirtualRouter(
        RouterConfig(
            name="VI_1",
            vrid=VRID,
            priority=priority,
            version=3,
            advert_interval_cs=interval_cs,
            vips=(VIP,),
            primary_address=OURS,
            garp=GarpSettings(master_delay=0.0, master_repeat=2),
        )
    )


def advert(
    priority: int,
    *,
    source: IPv4Address = PEER,
    vrid: int = VRID,
    ttl: int = 255,
    cut: int = 0,
) -> bytes:
    """A full IPv4 datagram carrying a VRRPv3 advert; ``cut`` drops trailing VRRP bytes."""
    message = encode_advertisement(
        version=3,
        vrid=vrid,
        priority=priority,
        interval_cs=10,
        addresses=(VIP.ip,),
        source=source,
        checksum_form=ChecksumForm.PSEUDO_HEADER,
    )
    return encode_ipv4_datagram(message[: len(message) - cut], source=source, ttl=ttl)


class Kernel:
    """Records, in one list, every VIP change and GARP burst the driver asks for."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.log: list[tuple[str, object]] = []
        self.adverts: list[bytes] = []
        #: The IP destination of each advert, in the order of :attr:`adverts`.
        self.advert_destinations: list[IPv4Address] = []
        self.fail_next_add = False

    async def add_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        await asyncio.sleep(self.delay)
        if self.fail_next_add:
            self.fail_next_add = False
            raise HostError(f"{ifname}: cannot add VIP {vip}: EPERM")
        self.log.append(("add", vip))

    async def remove_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        await asyncio.sleep(self.delay)
        self.log.append(("remove", vip))

    def send_garp(self, vips: Sequence[IPv4Interface], count: int) -> None:
        self.log.append(("garp", (tuple(vips), count)))

    def send_advert(self, message: bytes, destination: IPv4Address) -> None:
        self.adverts.append(message)
        self.advert_destinations.append(destination)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def make_driver(vr: VirtualRouter, kernel: Kernel) -> RouterDriver:
    return RouterDriver(
        vr,
        loop=asyncio.get_running_loop(),
        ifname="eth0",
        ifindex=2,
        send_advert=kernel.send_advert,
        send_garp=kernel.send_garp,
        vips=kernel,
    )


def make_receiver(sock: socket.socket, driver: RouterDriver) -> InterfaceReceiver:
    return InterfaceReceiver(
        loop=asyncio.get_running_loop(),
        ifname="eth0",
        sock=sock,
        drivers=[driver],
        own_addresses=[OURS],
    )


async def wait_until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(2.0):
        # Polling: the state lives in the code under test, which has no event to offer.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@pytest.mark.asyncio
async def test_malformed_datagrams_are_counted_by_reason_and_never_reach_the_router(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    vr = router()
    drv = make_driver(vr, Kernel())
    receiver = make_receiver(ours, drv)
    for datagram in (
        b"\x45\x00",  # truncated IP header
        advert(200, ttl=64),  # crossed a router
        advert(200, vrid=99),  # another group on the LAN
        advert(200, source=OURS),  # our own advert
        advert(200, cut=4),  # address count says 1, no address follows
    ):
        theirs.send(datagram)
    receiver.start()
    await wait_until(lambda: sum(receiver.rejects.totals.values()) == 5)
    receiver.stop()
    assert receiver.rejects.totals == {
        "bad_ip_header": 1,
        "bad_ttl": 1,
        "unknown_vrid": 1,
        "own_advert": 1,
        "bad_length": 1,
    }
    assert receiver.accepted == 0
    assert vr.stats.adverts_received == 0


@pytest.mark.asyncio
async def test_an_accepted_advert_reaches_the_router_of_its_vrid(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    vr = router(priority=100)
    drv = make_driver(vr, Kernel())
    receiver = make_receiver(ours, drv)
    drv.start()
    receiver.start()
    theirs.send(advert(200))
    await wait_until(lambda: receiver.accepted == 1)
    assert vr.stats.adverts_received == 1
    assert vr.master_address == PEER
    receiver.stop()
    await drv.shutdown()


@pytest.mark.asyncio
async def test_one_wakeup_reads_a_bounded_batch_so_a_flood_cannot_starve_timers(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    receiver = make_receiver(ours, make_driver(router(), Kernel()))
    for _ in range(RECEIVE_BATCH + 10):
        theirs.send(b"junk")
    assert receiver.read_batch() == RECEIVE_BATCH
    assert receiver.read_batch() == 10
    assert receiver.read_batch() == 0
    assert receiver.rejects.totals["bad_ip_header"] == RECEIVE_BATCH + 10
    receiver.stop()


@pytest.mark.asyncio
async def test_the_timer_is_rearmed_to_next_deadline_after_every_input() -> None:
    vr = router(priority=100)
    drv = make_driver(vr, Kernel())
    drv.start()
    assert vr.state is State.BACKUP
    first = drv.timer_deadline
    assert first is not None
    assert first == vr.next_deadline()
    await asyncio.sleep(0.05)
    # An advert from a better master pushes Master_Down_Timer out.
    accepted = classify(advert(200), ReceivePolicy({VRID: vr.receive_policy()}))
    assert isinstance(accepted, Advertisement)
    drv.receive_advertisement(accepted)
    assert drv.timer_deadline == vr.next_deadline()
    assert drv.timer_deadline is not None
    assert drv.timer_deadline > first
    # Silence: the timer fires, the router takes over, the timer follows Adver_Timer.
    await wait_until(lambda: vr.state is State.MASTER)
    assert drv.timer_deadline == vr.next_deadline()
    await drv.shutdown()
    assert drv.timer_deadline is None


@pytest.mark.asyncio
async def test_an_early_wakeup_is_treated_as_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    vr = router(priority=100)
    drv = make_driver(vr, Kernel())
    drv.start()
    deadline = drv.timer_deadline
    assert deadline is not None
    seen: list[float] = []
    monkeypatch.setattr(vr, "handle_timer", seen.append)
    # The loop's clock granularity can wake the callback a hair before the deadline.
    monkeypatch.setattr(asyncio.get_running_loop(), "time", lambda: deadline - 0.001)
    drv._on_timer()
    assert seen == [deadline]
    monkeypatch.undo()
    await drv.shutdown()


@pytest.mark.asyncio
async def test_takeover_actions_run_in_order_and_adverts_do_not_wait_for_netlink() -> None:
    kernel = Kernel(delay=0.05)
    vr = router(priority=255)  # owner: master at once
    drv = make_driver(vr, kernel)
    drv.start()
    # The advert left synchronously, before netlink answered.
    assert len(kernel.adverts) == 1
    assert kernel.log == []
    await drv.drain()
    assert kernel.log == [("add", VIP), ("garp", ((VIP,), 2))]
    await drv.shutdown()
    assert kernel.log[-1] == ("remove", VIP)
    # Shutdown of a master: a priority-0 advert (RFC 9568 §6.4.3).
    assert kernel.adverts[-1][2] == 0


@pytest.mark.asyncio
async def test_unicast_adverts_go_to_each_peer_checksummed_for_that_peer() -> None:
    """draft-abinabraham-vrrp-unicast: one copy per peer; the VRRPv3 pseudo-header holds
    the real destination (protocol.md §4), so each copy verifies only at its own peer."""
    peers = (PEER, IPv4Address("192.0.2.3"))
    vr = VirtualRouter(replace(router(priority=255).config, unicast_peers=peers))
    kernel = Kernel()
    drv = make_driver(vr, kernel)
    drv.start()
    await drv.shutdown()

    assert kernel.advert_destinations == [*peers, *peers]  # takeover, then priority 0
    for message, destination in zip(kernel.adverts, kernel.advert_destinations, strict=True):
        for receiver in peers:
            policy = ReceivePolicy(
                {VRID: replace(vr.receive_policy(), unicast_peers=frozenset({OURS}))},
                own_addresses=frozenset({receiver}),
            )
            verdict = classify(
                encode_ipv4_datagram(message, source=OURS, destination=receiver), policy
            )
            if receiver == destination:
                assert isinstance(verdict, Advertisement), verdict
                assert verdict.checksum_form is ChecksumForm.PSEUDO_HEADER
            else:
                assert verdict == Rejected(RejectReason.BAD_CHECKSUM, VRID, OURS)
    assert [message[2] for message in kernel.adverts] == [255, 255, 0, 0]


@pytest.mark.asyncio
async def test_state_changes_are_logged_in_the_contract_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drv = make_driver(router(priority=255), Kernel())
    with caplog.at_level(logging.INFO, logger="agent"):
        drv.start()
        await drv.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name == "agent"]
    assert "VI_1: INITIALIZE -> MASTER (startup as address owner (priority 255))" in lines
    assert "VI_1: MASTER -> INITIALIZE (shutdown)" in lines


@pytest.mark.asyncio
async def test_a_failed_vip_change_is_logged_and_later_steps_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kernel = Kernel()
    kernel.fail_next_add = True
    drv = make_driver(router(priority=255), kernel)
    with caplog.at_level(logging.ERROR, logger="agent"):
        drv.start()
        await drv.shutdown()
    assert "VI_1: eth0: cannot add VIP 192.0.2.100/24: EPERM" in caplog.messages
    assert kernel.log == [("garp", ((VIP,), 2)), ("remove", VIP)]


@pytest.mark.asyncio
async def test_a_full_send_buffer_is_counted_not_raised() -> None:
    def full(message: bytes, destination: IPv4Address) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    drv = RouterDriver(
        router(priority=255),
        loop=asyncio.get_running_loop(),
        ifname="eth0",
        ifindex=2,
        send_advert=full,
        send_garp=Kernel().send_garp,
        vips=Kernel(),
    )
    drv.start()
    await drv.shutdown()
    assert drv.send_failures.totals == {"Resource temporarily unavailable": 2}


@pytest.mark.asyncio
async def test_rejects_are_logged_at_most_once_per_interval_with_the_count_since(
    pair: tuple[socket.socket, socket.socket],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver_module, "LOG_INTERVAL", 0.2)
    ours, theirs = pair
    receiver = make_receiver(ours, make_driver(router(), Kernel()))
    with caplog.at_level(logging.WARNING, logger="agent"):
        for _ in range(5):
            theirs.send(advert(200, ttl=1))
        receiver.read_batch()
        assert caplog.messages == ["eth0: dropped 1 datagram(s) since the last report: bad_ttl"]
        await asyncio.sleep(0.3)
        assert caplog.messages[1:] == ["eth0: dropped 4 datagram(s) since the last report: bad_ttl"]
        for _ in range(3):
            theirs.send(b"junk")
        receiver.read_batch()
        assert caplog.messages[2:] == [
            "eth0: dropped 1 datagram(s) since the last report: bad_ip_header"
        ]
        # Stopping reports what is pending instead of losing it.
        receiver.stop()
        assert caplog.messages[3:] == [
            "eth0: dropped 2 datagram(s) since the last report: bad_ip_header"
        ]
    assert receiver.rejects.totals == {"bad_ttl": 5, "bad_ip_header": 3}


class FakePeerRecord:
    """What the eBPF peer map would hold: the master heard at ``last_reset``."""

    def __init__(self, priority: int, last_reset: float | None) -> None:
        self.master = PEER
        self.priority = priority
        self.interval_cs = 10
        self.last_reset = last_reset


@pytest.mark.asyncio
async def test_kernel_only_backup_replays_the_kernels_last_advert_instead_of_taking_over() -> None:
    """No advert reaches userspace, yet the peer map shows a live master: stay backup."""
    loop = asyncio.get_running_loop()
    kernel = Kernel()
    vr = router(priority=100, interval_cs=10)
    record = FakePeerRecord(priority=200, last_reset=None)
    driver = RouterDriver(
        vr,
        loop=loop,
        ifname="eth0",
        ifindex=2,
        send_advert=kernel.send_advert,
        send_garp=kernel.send_garp,
        vips=kernel,
        kernel_peer=lambda: record if record.last_reset is not None else None,
    )
    took_over = asyncio.Event()
    driver.observers.append(
        lambda d, change: took_over.set() if change.new is State.MASTER else None
    )
    driver.start()
    for _ in range(10):  # a live master, as the kernel sees it, for about 1.2 s
        record.last_reset = loop.time()
        await asyncio.sleep(0.12)
    assert vr.state is State.BACKUP
    assert vr.master_address == PEER
    # The master goes silent: the backup takes over one master-down interval after the
    # kernel's last timer-resetting advert.
    silent_since = record.last_reset
    deadline = silent_since + vr.master_down_interval
    await asyncio.wait_for(took_over.wait(), timeout=2)
    assert loop.time() >= deadline
    assert loop.time() < deadline + 0.1
    await driver.shutdown()


@pytest.mark.asyncio
async def test_observers_see_each_state_change_after_its_actions() -> None:
    kernel = Kernel()
    vr = router(priority=255)
    driver = make_driver(vr, kernel)
    seen: list[tuple[str, str]] = []
    driver.observers.append(lambda d, change: seen.append((change.old, change.new)))
    driver.start()
    await driver.shutdown()
    assert seen == [("INITIALIZE", "MASTER"), ("MASTER", "INITIALIZE")]
