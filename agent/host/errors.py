"""The one exception type the host layer raises for problems an operator must fix."""

from __future__ import annotations


class HostError(Exception):
    """A host-side failure with a message fit for the operator (no traceback needed).

    The message names the interface and what is missing, e.g. the CAP_NET_RAW capability,
    because "Operation not permitted" alone does not say which of the agent's many
    privileged operations failed.
    """
