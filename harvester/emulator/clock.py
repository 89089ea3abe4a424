"""The emulator's notion of "now", which tests can move.

Everything time-dependent in the fake cloud (token expiry, link expiry, which day is
"today", how much of today's log exists, slow-log windows, X-Sdk-Date skew) reads this
clock, so a test can jump across midnight or past a link's expiry without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime


class Clock:
    """Wall time scaled by ``speed`` around the moment of creation, plus a movable offset.

    ``now() = start + (real_now - start) * speed + offset``. Anchoring the scaling at
    creation keeps ``now()`` a plausible date even when ``speed`` is large or zero.
    """

    def __init__(self, *, speed: float = 1.0, offset: float = 0.0, start: float | None = None) -> None:
        self._anchor_real = time.time()
        self._anchor = self._anchor_real if start is None else start
        self.speed = speed
        self.offset = offset

    def now(self) -> float:
        """Seconds since the epoch on the emulator's clock."""
        return self._anchor + (time.time() - self._anchor_real) * self.speed + self.offset

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def today(self) -> date:
        return self.now_dt().date()

    def advance(self, seconds: float) -> None:
        """Jump forward (or back, with a negative value) without waiting."""
        self.offset += seconds

    def set_offset(self, seconds: float) -> None:
        self.offset = seconds

    def set_time(self, when: datetime | float) -> None:
        """Make ``now()`` return ``when`` at this instant; time keeps flowing from there."""
        target = when.timestamp() if isinstance(when, datetime) else when
        self.offset += target - self.now()

    def set_speed(self, speed: float) -> None:
        """Change the rate without a jump in ``now()``."""
        current = self.now()
        self._anchor_real = time.time()
        self._anchor = current - self.offset
        self.speed = speed
