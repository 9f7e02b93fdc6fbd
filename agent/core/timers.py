"""The VRRP timer formulas, in one place (RFC 3768 §6.1, RFC 9568 §6.1).

Intervals are integers of centiseconds, as on the VRRPv3 wire; results are float seconds,
because the host schedules in seconds. We keep the exact quotient (as keepalived keeps
microseconds) instead of truncating to whole centiseconds (as FRR does); peers disagree by
at most 1 cs, which interop tests must tolerate.
"""

from __future__ import annotations

#: A backup declares the master dead after this many missed adverts (RFC 9568 §6.1).
MISSED_ADVERTS_BEFORE_DOWN = 3


def skew_time(version: int, priority: int, master_adver_interval_cs: int) -> float:
    """Skew_Time in seconds: lower priorities wait longer, so the best backup wins.

    VRRPv2 (RFC 3768 §6.1): ``(256 - Priority) / 256`` seconds.
    VRRPv3 (RFC 9568 §6.1): ``((256 - Priority) * Master_Adver_Interval) / 256``, scaled by
    the master's interval so that fast timers get a proportionally small skew.
    """
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * master_adver_interval_cs / 256 / 100


def master_down_interval(version: int, priority: int, master_adver_interval_cs: int) -> float:
    """Master_Down_Interval (RFC 9568: Active_Down_Interval) in seconds: ``3 x interval + skew``."""
    interval = master_adver_interval_cs / 100
    return MISSED_ADVERTS_BEFORE_DOWN * interval + skew_time(
        version, priority, master_adver_interval_cs
    )
