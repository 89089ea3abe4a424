"""A signed link is only followed to an allowed host, over https (loopback excepted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from harvester.archive.store import Archive
from harvester.cloud.transport import Transport
from harvester.engine.download import fetch_to_archive
from harvester.errors import LinkRefusedError
from harvester.models import SignedLink, SignedUrl, redact_url

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def link(url: str) -> SignedLink:
    return SignedLink(SignedUrl(url), NOW + timedelta(hours=24), NOW)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example.com/k?Signature=x", "not in download.allowed_hosts"),
        ("https://evilobs.eu-de.otc.t-systems.com/k?Signature=x", "not in download.allowed_hosts"),
        ("http://bucket.obs.eu-de.otc.t-systems.com/k?Signature=x", "not https"),
    ],
)
async def test_links_to_untrusted_hosts_or_in_clear_text_are_refused(
    tmp_path: Path, url: str, why: str
) -> None:
    """Nothing is fetched and nothing is written when a link fails the host or scheme check."""
    archive = Archive(tmp_path / "archive")
    with pytest.raises(LinkRefusedError, match=why) as caught:
        await fetch_to_archive(
            Transport(),
            link(url),
            archive,
            "2026-11-26",
            PurePosixPath("p/i/g/f.log"),
            allowed_hosts=["obs.eu-de.otc.t-systems.com"],
            chunk_size=65536,
        )
    assert "Signature" not in str(caught.value)
    assert not (tmp_path / "archive").exists()


def test_redaction_survives_a_malformed_port() -> None:
    """A link with an impossible port is still printed safely instead of crashing the run."""
    assert redact_url("https://h.example.com:99999/x.log?Signature=abc") == "https://h.example.com/x.log"
