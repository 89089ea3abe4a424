"""Every command's --help documents every option and the exit codes."""

from __future__ import annotations

import argparse

import pytest

from harvester.cli import build_parser
from harvester.emulator.cli import build_parser as build_emulator_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    commands["emulate"] = build_emulator_parser()  # `harvester emulate --help` is its own parser
    commands[""] = parser
    return commands


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_help_and_appears_in_the_help_text(name: str) -> None:
    """No option is undocumented: each has a help string, shown in the rendered --help."""
    parser = _commands()[name]
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name}: {label} has no help"
        assert action.help != argparse.SUPPRESS, f"{name}: {label} is hidden"
        shown = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
        assert str(shown) in text, f"{name}: {label} missing from --help"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_help_lists_the_exit_codes(name: str) -> None:
    """Each --help ends with its exit codes (0 and 2 at least)."""
    text = _commands()[name].format_help()
    assert "exit codes" in text
    assert "0" in text.split("exit codes", 1)[1]
    assert "2" in text.split("exit codes", 1)[1]


def test_validate_help_explains_check() -> None:
    """validate --help says plain validate is offline and what --check probes."""
    text = " ".join(_commands()["validate"].format_help().split())
    assert "--check" in text
    assert "makes no network call" in text
    assert "1 --check: at least one check failed" in text


def test_every_subcommand_has_a_summary_line() -> None:
    """The top-level help has a one-line description for each command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    assert all(helps.values())
