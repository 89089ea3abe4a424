"""``harvester validate --check``: probe what a run needs, one PASS/FAIL line each.

Plain ``validate`` reads the file and stays offline. ``--check`` then asks the world, in the
order a run depends on it: are the credentials there, can the archive root be written, does
each endpoint answer, are the credentials accepted (one cheap call: list instances with
``limit=1``), and does DCS know every instance the config names. A probe that cannot run
because an earlier one failed says SKIP and why, so the first FAIL is the one to fix.

Every call is a single attempt bounded by :data:`CALL_TIMEOUT` (connect within
:data:`CONNECT_TIMEOUT`): a doctor that retries for minutes would hide the very problem it
is asked about. Projects are probed concurrently, so the whole check ends within about
``CALL_TIMEOUT`` times the calls of one project (at most four, plus listing pages).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import anyio

from harvester import plan
from harvester.app import iam_user, signer
from harvester.archive.store import Archive
from harvester.cloud.auth import Authenticator, StaticTokenAuth
from harvester.cloud.dcs import DcsClient
from harvester.cloud.iam import Iam
from harvester.cloud.transport import Transport
from harvester.config.credentials import missing_credentials
from harvester.config.schema import Credentials, ProjectSettings, Settings
from harvester.engine import pool
from harvester.errors import ApiError, HarvesterError, TransportError
from harvester.models import Instance

T = TypeVar("T")
Status = Literal["PASS", "FAIL", "SKIP"]

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 15.0
_SHOWN = 5  # instances listed by name/id in one line before "... and N more"


@dataclass(frozen=True, slots=True)
class Check:
    """One probe's verdict; ``detail`` says what was seen, or why it failed."""

    status: Status
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


def exit_code(checks: Sequence[Check]) -> int:
    """0 when nothing failed, 1 otherwise (a SKIP always follows a FAIL)."""
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def tally(checks: Sequence[Check]) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("PASS", "FAIL", "SKIP")}
    parts = [f"{counts['PASS']} passed"]
    parts += [f"{counts['FAIL']} failed"] if counts["FAIL"] else []
    parts += [f"{counts['SKIP']} skipped"] if counts["SKIP"] else []
    return f"{len(checks)} checks: {', '.join(parts)}"


# --------------------------------------------------------------------------- local checks


def credentials_check(auth: Credentials) -> Check:
    """Every credential the method needs is set (where it was looked for, never its value)."""
    name = "credentials present"
    missing = missing_credentials(auth)
    if missing:
        return Check("FAIL", name, f"auth.method {auth.method} needs {', '.join(missing)}: not set")
    where = ", ".join(dict.fromkeys(origin for _, origin in auth.origins)) or auth.source
    return Check("PASS", name, f"auth.method {auth.method} from {where}")


def archive_check(root: Path) -> Check:
    """The root can be written; a probe file is created and removed, nothing else is left.

    A root that does not exist yet is not created (``validate`` must not leave folders behind):
    its nearest existing parent must allow creating it.
    """
    name = "archive root writable"
    if root.exists():
        if not root.is_dir():
            return Check("FAIL", name, f"{root} exists and is not a folder")
        try:
            fd, probe = tempfile.mkstemp(dir=root, prefix=".harvester-check-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return Check("FAIL", name, f"{root}: {exc.strerror or exc}")
        return Check("PASS", name, f"{root} (a probe file was written and removed)")
    parent = root.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return Check("FAIL", name, f"{root} cannot be created: {parent} is not a folder")
    try:  # os.access() is not the truth (read-only mounts, ACLs, root): try, and take it back
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".harvester-check-"))
    except OSError as exc:
        return Check("FAIL", name, f"{root} cannot be created in {parent}: {exc.strerror or exc}")
    return Check("PASS", name, f"{root} does not exist yet; the first run creates it in {parent}")


