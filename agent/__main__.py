"""``python -m agent`` is the same as the ``vrrp-agent`` command."""

from agent.cli import main

raise SystemExit(main())
