"""The VRRP state machine of one virtual router (RFC 9568 §6.4, RFC 3768 §6.4).

Theory of operation
-------------------
A :class:`VirtualRouter` is a pure object: it never reads a clock and never does I/O.
The host feeds it four kinds of input, each carrying ``now`` (monotonic seconds):

* :meth:`VirtualRouter.start` and :meth:`VirtualRouter.shutdown` (RFC "Startup" and
  "Shutdown" events);
* :meth:`VirtualRouter.receive`, the single place where an accepted advertisement enters
  the protocol, whether it came from the userspace codec or the eBPF program;
* :meth:`VirtualRouter.handle_timer`, called at (or after) :meth:`next_deadline`;
* :meth:`VirtualRouter.set_fault`, our addition for health tracking.

After each input the host drains :meth:`pop_actions` and executes the actions in order,
then re-arms a single timer from :meth:`next_deadline`. Critical work (adverts, VIPs,
gratuitous ARP) is an action emitted on state entry; logging, metrics and notify scripts
observe the :class:`StateChanged` actions and never influence the protocol.

There are two timers, as in the RFC: in MASTER the Adver_Timer, in BACKUP the
Master_Down_Timer; they are one deadline here because a router is never in both states.
A second deadline drives the gratuitous ARP bursts that follow a takeover (keepalived's
``garp_master_delay`` and ``garp_master_refresh``).

States: INITIALIZE, BACKUP and MASTER are RFC 9568's Initialize, Backup and Active.
FAULT is keepalived's addition: the router takes no part in elections until its health
returns, so that a node with a failed check can never win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface
from typing import Final

from agent.core.constants import PRIORITY_OWNER, PRIORITY_RELEASE, VRRP_GROUP_V4
from agent.core.packet import (
    Advertisement,
    AuthType,
    ChecksumForm,
    VridPolicy,
    encode_advertisement,
)
from agent.core.timers import master_down_interval, skew_time


class State(StrEnum):
    """Router states; the values are what logs, metrics and notify scripts show."""

    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


#: Every legal transition. :meth:`VirtualRouter._enter` refuses anything else, so a bug in
#: the handlers shows up as an exception in the unit tests rather than as a silent flap.
TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.INITIALIZE: frozenset({State.BACKUP, State.MASTER, State.FAULT}),
    State.BACKUP: frozenset({State.MASTER, State.INITIALIZE, State.FAULT}),
    State.MASTER: frozenset({State.BACKUP, State.INITIALIZE, State.FAULT}),
    State.FAULT: frozenset({State.BACKUP, State.INITIALIZE}),
}


@dataclass(frozen=True, slots=True)
class GarpSettings:
    """Gratuitous ARP after a takeover; defaults are keepalived's (keepalived.conf(5))."""

    #: Seconds from becoming master to the second burst (0 = no second burst).
    master_delay: float = 5.0
    #: Gratuitous ARPs per VIP in each burst.
    master_repeat: int = 5
    #: Seconds between refresh bursts while master (0 = no refresh).
    master_refresh: float = 0.0
    #: Gratuitous ARPs per VIP in each refresh burst.
    master_refresh_repeat: int = 1


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """What one virtual router is configured to be; never changes while it runs."""

    name: str
    vrid: int
    #: 1..254, or 255 for the address owner (RFC 9568 §5.2.4).
    priority: int
    #: 2 (RFC 3768) or 3 (RFC 9568).
    version: int
    #: Our Advertisement_Interval in centiseconds (VRRPv2: a multiple of 100).
    advert_interval_cs: int
    vips: tuple[IPv4Interface, ...]
    #: Our primary address on the interface: the advert source and the tie-breaker.
    primary_address: IPv4Address
    #: RFC 9568 Preempt_Mode: take over from a lower-priority master.
    preempt: bool = True
    #: Seconds to hold back preemption after start-up or after a lower-priority master
    #: appears (keepalived's ``preempt_delay``), so a flapping node does not flap the VIP.
    preempt_delay: float = 0.0
    checksum_form: ChecksumForm = ChecksumForm.PSEUDO_HEADER
    auth_type: AuthType = AuthType.NONE
    auth_password: bytes = b""
    garp: GarpSettings = field(default_factory=GarpSettings)
    #: Unicast mode (draft-abinabraham-vrrp-unicast, keepalived ``unicast_peer``): every
    #: advert goes to each of these addresses instead of 224.0.0.18, and only their adverts
    #: are accepted. Empty: multicast mode.
    unicast_peers: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True, slots=True)
