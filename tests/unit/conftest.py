"""The unit tier runs no real sleeps: stamina retries at once here.

``stamina.set_testing`` drops every backoff to zero; ``cap=True`` with a large cap keeps the
attempt budgets the code under test chose, so a test still sees exactly as many tries as a
real run makes. What a retry *would* wait is checked on the value handed to stamina (the
``on_retry`` events) and on injected clocks; the real waits are the integration tier's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina


@pytest.fixture(autouse=True)
def _stamina_does_not_sleep() -> Iterator[None]:
    with stamina.set_testing(True, attempts=1_000, cap=True):
        yield
