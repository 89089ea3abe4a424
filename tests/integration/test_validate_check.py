"""``validate --check`` probes against the emulator over loopback: what passes, what fails, and why."""

from __future__ import annotations

import socket
from pathlib import Path

from harvester.commands.doctor import Check, exit_code, run_checks
from harvester.config.schema import Endpoints, InstanceRef
from harvester.emulator import Emulator
from harvester.models import Secret
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import settings_for


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, read back, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _names(emu: Emulator) -> tuple[str, str]:
    first, second = emu.fleet.instances[0], emu.fleet.instances[1]
    return first.name, second.instance_id


async def test_everything_passes_against_a_healthy_cloud(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Credentials, root, DCS, acceptance and configured instances: five PASS lines, nothing collected."""
    emu = await emulator_factory(instances=4, seed=3)
    name, instance_id = _names(emu)
    settings = settings_for(emu, tmp_path)
    project = settings.projects[0].model_copy(
        update={"instances": (InstanceRef(name=name), InstanceRef(id=instance_id)), "discover": None}
    )
    settings = settings.model_copy(update={"projects": (project,)})

    checks = await run_checks(settings)

    assert [c.status for c in checks] == ["PASS"] * 6, checks
    found = _by_name(checks)["[emulated] instances found"]
    assert f"{name} -> {emu.fleet.instances[0].instance_id}" in found.detail
    assert exit_code(checks) == 0
    assert emu.counters.collections == 0
    assert emu.counters.links_issued == 0
    assert not (tmp_path / "archive").exists()


async def test_password_auth_logs_in_to_iam(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """With password auth IAM is probed too: reachable and the login accepted."""
    emu = await emulator_factory(instances=2, seed=3)
    checks = await run_checks(settings_for(emu, tmp_path, auth="password"))

    by_name = _by_name(checks)
    assert by_name["[emulated] IAM endpoint reachable"].status == "PASS"
    assert "IAM issued a token" in by_name["[emulated] credentials accepted by IAM"].detail
    assert by_name["[emulated] credentials accepted by DCS"].status == "PASS"
    assert exit_code(checks) == 0
    assert emu.counters.tokens_issued >= 1


async def test_refused_credentials_fail_and_skip_the_instances(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A wrong secret key: DCS reachable, credentials FAIL with DCS's code, instances SKIP, exit 1."""
    emu = await emulator_factory(instances=2, seed=3)
    settings = settings_for(emu, tmp_path)
    wrong = "WRONGSECRETKEY000000000000000000000000"
    settings = settings.model_copy(
        update={"credentials": settings.credentials.model_copy(update={"secret_key": Secret(wrong)})}
    )

    checks = await run_checks(settings)

    by_name = _by_name(checks)
    assert by_name["[emulated] DCS endpoint reachable"].status == "PASS"
    refused = by_name["[emulated] credentials accepted by DCS"]
    assert refused.status == "FAIL"
    assert "HTTP 401" in refused.detail
    assert by_name["[emulated] instances found"].status == "SKIP"
    assert exit_code(checks) == 1
    assert all(wrong not in c.line() for c in checks)


async def test_unknown_instance_name_fails_with_candidates(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A configured name DCS does not know fails the instances check, naming the close ones."""
    emu = await emulator_factory(instances=4, seed=3)
    real = emu.fleet.instances[0].name
    settings = settings_for(emu, tmp_path)
    project = settings.projects[0].model_copy(
        update={"instances": (InstanceRef(name=real[:-1]),), "discover": None}
    )

    checks = await run_checks(settings.model_copy(update={"projects": (project,)}))

    found = _by_name(checks)["[emulated] instances found"]
    assert found.status == "FAIL"
    assert real in found.detail
    assert exit_code(checks) == 1


async def test_unreachable_endpoint_fails_with_the_cause(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Nothing listening on the DCS port: one FAIL naming the cause, the dependent checks SKIP."""
    emu = await emulator_factory(instances=2, seed=3)
    settings = settings_for(emu, tmp_path)
    dead = f"http://127.0.0.1:{_closed_port()}"
    old = settings.projects[0]
    project = old.model_copy(update={"endpoints": Endpoints(dcs=dead, iam=old.iam_endpoint)})

    checks = await run_checks(settings.model_copy(update={"projects": (project,)}))

    reach = _by_name(checks)["[emulated] DCS endpoint reachable"]
    assert reach.status == "FAIL"
    assert "connection refused" in reach.detail
    assert _by_name(checks)["[emulated] credentials accepted by DCS"].status == "SKIP"
    assert exit_code(checks) == 1


async def test_missing_credentials_still_probe_the_endpoint(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """No secret key: credentials FAIL, DCS is still probed (reachable), acceptance and instances SKIP."""
    emu = await emulator_factory(instances=2, seed=3)
    settings = settings_for(emu, tmp_path)
    settings = settings.model_copy(
        update={"credentials": settings.credentials.model_copy(update={"secret_key": None})}
    )

    checks = await run_checks(settings)

    by_name = _by_name(checks)
    assert by_name["credentials present"].status == "FAIL"
    assert by_name["[emulated] DCS endpoint reachable"].status == "PASS"
    assert by_name["[emulated] credentials accepted by DCS"].status == "SKIP"
    assert exit_code(checks) == 1


async def test_refused_password_fails_at_iam_and_skips_dcs(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A wrong password: IAM reachable, its login FAILs, DCS is still probed and the rest SKIPs."""
    emu = await emulator_factory(instances=2, seed=3)
    settings = settings_for(emu, tmp_path, auth="password")
    wrong = "Wrong-Password-123"
    settings = settings.model_copy(
        update={"credentials": settings.credentials.model_copy(update={"password": Secret(wrong)})}
    )

    checks = await run_checks(settings)

    by_name = _by_name(checks)
    assert by_name["[emulated] IAM endpoint reachable"].status == "PASS"
    assert by_name["[emulated] credentials accepted by IAM"].status == "FAIL"
    assert by_name["[emulated] DCS endpoint reachable"].status == "PASS"
    assert by_name["[emulated] credentials accepted by DCS"].status == "SKIP"
    assert exit_code(checks) == 1
    assert all(wrong not in c.line() for c in checks)
