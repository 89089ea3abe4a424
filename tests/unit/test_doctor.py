"""``validate --check``'s local verdicts: credentials, archive root, instances, exit code."""

from __future__ import annotations

from pathlib import Path

from harvester.commands.doctor import (
    Check,
    archive_check,
    archive_owner_check,
    credentials_check,
    exit_code,
    instances_check,
    tally,
)
from harvester.config.schema import Credentials, DiscoverSettings, Endpoints, InstanceRef, ProjectSettings
from harvester.models import Instance, Secret

ID_A = "5560df16-cebf-4473-95c4-d1b573c16e79"
ID_B = "0c4f3e1a-1111-4222-8333-944455556666"


def _info(instance_id: str, name: str) -> Instance:
    return Instance(
        instance_id=instance_id,
        name=name,
        engine="Redis",
        engine_version="6.0",
        status="RUNNING",
        cache_mode="ha",
    )


def _project(
    instances: tuple[InstanceRef, ...] | None = None, discover: DiscoverSettings | None = None
) -> ProjectSettings:
    chosen = {"instances": instances} if instances is not None else {"discover": discover}
    return ProjectSettings(
        name="prod",
        region="eu-de",
        project_id="0" * 32,
        endpoints=Endpoints(dcs="https://dcs.example.com", iam="https://iam.example.com/v3"),
        **chosen,
    )


LISTED = [_info(ID_A, "orders-cache"), _info(ID_B, "sessions")]


def test_missing_credentials_fail_naming_the_variable_not_a_value() -> None:
    """A missing secret key fails the first check, naming where it was looked for."""
    auth = Credentials(
        method="aksk",
        access_key=Secret("AKVISIBLE"),
        origins=(("access_key", "$OS_ACCESS_KEY"), ("secret_key", "$PROD_SK")),
    )
    check = credentials_check(auth)
    assert check.status == "FAIL"
    assert "secret key ($PROD_SK)" in check.detail
    assert "AKVISIBLE" not in check.detail


def test_present_credentials_pass_with_their_sources() -> None:
    """All credentials set: PASS, listing the sources once each."""
    auth = Credentials(
        method="aksk",
        access_key=Secret("a"),
        secret_key=Secret("b"),
        origins=(("access_key", "$OS_ACCESS_KEY"), ("secret_key", "$OS_SECRET_KEY")),
    )
    assert credentials_check(auth) == Check(
        "PASS", "credentials present", "auth.method aksk from $OS_ACCESS_KEY, $OS_SECRET_KEY"
    )


def test_writable_root_passes_and_leaves_nothing(tmp_path: Path) -> None:
    """An existing writable root passes; the probe file is gone afterwards."""
    (tmp_path / "keep.txt").write_text("x")
    check = archive_check(tmp_path)
    assert check.status == "PASS"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_missing_root_is_not_created(tmp_path: Path) -> None:
    """A root that does not exist passes when its parent is writable, and is not created."""
    root = tmp_path / "a" / "b" / "archive"
    check = archive_check(root)
    assert check.status == "PASS"
    assert "does not exist yet" in check.detail
    assert list(tmp_path.iterdir()) == []


def test_root_below_a_file_fails(tmp_path: Path) -> None:
    """A root under a regular file can never be created."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    check = archive_check(blocker / "archive")
    assert check.status == "FAIL"
    assert "is not a folder" in check.detail


def test_root_that_is_a_file_fails(tmp_path: Path) -> None:
    """A root that is a regular file fails."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert archive_check(blocker).status == "FAIL"


def test_unwritable_root_fails_with_the_reason() -> None:
    """A folder nobody can create files in (procfs, even for root) fails with the OS reason."""
    check = archive_check(Path("/proc"))
    assert check.status == "FAIL"
    assert check.detail.startswith("/proc: ")


def test_missing_root_under_an_unwritable_folder_fails() -> None:
    """A missing root whose parent refuses new folders fails (tried, not guessed from mode bits)."""
    check = archive_check(Path("/proc/harvester-archive"))
    assert check.status == "FAIL"
    assert "cannot be created in /proc" in check.detail


def test_configured_ids_and_names_found_are_shown() -> None:
    """Every configured ref resolves: PASS, names shown with their ids."""
    project = _project(instances=(InstanceRef(name="orders-cache"), InstanceRef(id=ID_B)))
    check = instances_check(project, LISTED)
    assert check.status == "PASS"
    assert f"orders-cache -> {ID_A}" in check.detail
    assert f"{ID_B} (sessions)" in check.detail


def test_unknown_name_fails_with_candidates() -> None:
    """A name DCS does not know fails, suggesting the close ones."""
    project = _project(instances=(InstanceRef(name="orders-cach"), InstanceRef(id=ID_B)))
    check = instances_check(project, LISTED)
    assert check.status == "FAIL"
    assert "1 of 2 not found" in check.detail
    assert "orders-cache" in check.detail


def test_discover_with_no_match_fails() -> None:
    """Discovery that finds nothing is a FAIL: a run would harvest nothing."""
    project = _project(discover=DiscoverSettings(tags=(("team", "sre"),)))
    check = instances_check(project, [])
    assert check.status == "FAIL"
    assert "tags team=sre" in check.detail


def test_exit_code_and_tally() -> None:
    """Any FAIL is exit 1; the tally counts each verdict."""
    ok = [Check("PASS", "a", ""), Check("PASS", "b", "")]
    assert exit_code(ok) == 0
    assert tally(ok) == "2 checks: 2 passed"
    bad = [*ok, Check("FAIL", "c", ""), Check("SKIP", "d", "")]
    assert exit_code(bad) == 1
    assert tally(bad) == "4 checks: 2 passed, 1 failed, 1 skipped"
    assert Check("FAIL", "c", "why").line() == "FAIL  c: why"


def test_archive_check_fails_for_a_folder_holding_foreign_files(tmp_path: Path) -> None:
    """--check says FAIL for a root a run would refuse (somebody else's files), naming the root."""
    root = tmp_path / "shared"
    root.mkdir()
    (root / "notes.txt").write_text("mine\n")
    check = archive_owner_check(root)
    assert check.status == "FAIL"
    assert str(root) in check.detail
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert archive_owner_check(tmp_path / "new").status == "PASS"