def archive_owner_check(root: Path) -> Check:
    """The root is one a run accepts: not a system folder, not holding somebody else's files."""
    name = "archive root is the harvester's"
    try:
        Archive(root).claim(write=False)
    except HarvesterError as exc:
        return Check("FAIL", name, str(exc))
    return Check("PASS", name, f"{root} (new, empty, or a harvester archive)")


def instances_check(project: ProjectSettings, listed: Sequence[Instance]) -> Check:
    """The configured ids and names against the listing (discovery: how many match)."""
    name = f"[{project.name}] instances found"
    if project.instances is None:
        d = project.discover
        filters = []
        if d is not None and d.tags:
            filters.append(f"tags {d.tags_query}")
        if d is not None and d.name:
            filters.append(f"name {d.name!r}")
        scope = " and ".join(filters) or "every instance"
        if not listed:
            return Check("FAIL", name, f"no instance matches the discover filters ({scope})")
        return Check("PASS", name, f"{len(listed)} discovered ({scope}): {_some(listed)}")
    matches = plan.match_instances(project.instances, listed, project=project.name)
    bad = [m for m in matches if m.instance is None]
    if bad:
        reasons = "; ".join(str(m.error).removeprefix(f"project {project.name}: ") for m in bad)
        return Check("FAIL", name, f"{len(bad)} of {len(matches)} not found: {reasons}")
    shown = [
        f"{m.ref.name} -> {m.instance.instance_id}"
        if m.ref.name
        else f"{m.instance.instance_id} ({m.instance.name})"
        for m in matches
        if m.instance is not None
    ]
    more = f", ... and {len(shown) - _SHOWN} more" if len(shown) > _SHOWN else ""
    return Check("PASS", name, f"{len(matches)} of {len(matches)}: {', '.join(shown[:_SHOWN])}{more}")


def _some(listed: Sequence[Instance]) -> str:
    names = sorted(i.name for i in listed)
    more = f", ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


# --------------------------------------------------------------------------- network checks


async def _bounded(call: Callable[[], Awaitable[T]], *, what: str) -> T:
    """One attempt, never longer than CALL_TIMEOUT (DNS included, which aiohttp does not bound)."""
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            return await call()
    except TimeoutError:
        raise TransportError(f"{what}: no answer within {CALL_TIMEOUT:g} s") from None


async def _runner(fn: Callable[[], Awaitable[T]], *, what: str) -> T:
    return await _bounded(fn, what=what)


async def _reachable(transport: Transport, url: str, label: str) -> Check:
    """Any HTTP answer, even 401 or 404, proves the endpoint is there; only no answer fails."""
    name = f"{label} reachable"
    try:
        answer = await _bounded(lambda: transport.send("GET", url, what=label), what=label)
    except TransportError as exc:
        return Check("FAIL", name, str(exc))
    return Check("PASS", name, f"{url} (HTTP {answer.status})")


async def _iam_login(
    transport: Transport, project: ProjectSettings, auth: Credentials, checks: list[Check]
) -> tuple[Authenticator | None, str | None]:
    """Password auth: log in to IAM (reachability and credentials in one call)."""
    label = f"[{project.name}] IAM endpoint"
    creds = f"[{project.name}] credentials accepted by IAM"
    user = iam_user(auth)
    if user is None:  # credentials_check passed: cannot be
        raise AssertionError("password auth without its credentials")
    iam = Iam(transport, project.iam_endpoint, user)
    project_id = project.project_id
    try:
        if project_id is None:
            name = project.project_name or ""
            project_id = await _bounded(lambda: iam.project_id(name), what=label)
        pid = project_id
        issued = await _bounded(lambda: iam.issue(project_id=pid), what=label)
    except TransportError as exc:
        checks.append(Check("FAIL", f"{label} reachable", str(exc)))
        checks.append(Check("SKIP", creds, "IAM could not be reached"))
        return None, project_id
    except ApiError as exc:
        checks.append(Check("PASS", f"{label} reachable", f"{project.iam_endpoint} (HTTP {exc.status})"))
        checks.append(Check("FAIL", creds, f"IAM refused the login: {exc}"))
        return None, project_id
    checks.append(Check("PASS", f"{label} reachable", f"{project.iam_endpoint} (HTTP 201)"))
    checks.append(Check("PASS", creds, f"IAM issued a token for project {project_id}"))
    return StaticTokenAuth(issued.token), project_id


