"""`python -m cti_bridge` is the `cti-bridge` command."""

from cti_bridge.cli import main

raise SystemExit(main())
