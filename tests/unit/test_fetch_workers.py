"""How many download workers an instance gets: all the slots alone, its share among many."""

from __future__ import annotations

from harvester.engine.fetch import fetch_workers


def test_an_instance_alone_can_fill_every_download_slot() -> None:
    """A bundle or the night's last instance downloads on as many workers as there are slots."""
    assert fetch_workers(1, per_instance=4, download_slots=32, api_slots=32) == 32
    assert fetch_workers(0, per_instance=4, download_slots=32, api_slots=32) == 32


def test_a_few_instances_share_the_slots_but_keep_twice_their_link_slots() -> None:
    """Among a few, each instance gets its share of the slots, and at least twice its link slots."""
    assert fetch_workers(2, per_instance=4, download_slots=32, api_slots=32) == 16
    assert fetch_workers(3, per_instance=4, download_slots=32, api_slots=32) == 11  # rounded up
    assert fetch_workers(16, per_instance=4, download_slots=32, api_slots=32) == 8
    assert fetch_workers(16, per_instance=1, download_slots=8, api_slots=32) == 2


def test_among_many_the_fleet_parks_no_more_workers_than_the_slots_can_use() -> None:
    """At fleet scale the workers in all stay near twice the API and download slots, however
    many instances are in flight, so parked tasks do not grow with the fleet."""
    for fetching in (64, 128, 512, 4000):
        workers = fetch_workers(fetching, per_instance=4, download_slots=32, api_slots=32)
        assert workers >= 1
        assert fetching * workers <= 2 * (32 + 32) + fetching  # ceil: at most one more each
    assert fetch_workers(128, per_instance=4, download_slots=32, api_slots=32) == 1


def test_workers_across_the_fleet_cover_the_download_slots() -> None:
    """However many instances fetch at once, together they have enough workers for every slot."""
    for fetching in range(1, 300):
        for slots in (1, 8, 32, 100):
            assert (
                fetching * fetch_workers(fetching, per_instance=1, download_slots=slots, api_slots=32)
                >= slots
            )
