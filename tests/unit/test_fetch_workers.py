"""How many download workers an instance gets: all the slots alone, its share among many."""

from __future__ import annotations

from harvester.engine.fetch import fetch_workers


def test_an_instance_alone_can_fill_every_download_slot() -> None:
    """A bundle or the night's last instance downloads on as many workers as there are slots."""
    assert fetch_workers(1, per_instance=4, download_slots=32) == 32
    assert fetch_workers(0, per_instance=4, download_slots=32) == 32


def test_many_instances_share_the_slots_but_keep_twice_their_link_slots() -> None:
    """At fleet scale each instance's workers stay few, so parked tasks do not grow with the fleet."""
    assert fetch_workers(2, per_instance=4, download_slots=32) == 16
    assert fetch_workers(3, per_instance=4, download_slots=32) == 11  # rounded up: slots stay full
    assert fetch_workers(128, per_instance=4, download_slots=32) == 8
    assert fetch_workers(128, per_instance=1, download_slots=8) == 2


def test_workers_across_the_fleet_cover_the_download_slots() -> None:
    """However many instances fetch at once, together they have enough workers for every slot."""
    for fetching in range(1, 300):
        for slots in (1, 8, 32, 100):
            assert fetching * fetch_workers(fetching, per_instance=1, download_slots=slots) >= slots
