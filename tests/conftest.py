"""Shared fixtures: the emulator (``emulator``, ``emulator_factory``, ``emulator_api``)."""

from __future__ import annotations

pytest_plugins = ("tests.emulator_fixtures",)
