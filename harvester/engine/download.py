"""Stream one signed OBS link into the archive.

The bytes go to ``<name>.part`` beside the final name while storage hashes them; only a body
whose length matches ``Content-Length`` is fsynced and renamed. A truncated or stalled body
raises and its ``.part`` is discarded, so a half file can never be mistaken for a whole one.

A body served with ``Content-Encoding: gzip`` (or deflate) is stored decoded: the archive and its
manifest hold the log text. A redirect is followed only to a host the link itself could have
pointed to (``download.allowed_hosts``, https), vetted before the signed URL is sent there.
The harvester never resumes with ``Range``: a failed transfer starts again from byte 0, which is
also the only safe way to restart an encoded body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import PurePosixPath

from harvester.archive.store import Archive
from harvester.cloud.obs import open_download
from harvester.cloud.transport import Transport
from harvester.config.regions import host_allowed, is_loopback
from harvester.errors import LinkRefusedError
from harvester.models import ArchivedFile, SignedLink, SignedUrl


async def fetch_to_archive(
    transport: Transport,
    link: SignedLink,
    archive: Archive,
    folder: str,
    relpath: PurePosixPath,
    *,
    allowed_hosts: Sequence[str],
    chunk_size: int,
    on_bytes: Callable[[int], None] | None = None,
    on_received: Callable[[], None] | None = None,
) -> ArchivedFile:
    """Download ``link`` to ``folder/relpath`` atomically; returns what landed on disk.

    ``on_received`` is called once the whole body is in and its response closed, before the
    commit's fsync and rename: the caller's download slot (and the connection) can serve the
    next file while the disk makes this one durable.
    """
    check_link(link.url, allowed_hosts)

    def follow(url: SignedUrl) -> None:
        check_link(url, allowed_hosts, verb="redirects to")

    async with AsyncExitStack() as response:
        body = await response.enter_async_context(
            open_download(transport, link.url, chunk_size=chunk_size, follow=follow)
        )
        async with archive.open_part(folder, relpath, expected_size=body.content_length) as part:
            async for chunk in body.chunks():
                await part.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            # chunks() has already raised unless every byte of Content-Length arrived.
            await response.aclose()
            if on_received is not None:
                on_received()
            return await part.commit()


def check_link(url: SignedUrl, allowed_hosts: Sequence[str], *, verb: str = "points to") -> None:
    """Refuse a link (or a redirect target) outside ``download.allowed_hosts`` or without https."""
    if not host_allowed(url.host, allowed_hosts):
        raise LinkRefusedError(
            f"download link {verb} host {url.host!r}, which is not in download.allowed_hosts"
        )
    if url.scheme != "https" and not is_loopback(url.host):
        # The query string is a bearer credential: it must not cross a network in clear text.
        raise LinkRefusedError(f"download link {verb} {url.host!r}, which is not https")
