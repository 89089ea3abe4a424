"""The Prometheus textfile: valid exposition text, and a last-success time alerts can trust."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harvester.metrics import MetricsSnapshot, ProjectCounts, read_last_success, render, write_metrics

START = datetime(2025, 1, 3, 1, 0, tzinfo=UTC)
END = START + timedelta(minutes=12, seconds=30.5)
LAST_SUCCESS = "dcs_harvester_last_success_timestamp_seconds"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)\}})? (\S+)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A strict little parser of the text format: every line must be HELP, TYPE or a sample."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    typed: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {_NAME} \S", line), line
        elif line.startswith("# TYPE "):
            name, kind = line.split()[2:]
            assert kind == "gauge"
            typed.add(name)
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in typed, f"{name} has no TYPE line before it"
            pairs = frozenset(
                (k, re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], v))
                for k, v in _LABEL_PAIR.findall(labels or "")
            )
            key = (name, pairs)
            assert key not in samples, f"duplicate series {key}"
            samples[key] = float(value)
    return samples


def snapshot(*, success: bool = True, shard: str | None = None, exit_code: int = 0) -> MetricsSnapshot:
    return MetricsSnapshot(
        started_at=START,
        finished_at=END,
        exit_code=exit_code,
        success=success,
        shard=shard,
        per_project={
            "prod": ProjectCounts(files_archived=12, bytes_archived=3_000_000, files_skipped=4, retries=2),
            'we"ird\\name\n': ProjectCounts(files_failed=1, instances_failed=1),
        },
    )


def test_render_is_valid_exposition_text() -> None:
    """Every metric has HELP and TYPE, and per-project values carry the project label."""
    samples = parse(render(snapshot(), None))
    assert samples[("dcs_harvester_last_run_start_timestamp_seconds", frozenset())] == START.timestamp()
    assert samples[("dcs_harvester_last_run_end_timestamp_seconds", frozenset())] == END.timestamp()
    assert samples[(LAST_SUCCESS, frozenset())] == END.timestamp()
    assert samples[("dcs_harvester_last_exit_code", frozenset())] == 0
    prod = frozenset({("project", "prod")})
    assert samples[("dcs_harvester_files_archived", prod)] == 12
    assert samples[("dcs_harvester_bytes_archived", prod)] == 3_000_000
    assert samples[("dcs_harvester_files_skipped", prod)] == 4
    assert samples[("dcs_harvester_retries", prod)] == 2
    for name in ("files_failed", "instances_failed"):
        assert samples[(f"dcs_harvester_{name}", frozenset({("project", 'we"ird\\name\n')}))] == 1


def test_label_values_are_escaped() -> None:
    """Quotes, backslashes and newlines in a project name cannot break the file."""
    text = render(snapshot(), None)
    assert 'project="we\\"ird\\\\name\\n"' in text
    assert len(text.splitlines()) == 4 * 3 + 7 * 4


def test_sharded_runs_label_every_sample() -> None:
    """Each shard's series are told apart by a shard label."""
    samples = parse(render(snapshot(shard="2/4"), None))
    assert all(("shard", "2/4") in labels for _name, labels in samples)


def test_a_failed_run_keeps_the_previous_success_time() -> None:
    """A failing night does not reset the last-success time, so the staleness alert keeps firing."""
    previous = (START - timedelta(days=2)).timestamp()
    samples = parse(render(snapshot(success=False, exit_code=3), previous))
    assert samples[(LAST_SUCCESS, frozenset())] == previous
    assert samples[("dcs_harvester_last_exit_code", frozenset())] == 3


def test_never_succeeded_reports_zero() -> None:
    """Before any success the time is 0, so `time() - last_success > 26h` alerts instead of staying silent."""
    samples = parse(render(snapshot(success=False, exit_code=3), None))
    assert samples[(LAST_SUCCESS, frozenset())] == 0


def alert_fires(path: Path, now: datetime) -> bool:
    """`time() - dcs_harvester_last_success_timestamp_seconds > 26*3600` evaluated on the file."""
    value = read_last_success(path)
    assert value is not None
    return now.timestamp() - value > 26 * 3600


def test_staleness_alert_across_runs(tmp_path: Path) -> None:
    """Success, then failures: the alert stays quiet for 26 hours after the success, then fires."""
    path = tmp_path / "textfile" / "dcs_harvester.prom"
    write_metrics(path, snapshot())
    assert not alert_fires(path, END + timedelta(hours=1))

    failed = replace(snapshot(success=False, exit_code=1), finished_at=END + timedelta(days=1))
    write_metrics(path, failed)
    assert read_last_success(path) == END.timestamp()
    assert not alert_fires(path, END + timedelta(hours=25))
    assert alert_fires(path, END + timedelta(hours=27))

    write_metrics(path, replace(failed, finished_at=END + timedelta(days=2)))
    assert alert_fires(path, END + timedelta(days=2))


def test_write_metrics_is_atomic_and_tidy(tmp_path: Path) -> None:
    """Only the finished .prom file is ever in the collector's directory."""
    path = tmp_path / "dcs_harvester.prom"
    for _ in range(3):
        write_metrics(path, snapshot())
    assert [p.name for p in tmp_path.iterdir()] == ["dcs_harvester.prom"]
    parse(path.read_text())


@pytest.mark.parametrize(
    "content",
    [None, "", "garbage\n", f"{LAST_SUCCESS} NaN\n", f"{LAST_SUCCESS} abc\n"],
)
def test_read_last_success_tolerates_a_bad_file(tmp_path: Path, content: str | None) -> None:
    """A missing or damaged previous file means "unknown", never a failed run."""
    path = tmp_path / "m.prom"
    if content is not None:
        path.write_text(content)
    assert read_last_success(path) is None


def test_read_last_success_reads_a_labelled_sample(tmp_path: Path) -> None:
    """A sharded file's last-success sample is found too."""
    path = tmp_path / "m.prom"
    path.write_text(f'# TYPE {LAST_SUCCESS} gauge\n{LAST_SUCCESS}{{shard="a}}b"}} 1735866000.5\n')
    assert read_last_success(path) == 1735866000.5
