"""vrrp-agent: a VRRP v2/v3 high-availability agent.

The protocol lives in :mod:`agent.core`, which is pure code (no clock, no sockets);
everything that touches the host lives in :mod:`agent.host`.
"""

__version__ = "0.1.0"
