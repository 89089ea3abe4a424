"""Where a region's services live, and which hosts we send credentials or signed URLs to.

Pure functions over strings: the endpoints an OTC region implies, the OBS host next to a DCS
endpoint, the URL policy for endpoints (https, plain http only to this machine), and the
download host policy that every signed link and redirect is checked against.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from harvester.config.safetext import show

#: Regions whose endpoints we can derive; anything else needs explicit ``endpoints``.
OTC_REGIONS = ("eu-ch2", "eu-de", "eu-nl")

_HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def default_endpoints(region: str) -> tuple[str, str]:
    """The (DCS, IAM) endpoints of an OTC region; eu-ch2 lives under ``sc.`` (contract section 1)."""
    if region == "eu-ch2":
        return "https://dcs.eu-ch2.sc.otc.t-systems.com", "https://iam-pub.eu-ch2.sc.otc.t-systems.com/v3"
    return f"https://dcs.{region}.otc.t-systems.com", f"https://iam.{region}.otc.t-systems.com/v3"


def default_obs_host(region: str, dcs_endpoint: str) -> str:
    """OBS sits next to DCS (``dcs.X`` -> ``obs.X``), which also covers Huawei Cloud endpoints."""
    host = (urlsplit(dcs_endpoint).hostname or "").lower()
    if host.startswith("dcs."):
        return "obs." + host.removeprefix("dcs.")
    if region == "eu-ch2":
        return "obs.eu-ch2.sc.otc.t-systems.com"
    return f"obs.{region}.otc.t-systems.com"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Plain http is acceptable only to this machine (the emulator)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(v: str | None) -> str | None:
    """An endpoint URL as we store it (no trailing ``/``), or ValueError saying what is wrong."""
    if v is None:
        return None
    parts = urlsplit(v.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"must be an http(s) URL (got {show(v)})")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"must use https (plain http only for a local emulator) (got {show(v)})")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not contain a query string, fragment or user info")
    return v.strip().rstrip("/")


def _bare(entry: str) -> str:
    return entry.strip().lower().rstrip(".").removeprefix("*.").lstrip(".")


def host_entry(text: str) -> str:
    """An ``allowed_hosts`` entry in the form :func:`host_allowed` compares, or ValueError."""
    entry = _bare(text)
    if not (_HOST_RE.fullmatch(entry) or _is_ip(entry)):
        raise ValueError(
            "must be a host name like obs.eu-de.otc.t-systems.com, without scheme, port or path "
            f"(got {show(text)})"
        )
    return entry


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether a download link's host is trusted.

    An entry allows itself and its subdomains (OBS serves buckets as ``bucket.obs.<region>...``),
    compared case-insensitively on whole labels: ``evilobs.eu-de.otc.t-systems.com`` does not
    match ``obs.eu-de.otc.t-systems.com``. IP address entries match only exactly.
    """
    h = host.strip().lower().rstrip(".")
    if not h:
        return False
    for entry in allowed:
        e = _bare(entry)
        if not e:
            continue
        if h == e:
            return True
        if not _is_ip(e) and h.endswith("." + e):
            return True
    return False
