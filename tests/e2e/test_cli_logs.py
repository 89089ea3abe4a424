"""``harvester logs`` and ``harvester events`` as child processes, on a harvested archive and on
plain files: output, filters, warnings on stderr, exit codes, and a reader that goes away."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from harvester.emulator import Emulator
from tests import helpers
from tests import log_samples as s
from tests.emulator_sigv import EmulatorFactory

_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\S+) (\S+) ([.\-*#+]) (.*)")


async def _archive(emulator_factory: EmulatorFactory, tmp_path: Path) -> tuple[Emulator, Path]:
    emu = await emulator_factory(instances=3, seed=11)
    settings = helpers.settings_for(emu, tmp_path)
    summary = await helpers.harvest(settings)
    assert helpers.code_of(summary) == 0
    return emu, settings.archive.root


def _parsed(stdout: str) -> list[tuple[str, ...]]:
    out = []
    for line in stdout.splitlines():
        m = _LINE.fullmatch(line)
        assert m is not None, line
        out.append(m.groups())
    return out


async def test_logs_of_one_replica_in_a_window(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """``--instance --replica --since --until``: that replica's lines in the window, prefixed and
    in time order; stderr says how times are read and what was read."""
    emu, root = await _archive(emulator_factory, tmp_path)
    inst = next(i for i in emu.fleet.instances if i.collectable and len(i.replicas) > 1)
    replica = inst.replicas[1]
    day = helpers.complete_days(emu.clock.today())[2]
    result = await helpers.run_cli(
        "logs", root, "--instance", inst.name, "--replica", replica.ip,
        "--since", f"{day}T06:00", "--until", f"{day}T12:00",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = _parsed(result.stdout)
    assert rows
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert all(f"{day}T06:00" <= r[0] < f"{day}T12:00" for r in rows)
    assert {(r[1], r[2], r[3]) for r in rows} == {(inst.name, replica.group_name, replica.ip)}
    assert "times are UTC; instance clocks read as UTC" in result.stderr
    assert re.search(r"read 3 file\(s\), \d+ bytes, \d+ lines, \d+ records", result.stderr)


async def test_grep_finds_what_grep_finds(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """``--grep LITERAL`` prints exactly the lines ``grep -h`` prints, merged by time."""
    _, root = await _archive(emulator_factory, tmp_path)
    files = [p for p in helpers.payload_files(root) if p.suffix == ".log"]
    grep = await helpers.run(["grep", "-h", "-c", "--", "overcoming of output buffer", *map(str, files)])
    expected = sum(int(n) for n in grep.stdout.split())
    assert expected > 0
    result = await helpers.run_cli("logs", root, "--grep", "overcoming of output buffer")
    assert result.code == 0, result.stderr
    rows = _parsed(result.stdout)
    assert len(rows) == expected
    assert all("overcoming of output buffer" in r[6] for r in rows)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert "only lines holding the pattern's literal were parsed" in result.stderr


async def test_events_as_json_lines_and_as_a_table(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """``--json`` gives one object per event with every documented field; without it, a table."""
    _, root = await _archive(emulator_factory, tmp_path)
    result = await helpers.run_cli("events", root, "--json", "--kind", "sync.full,replica")
    assert result.code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events
    for e in events:
        assert set(e) >= {
            "time",
            "kind",
            "severity",
            "instance",
            "shard",
            "replica",
            "role",
            "summary",
            "file",
            "line",
        }
        assert e["kind"] == "sync.full" or e["kind"].startswith("replica.")
        assert e["time"].endswith("Z")
        assert Path(e["file"]).is_file()
        assert isinstance(e["line"], int)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert re.search(r"events: \d+ \(", result.stderr)

    table = await helpers.run_cli("events", root, "--severity", "warning")
    assert table.code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["TIME", "(UTC)", "SEVERITY", "KIND"]
    assert rows
    assert all(row.split()[1] in ("warning", "critical") for row in rows)


async def test_a_reader_that_stops_early_ends_the_command_quietly(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """``harvester logs ... | head -1``: one line, exit 0, no traceback."""
    _, root = await _archive(emulator_factory, tmp_path)
    command = " ".join(helpers.cli_command("logs", root))
    result = await helpers.run(
        ["bash", "-c", f"set -o pipefail; {command} 2>err.txt | head -1"], cwd=tmp_path
    )
    assert result.code == 0
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in (tmp_path / "err.txt").read_text()


async def test_bad_files_are_read_with_counted_warnings(tmp_path: Path) -> None:
    """Non-UTF-8, a clock step, an empty file and a torn last line: read, each warned about on
    stderr; a binary file is skipped, named, and makes the exit code 1."""
    day = date(2024, 1, 10)
    good = s.write(tmp_path / s.dcs_name("10.0.0.1", day), s.V7_AOF)
    latin = tmp_path / s.dcs_name("10.0.0.2", day)
    latin.write_bytes(b"1:M 10 Jan 2024 12:00:00.000 # Client name caf\xe9 closed\n")
    stepped = s.write(
        tmp_path / s.dcs_name("10.0.0.3", day),
        "1:M 10 Jan 2024 12:00:00.000 * a\n1:M 10 Jan 2024 11:00:00.000 * b\n",
    )
    empty = tmp_path / s.dcs_name("10.0.0.4", day)
    empty.write_bytes(b"")
    torn = tmp_path / s.dcs_name("10.0.0.5", day)
    torn.write_bytes(b"1:M 10 Jan 2024 12:00:00.000 * a\n1:M 10 Jan 2024 12:00:01.000 * half")
    result = await helpers.run_cli("logs", good, latin, stepped, empty, torn)
    assert result.code == 0, result.stderr
    assert f"warning: {latin}: 1 line(s) not UTF-8" in result.stderr
    assert f"warning: {stepped}: 1 record(s) earlier than a record before them" in result.stderr
    assert f"warning: {empty}: empty file" in result.stderr
    assert f"warning: {torn}: last line has no newline" in result.stderr
    assert "caf\ufffd" in result.stdout

    binary = tmp_path / s.dcs_name("10.0.0.6", day)
    binary.write_bytes(b"REDIS0009\xfa\tredis-ver\x056.2.6\x00\x00\xff" * 50)
    mixed = await helpers.run_cli("events", good, binary)
    assert mixed.code == 1
    assert f"warning: {binary}: not read: binary content" in mixed.stderr
    assert "aof.fsync_slow" in mixed.stdout


async def test_instance_clock_zone_and_level(tmp_path: Path) -> None:
    """``--tz`` reads the instance clock in a zone (output stays UTC); ``--level`` filters."""
    path = s.write(tmp_path / s.dcs_name("10.0.0.1", date(2020, 1, 21)), s.V4_START)
    result = await helpers.run_cli("logs", path, "--tz", "Europe/Berlin", "--level", "warning")
    assert result.code == 0, result.stderr
    rows = _parsed(result.stdout)
    assert rows[0][0] == "2020-01-21T16:16:28.734Z"  # 17:16 CET
    assert {r[5] for r in rows} == {"#"}
    assert len(rows) == s.V4_START.count(" # ")
    assert "instance clocks read as Europe/Berlin" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["logs", "{tmp}/nope"], "nope: no such file or folder"),
        (["logs", "{file}", "--since", "yesterday"], "--since: not an ISO 8601 date or time"),
        (
            ["logs", "{file}", "--since", "2024-01-02", "--until", "2024-01-01"],
            "--since must be before --until",
        ),
        (["logs", "{file}", "--tz", "Mars/Olympus"], "--tz: unknown time zone 'Mars/Olympus'"),
        (["logs", "{file}", "--grep", "(unclosed"], "--grep: not a valid regex"),
        (["events", "{file}", "--kind", "nonsense"], "--kind: unknown kind(s) nonsense"),
        (["events", "{file}", "--replica", "10.9.9.9"], "no log file matches --replica 10.9.9.9"),
        (["logs", "{file}", "--level", "loud"], "invalid choice: 'loud'"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """Every bad argument ends with one line naming it, exit code 2, nothing on stdout."""
    path = s.write(tmp_path / s.dcs_name("10.0.0.1", date(2024, 1, 10)), s.V7_AOF)
    argv = [a.format(tmp=tmp_path, file=path) for a in args]
    result = await helpers.run_cli(*argv)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(helpers.error_lines(result.stderr)) == 1


def test_help_lists_the_commands() -> None:
    """``harvester --help`` shows logs and events."""
    out = subprocess.run(
        [sys.executable, "-m", "harvester.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "logs" in out
    assert "events" in out


async def test_ctrl_c_reports_what_was_read_and_exits_130(tmp_path: Path) -> None:
    """SIGINT mid-stream: exit 130, the read summary and 'interrupted' on stderr, no traceback."""
    path = tmp_path / s.dcs_name("10.0.0.1", date(2024, 1, 10))
    body = s.V7_AOF * 2000
    path.write_text(body * 20, encoding="utf-8")  # about 50 MB: seconds to read
    proc = await helpers.start(helpers.cli_command("logs", path))
    assert proc.stdout is not None
    await proc.stdout.readline()  # it is streaming
    proc.send_signal(signal.SIGINT)
    result = await helpers.finish(proc)
    assert result.code == 130, result.stderr
    assert "interrupted" in result.stderr
    assert re.search(r"read 1 file\(s\), \d+ bytes", result.stderr)
    assert "Traceback" not in result.stderr
