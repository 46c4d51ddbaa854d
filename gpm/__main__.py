"""``python -m gpm``."""

from gpm.cli import main

raise SystemExit(main())
