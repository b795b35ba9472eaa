"""``python -m client`` is ``emotion-client``."""

from client.cli import main

raise SystemExit(main())
