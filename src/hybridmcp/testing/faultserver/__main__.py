"""``python -m hybridmcp.testing.faultserver``: run the fault server."""

from hybridmcp.testing.faultserver.server import main

raise SystemExit(main())
