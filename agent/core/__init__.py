"""The pure VRRP protocol core: codec and state machine.

Nothing in this package reads a clock, opens a socket or starts a process: every input
carries ``now`` (seconds on a monotonic clock) and every output is a value the host layer
executes. That is what lets the tests drive whole LANs of routers deterministically on a
fake clock (see ``tests/unit``).
"""
