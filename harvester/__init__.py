"""dcs-log-harvester: harvest Redis run logs from OTC DCS into a dated, verified archive."""

from __future__ import annotations

__version__ = "0.1.0"
