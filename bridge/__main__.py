"""``python -m bridge`` runs the command line."""

from bridge.cli import main

raise SystemExit(main())