class SendAdvertisement:
    """Send one advert with this priority (0 = we are releasing the master role).

    To 224.0.0.18, or in unicast mode one copy to each peer (:attr:`VirtualRouter.
    advert_destinations`), each encoded for its destination.
    """

    priority: int


@dataclass(frozen=True, slots=True)
class AddVips:
    """Configure the virtual addresses on the interface."""

    vips: tuple[IPv4Interface, ...]


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove the virtual addresses from the interface."""

    vips: tuple[IPv4Interface, ...]


@dataclass(frozen=True, slots=True)
class SendGratuitousArp:
    """Send ``count`` gratuitous ARPs for each VIP (RFC 9568 §6.4.2, errata 7947/7949)."""

    vips: tuple[IPv4Interface, ...]
    count: int


class Cause(StrEnum):
    """Why a router changed state, in few enough values to be a metric label."""

    STARTUP = "startup"
    #: Priority 255 takes over at startup (RFC 9568 §6.4.1).
    OWNER = "owner"
    #: Master_Down_Timer expired (RFC 9568 §6.4.2).
    MASTER_DOWN = "master_down"
    #: The master sent priority 0 and we waited only Skew_Time.
    MASTER_RELEASED = "master_released"
    #: A higher-priority advert reached a master (RFC 9568 §6.4.3).
    HIGHER_PRIORITY = "higher_priority"
    #: Equal priority from a higher primary address reached a master.
    HIGHER_ADDRESS = "higher_address"
    SHUTDOWN = "shutdown"
    FAULT = "fault"
    RECOVERED = "recovered"
    SYNC_GROUP = "sync_group"
    #: An operator asked to drain the instance.
    DRAIN = "drain"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """For observers (logs, metrics, notify scripts): the router changed state."""

    old: State
    new: State
    #: Human-readable, with addresses and intervals: for logs.
    reason: str
    #: The same reason as a small enum: for metric labels.
    cause: Cause


Action = SendAdvertisement | AddVips | RemoveVips | SendGratuitousArp | StateChanged


@dataclass(slots=True)
class RouterStats:
    """Plain counters, exported as metrics by the host."""

    adverts_sent: int = 0
    adverts_received: int = 0
    priority_zero_sent: int = 0
    priority_zero_received: int = 0
    garps_sent: int = 0
    transitions: int = 0


class VirtualRouter:
    """One VRRP virtual router on one interface. See the module docstring."""

    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        self.state = State.INITIALIZE
        self.stats = RouterStats()
        #: The priority we advertise and elect with: the configured one adjusted by
        #: tracking weights (see :mod:`agent.core.tracking`). keepalived, too, uses the
        #: effective priority for Skew_Time.
        self.priority = config.priority
        #: Set by an operator for maintenance (:meth:`set_drained`).
        self.drained = False
        #: Who we believe is master, its priority and when we last heard it.
        self.master_address: IPv4Address | None = None
        self.master_priority: int | None = None
        self.last_advert_at: float | None = None
        #: RFC 9568 Master_Adver_Interval: the interval a VRRPv3 backup learns from the master.
        self.master_adver_interval_cs = config.advert_interval_cs
        self._actions: list[Action] = []
        self._fault_causes: set[str] = set()
        self._protocol_deadline: float | None = None
        self._garp_deadline: float | None = None
        self._garp_second_burst_pending = False
        self._started_at = 0.0
        #: When we first heard the current lower-priority master (for preempt_delay).
        self._lower_master_since: float | None = None
        #: Set when a priority-0 advert cut the master-down timer short, to explain the takeover.
        self._release_from: IPv4Address | None = None

    # -- derived quantities ------------------------------------------------------------

    @property
    def skew_time(self) -> float:
        """Skew_Time in seconds from our priority and the master's interval."""
        return skew_time(self.config.version, self.priority, self.master_adver_interval_cs)

    @property
    def master_down_interval(self) -> float:
        """Master_Down_Interval in seconds from our priority and the master's interval."""
        return master_down_interval(
            self.config.version, self.priority, self.master_adver_interval_cs
        )

    @property
    def advert_interval(self) -> float:
        """Our Advertisement_Interval in seconds."""
        return self.config.advert_interval_cs / 100

    def receive_policy(self) -> VridPolicy:
        """What the receive filter must enforce for this VRID (codec and eBPF alike)."""
        return VridPolicy(
            version=self.config.version,
            advert_interval_cs=self.config.advert_interval_cs,
            auth_type=self.config.auth_type,
            auth_password=self.config.auth_password,
            unicast_peers=frozenset(self.config.unicast_peers),
        )

    @property
    def advert_destinations(self) -> tuple[IPv4Address, ...]:
        """Where each advert goes: 224.0.0.18, or every unicast peer (the draft sends the
        same packet content to each peer; only the checksum follows the destination)."""
        return self.config.unicast_peers or (VRRP_GROUP_V4,)

    def encode_advertisement(
        self, priority: int, destination: IPv4Address = VRRP_GROUP_V4
    ) -> bytes:
        """The VRRP message for a :class:`SendAdvertisement` action, sent to ``destination``.

        The VRRPv3 pseudo-header checksum covers the real IP destination, so a unicast
        advert is encoded once per peer (protocol.md §4; keepalived > 1.3.6 does the same).
        """
        return encode_advertisement(
            version=self.config.version,
            vrid=self.config.vrid,
            priority=priority,
            interval_cs=self.config.advert_interval_cs,
            addresses=tuple(vip.ip for vip in self.config.vips),
            source=self.config.primary_address,
            destination=destination,
            checksum_form=self.config.checksum_form,
            auth_type=self.config.auth_type,
            auth_password=self.config.auth_password,
        )

    # -- outputs -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`handle_timer` has work, or None."""
        deadlines = [d for d in (self._protocol_deadline, self._garp_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def pop_actions(self) -> list[Action]:
        """Return the queued actions in the order they must be executed, and clear them."""
        actions, self._actions = self._actions, []
        return actions

    # -- inputs --------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """RFC 9568 §6.4.1 Startup: the owner takes over at once, everyone else listens."""
        if self.state is not State.INITIALIZE:
            return
        self._started_at = now
        if self._fault_causes:
            self._enter(State.FAULT, Cause.FAULT, ", ".join(sorted(self._fault_causes)))
        elif self.priority == PRIORITY_OWNER:
            self._become_master(now, Cause.OWNER, "startup as address owner (priority 255)")
        else:
            self.master_adver_interval_cs = self.config.advert_interval_cs
            self._become_backup(now, Cause.STARTUP, "startup")

    def shutdown(self, now: float) -> None:
        """RFC 9568 §6.4.2/§6.4.3 Shutdown: a master hands over with a priority-0 advert."""
        if self.state is State.INITIALIZE:
            return
        self._enter(State.INITIALIZE, Cause.SHUTDOWN, "shutdown")

    def set_fault(self, cause: str, faulted: bool, now: float) -> None:
        """Raise or clear one cause of FAULT (keepalived's state for a failed check or link).

        ``cause`` names what failed ("script chk_web", "link eth0", "sync group G1"); the
        router stays in FAULT while any cause is raised. Entering FAULT releases
        mastership the way a shutdown does, so backups take over after only their skew.
        Clearing the last cause negotiates from BACKUP, like a fresh start.
        """
        if faulted:
            self._fault_causes.add(cause)
            if self.state in (State.BACKUP, State.MASTER):
                self._enter(State.FAULT, Cause.FAULT, cause)
            return
        self._fault_causes.discard(cause)
        if self.state is State.FAULT and not self._fault_causes:
            self.master_adver_interval_cs = self.config.advert_interval_cs
            self._become_backup(now, Cause.RECOVERED, f"{cause} recovered")

    @property
    def fault_causes(self) -> frozenset[str]:
        """What currently holds the router in FAULT (empty when nothing does)."""
        return frozenset(self._fault_causes)

    def force_state(self, state: State, reason: str, now: float) -> None:
        """Follow a sync-group peer into MASTER or BACKUP (keepalived sync groups).

        Only a running, unfaulted router follows; INITIALIZE and FAULT are left alone
        (FAULT is propagated through :meth:`set_fault`).
        """
        if state is self.state or self.state not in (State.BACKUP, State.MASTER):
            return
        if state is State.MASTER:
            self._become_master(now, Cause.SYNC_GROUP, reason)
        elif state is State.BACKUP:
            # Leaving MASTER without a higher-priority peer in sight: release with a
            # priority-0 advert so the peer group's router takes over after its skew.
            self._send_advert(PRIORITY_RELEASE)
            self._become_backup(now, Cause.SYNC_GROUP, reason)

    def set_drained(self, drained: bool, now: float) -> None:
        """Maintenance: hand mastership over at once and stay backup until undrained.

        A draining master sends a priority-0 advert, so the best backup takes over after
        its skew; a drained backup keeps following the master but never takes over, even
        when its Master_Down_Timer expires.
        """
        self.drained = drained
        if drained and self.state is State.MASTER:
            self._send_advert(PRIORITY_RELEASE)
            self._become_backup(now, Cause.DRAIN, "drained by operator")

    def set_priority(self, priority: int, now: float) -> None:
        """Change the effective priority (tracking weights moved it).

        A master advertises the new priority at once, so a backup that now outranks it
        can preempt without waiting for the next Adver_Timer; a backup's next
        Master_Down_Timer uses the new skew.
        """
        if priority == self.priority:
            return
        self.priority = priority
        if self.state is State.MASTER:
            self.master_priority = priority
            self._send_advert(priority)
            self._protocol_deadline = now + self.advert_interval

    def handle_timer(self, now: float) -> None:
        """Run whatever timers are due at ``now``; calling it early does nothing."""
        if self._protocol_deadline is not None and now >= self._protocol_deadline:
            if self.state is State.MASTER:
                # RFC 9568 §6.4.3: Adver_Timer fired. The next one is due an interval
                # after this one was *due*, not after we got to it: a loop that wakes a
                # little late every time must not stretch the interval (at 10 ms a 1 ms
                # lateness would otherwise cost backups 10 % of their adverts). After a
                # stall of more than an interval, restart from now instead of bursting.
                scheduled = self._protocol_deadline + self.advert_interval
                if scheduled <= now:
                    scheduled = now + self.advert_interval
                self._send_advert(self.priority)
                self._protocol_deadline = scheduled
            elif self.state is State.BACKUP and self.drained:
                self._protocol_deadline = now + self.master_down_interval
            elif self.state is State.BACKUP:
                # RFC 9568 §6.4.2: Master_Down_Timer fired.
                self._become_master(now, *self._takeover_reason())
        if self._garp_deadline is not None and now >= self._garp_deadline:
            self._garp_timer_fired(now)

    def receive(self, advert: Advertisement, now: float) -> None:
        """An accepted advertisement for our VRID (RFC 9568 §6.4.2, §6.4.3)."""
        self.stats.adverts_received += 1
        if advert.priority == PRIORITY_RELEASE:
            self.stats.priority_zero_received += 1
        if self.state is State.BACKUP:
            self._backup_receive(advert, now)
        elif self.state is State.MASTER:
            self._master_receive(advert, now)
        # INITIALIZE and FAULT take no part in the election: adverts are only counted.

    # -- RFC 9568 §6.4.2: Backup ------------------------------------------------------------

    def _backup_receive(self, advert: Advertisement, now: float) -> None:
        if advert.priority == PRIORITY_RELEASE:
            # The master is leaving: wait only Skew_Time, so the best backup wins first.
            self._release_from = advert.source
            self._protocol_deadline = now + self.skew_time
            return
        preempt = self.config.preempt or self.priority == PRIORITY_OWNER
        if not preempt or advert.priority >= self.priority or self._holding_preemption(now):
            if advert.priority >= self.priority:
                self._lower_master_since = None
            self._note_master(advert, now)
            if self.config.version == 3:
                # RFC 9568 §6.4.2 (with the erratum fixed there): learn the master's interval
                # and recompute Skew_Time and Master_Down_Interval from it.
                self.master_adver_interval_cs = advert.interval_cs
            self._release_from = None
            self._protocol_deadline = now + self.master_down_interval
        # Otherwise: a lower-priority master and we preempt. Discard the advert and let
        # Master_Down_Timer expire.

    def _holding_preemption(self, now: float) -> bool:
        """True while preempt_delay still holds us back from a lower-priority master."""
        delay = self.config.preempt_delay
        if delay <= 0:
            return False
        if self._lower_master_since is None:
            self._lower_master_since = now
        hold_until = max(self._started_at, self._lower_master_since) + delay
        return now < hold_until

    # -- RFC 9568 §6.4.3: Master (Active) -----------------------------------------------------

    def _master_receive(self, advert: Advertisement, now: float) -> None:
        if advert.priority == PRIORITY_RELEASE:
            # Another router released: reassert ourselves at once.
            self._send_advert(self.priority)
            self._protocol_deadline = now + self.advert_interval
            return
        ours = (self.priority, int(self.config.primary_address))
        theirs = (advert.priority, int(advert.source))
        if theirs > ours:
            self._note_master(advert, now)
            if self.config.version == 3:
                self.master_adver_interval_cs = advert.interval_cs
            if advert.priority > self.priority:
                cause = Cause.HIGHER_PRIORITY
                reason = (
                    f"higher priority advert from {advert.source} "
                    f"(priority {advert.priority} > {self.priority})"
                )
            else:
                cause = Cause.HIGHER_ADDRESS
                reason = f"equal priority {advert.priority} from higher address {advert.source}"
            self._become_backup(now, cause, reason)
        else:
            # RFC 9568 §6.4.3: discard the losing advert and advertise at once, so the
            # loser hears us and learning bridges refresh.
            self._send_advert(self.priority)
            self._protocol_deadline = now + self.advert_interval

    # -- state entry ---------------------------------------------------------------------------

    def _become_master(self, now: float, cause: Cause, reason: str) -> None:
        self._enter(State.MASTER, cause, reason)
        self._send_advert(self.priority)
        self._actions.append(AddVips(self.config.vips))
        self._send_garp(self.config.garp.master_repeat)
        self._protocol_deadline = now + self.advert_interval
        garp = self.config.garp
        self._garp_second_burst_pending = garp.master_delay > 0
        if garp.master_delay > 0:
            self._garp_deadline = now + garp.master_delay
        elif garp.master_refresh > 0:
            self._garp_deadline = now + garp.master_refresh
        self.master_address = self.config.primary_address
        self.master_priority = self.priority
        self._lower_master_since = None
        self._release_from = None

    def _become_backup(self, now: float, cause: Cause, reason: str) -> None:
        self._enter(State.BACKUP, cause, reason)
        self._protocol_deadline = now + self.master_down_interval

    def _enter(self, new: State, cause: Cause, reason: str) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise AssertionError(f"{self.config.name}: illegal transition {old} -> {new}")
        self.state = new
        self.stats.transitions += 1
        self._actions.append(StateChanged(old, new, reason, cause))
        if old is State.MASTER:
            if new is not State.BACKUP:
                # Leaving without a successor in sight: tell backups to skip the
                # three-interval wait (RFC 9568 §6.4.3 Shutdown).
                self._send_advert(PRIORITY_RELEASE)
            self._actions.append(RemoveVips(self.config.vips))
            self._garp_deadline = None
            self._garp_second_burst_pending = False
        if new in (State.INITIALIZE, State.FAULT):
            self._protocol_deadline = None
            self.master_address = None
            self.master_priority = None

    # -- helpers ---------------------------------------------------------------------------------

    def _note_master(self, advert: Advertisement, now: float) -> None:
        self.master_address = advert.source
        self.master_priority = advert.priority
        self.last_advert_at = now

    def _takeover_reason(self) -> tuple[Cause, str]:
        if self._release_from is not None:
            return (
                Cause.MASTER_RELEASED,
                f"master {self._release_from} released (priority 0), waited skew",
            )
        if self.master_address is None:
            return (
                Cause.MASTER_DOWN,
                f"no advert within master-down interval {self.master_down_interval:.3f}s",
            )
        return (
            Cause.MASTER_DOWN,
            f"master {self.master_address} silent for master-down interval "
            f"{self.master_down_interval:.3f}s",
        )

    def _send_advert(self, priority: int) -> None:
        self.stats.adverts_sent += 1
        if priority == PRIORITY_RELEASE:
            self.stats.priority_zero_sent += 1
        self._actions.append(SendAdvertisement(priority))

    def _send_garp(self, count: int) -> None:
        if count > 0:
            self.stats.garps_sent += count * len(self.config.vips)
            self._actions.append(SendGratuitousArp(self.config.vips, count))

    def _garp_timer_fired(self, now: float) -> None:
        garp = self.config.garp
        if self._garp_second_burst_pending:
            self._garp_second_burst_pending = False
            self._send_garp(garp.master_repeat)
        else:
            self._send_garp(garp.master_refresh_repeat)
        self._garp_deadline = now + garp.master_refresh if garp.master_refresh > 0 else None
