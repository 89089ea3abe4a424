"""The garbage collector's settings for a harvester process, once its engine is open.

A night allocates a handful of short-lived containers per file (requests, responses, log
events, manifest entries) on top of a heap that lives as long as the process: modules, the
config, the archive index (a set of tuples, one per archived replica-day). With CPython's
defaults, a young collection ran every 700 allocations and a full one walked that whole heap:
on a 200-instance night, 0.5-0.7 s of the event loop's time went to the collector, with pauses
up to 58-78 ms, during which every response waiting for the loop waits too (the bench's
"event loop lag").

So, when a command owns its process: everything alive once the engine is open is moved out of
the collector's sight (``gc.freeze``: it lives until the process ends anyway), and the young
generation is collected every :data:`YOUNG_THRESHOLD` allocations. That night's collector time
fell to 0.15 s and its longest pause to ~26 ms (bench/README.md). Memory is unaffected: what is
frozen was never going to be freed, and a few thousand more young objects are kilobytes.

Not done for a command running inside another program (tests, an embedding caller): frozen
objects are never collected, so freezing someone else's heap could keep its garbage forever.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

#: Allocations between two young collections (CPython's default: 700); the older generations
#: keep their ratio to it (every 20 young ones, every 20 of those), so full collections stay rare.
YOUNG_THRESHOLD = 5000
OLDER_RATIO = 20


def settle() -> None:
    """Collect once, freeze what survives, and space the young collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_RATIO, OLDER_RATIO)
