"""``python -m seal_agent``: the ``seal-agent`` command line."""

from seal_agent.cli import main

raise SystemExit(main())
