"""``harvester timeline`` as a child process over a bundle and over plain files: page, filters, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.collect_helpers import subprocess_env
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import error_lines, run_cli
from tests.timeline_bundle import FailoverBundle, failover_bundle, page_data


async def _bundle(emulator_factory: EmulatorFactory, tmp_path: Path) -> FailoverBundle:
    return await failover_bundle(emulator_factory, tmp_path / "collect", cluster=True)


async def test_timeline_of_a_bundle_writes_the_page_and_says_what_it_drew(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Exit 0, the page's path on stdout, lanes and counts on stderr; one lane per replica."""
    fb = await _bundle(emulator_factory, tmp_path)
    out = tmp_path / "page" / "timeline.html"
    result = await run_cli("timeline", fb.run.bundle, "--html", out, env=subprocess_env())
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    replicas = len(fb.instance.replicas)
    assert f"timeline: {replicas} replica lane(s)" in result.stderr
    data = page_data(out)
    assert len(data["lanes"]) == replicas
    assert (fb.run.bundle / "timeline.html").read_bytes() != out.read_bytes()  # its own title and time


async def test_kind_severity_and_window_choose_the_markers(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--kind/--severity pick the markers; --since/--until cut markers and role bands to the window."""
    fb = await _bundle(emulator_factory, tmp_path)
    day = fb.incident.day.isoformat()
    out = tmp_path / "t.html"
    result = await run_cli(
        "timeline",
        fb.run.bundle,
        "--html",
        out,
        "--kind",
        "failover,cluster.election",
        "--severity",
        "warning",
        "--since",
        f"{day}T06:00:00",
        "--until",
        f"{day}T12:00:00",
        env=subprocess_env(),
    )
    assert result.code == 0, result.stderr
    data = page_data(out)
    kinds = {data["kinds"][e[2]] for e in data["events"]}
    assert kinds == {"failover.promoted", "failover.demoted", "cluster.election"}
    assert all(e[3] >= 1 for e in data["events"])
    assert data["t0"] >= _ms(f"{day}T06:00:00")
    assert data["t1"] <= _ms(f"{day}T12:00:00")
    # The bands still span the whole window: the roles come from every event, not only the markers.
    assert {s[2] for s in data["spans"]} >= {_ms(f"{day}T06:00:00")}


async def test_plain_log_files_get_lanes_from_their_names(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Files given one by one (no manifest): the replica comes from redis_<ip>_<day>.log."""
    fb = await _bundle(emulator_factory, tmp_path)
    loose = tmp_path / "loose"
    loose.mkdir()
    for log in sorted(fb.run.bundle.rglob("*.log"))[:3]:
        (loose / log.name).write_bytes(log.read_bytes())
    out = tmp_path / "t.html"
    result = await run_cli("timeline", *sorted(loose.iterdir()), "--html", out, env=subprocess_env())
    assert result.code == 0, result.stderr
    labels = sorted(lane["label"] for lane in page_data(out)["lanes"])
    assert labels == sorted(p.name.split("_")[1] for p in loose.iterdir())


async def test_bad_arguments_are_one_line_errors(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """An unknown kind, a folder as --html, a missing source: exit 2 and one line naming the problem."""
    fb = await _bundle(emulator_factory, tmp_path)
    env = subprocess_env()
    cases = (
        (("--kind", "nosuch"), "--kind: unknown kind(s) nosuch"),
        (("--html", str(tmp_path)), f"--html {tmp_path}: is a folder"),
    )
    for extra, message in cases:
        args = ["timeline", str(fb.run.bundle), "--html", str(tmp_path / "x.html"), *extra]
        result = await run_cli(*args, env=env)
        assert result.code == 2, result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"harvester: error: {message}")
    missing = await run_cli("timeline", tmp_path / "nope", "--html", tmp_path / "x.html", env=env)
    assert missing.code == 2
    assert error_lines(missing.stderr) == [f"harvester: error: {tmp_path / 'nope'}: no such file or folder"]
    assert not (tmp_path / "x.html").exists()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)
