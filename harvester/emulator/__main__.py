"""``python -m harvester.emulator``: the same as ``harvester emulate``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
