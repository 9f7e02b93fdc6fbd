"""Everything that touches the host: sockets, netlink, AF_PACKET and the asyncio driver.

This layer is deliberately thin. It owns no protocol logic: it feeds the pure core
(:mod:`agent.core`) received adverts and timer wake-ups, each stamped with ``loop.time()``,
and executes the actions the core queues, in order.
"""