async def project_checks(
    transport: Transport, project: ProjectSettings, auth: Credentials, *, credentials_ok: bool
) -> list[Check]:
    """Reachability, credentials and instances of one project, in that order."""
    checks: list[Check] = []
    dcs_label = f"[{project.name}] DCS endpoint"
    creds = f"[{project.name}] credentials accepted by DCS"
    found = f"[{project.name}] instances found"
    project_id = project.project_id
    authn: Authenticator | None = None
    if auth.method == "password":
        if credentials_ok:
            authn, project_id = await _iam_login(transport, project, auth, checks)
        else:
            checks.append(await _reachable(transport, project.iam_endpoint, f"[{project.name}] IAM endpoint"))
    elif credentials_ok:
        authn = signer(auth, project_id)

    if authn is None or project_id is None:
        checks.append(await _reachable(transport, project.dcs_endpoint, dcs_label))
        why = (
            "IAM gave no token" if auth.method == "password" and credentials_ok else "credentials are missing"
        )
        checks.append(Check("SKIP", creds, why))
        checks.append(Check("SKIP", found, "needs accepted credentials"))
        return checks

    client = DcsClient(
        transport, endpoint=project.dcs_endpoint, project_id=project_id, auth=authn, runner=_runner
    )
    try:
        total = await _bounded(client.count_instances, what=dcs_label)
    except TransportError as exc:
        checks.append(Check("FAIL", f"{dcs_label} reachable", str(exc)))
        checks.append(Check("SKIP", creds, "DCS could not be reached"))
        checks.append(Check("SKIP", found, "DCS could not be reached"))
        return checks
    except ApiError as exc:
        checks.append(Check("PASS", f"{dcs_label} reachable", f"{project.dcs_endpoint} (HTTP {exc.status})"))
        verdict = "DCS refused them" if exc.status in (401, 403) else "DCS answered with an error"
        checks.append(Check("FAIL", creds, f"{verdict}: {exc}"))
        checks.append(Check("SKIP", found, "the instance listing failed"))
        return checks
    checks.append(Check("PASS", f"{dcs_label} reachable", f"{project.dcs_endpoint} (HTTP 200)"))
    size = f" ({total} instances in the project)" if total is not None else ""
    checks.append(Check("PASS", creds, f"list instances answered{size}"))

    try:
        if project.instances is None and project.discover is not None:
            d = project.discover
            listed = await client.list_instances(name=d.name, tags=dict(d.tags) or None)
        else:
            listed = await client.list_instances()
    except HarvesterError as exc:
        checks.append(Check("FAIL", found, f"listing instances failed: {exc}"))
        return checks
    checks.append(instances_check(project, listed))
    return checks


async def run_checks(settings: Settings) -> list[Check]:
    """Every probe, local ones first; the settings must already point at a running emulator."""
    checks = [credentials_check(settings.credentials)]
    credentials_ok = checks[0].status == "PASS"
    checks.append(await anyio.to_thread.run_sync(archive_check, settings.archive.root))
    checks.append(await anyio.to_thread.run_sync(archive_owner_check, settings.archive.root))
    results: dict[int, list[Check]] = {}
    async with Transport(
        api_connections=4, download_connections=1, connect_timeout=CONNECT_TIMEOUT, read_timeout=CALL_TIMEOUT
    ) as transport:

        async def one(numbered: tuple[int, ProjectSettings]) -> None:
            i, project = numbered
            results[i] = await project_checks(
                transport, project, settings.credentials, credentials_ok=credentials_ok
            )

        # A few projects, each a handful of calls: probing them side by side keeps the
        # whole check within one project's time even when every endpoint is dead.
        await pool.run(enumerate(settings.projects), one)
    for i in sorted(results):
        checks.extend(results[i])
    return checks
