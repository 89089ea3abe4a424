"""Downloading a pre-signed OBS link: redirects vetted, refusals typed, the body decoded and checked.

A link's query string is a bearer credential, so a redirect is followed by hand: at most
``MAX_REDIRECTS`` hops, each target handed to the caller's ``follow`` (which raises to refuse
it: wrong host, no https) *before* it is requested. A ``Content-Encoding`` is undone here
(:mod:`~harvester.cloud.decoding`), counting the encoded bytes against Content-Length and
requiring the compressed stream to end, so the archive holds the log text itself.

What OBS's answers mean to the engine:

    DownloadError          OBS refused the download for good (404, other 4xx, redirect
                           loops, an unsupported Content-Encoding, corrupt compressed data)
      LinkExpiredError     403: ask DCS for a new link
      IncompleteBodyError  the body ended before Content-Length, or stalled
    TransportError         OBS 5xx/408/429 (with its Retry-After), or no answer at all
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from yarl import URL

from harvester.cloud.decoding import (
    BodyDecoder,
    EncodingProblem,
    TruncatedEncoding,
    UnsupportedEncoding,
    parse_codings,
)
from harvester.cloud.transport import Stream, Transport
from harvester.cloud.wire import parse_obs_error, parse_retry_after
from harvester.errors import (
    DownloadError,
    HarvesterError,
    IncompleteBodyError,
    LinkExpiredError,
    TransportError,
)
from harvester.models import SignedUrl

MAX_REDIRECTS = 3
MAX_ERROR_BODY = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IDENTITY = {"Accept-Encoding": "identity"}  # OBS may still encode a stored object: see decoding

Follow = Callable[[SignedUrl], None]


def obs_error(status: int, body: bytes, headers: Mapping[str, str], safe: str) -> HarvesterError:
    """The error an OBS answer other than 200 stands for, with OBS's code and message, no query."""
    code, message = parse_obs_error(body)
    detail = f"OBS {status}"
    if code:
        detail += f" {code}"
    if message:
        detail += f": {message}"
    text = f"GET {safe}: {detail}"
    if status == 403:
        return LinkExpiredError(text)
    if status >= 500 or status in (408, 429):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is not None:
            text += f" (Retry-After {retry_after:g} s)"
        return TransportError(text, retry_after=retry_after)
    return DownloadError(text)


class Download:
    """A 200 from OBS; :meth:`chunks` yields the (decoded) log text.

    ``content_length`` and ``bytes_read`` count the bytes on the wire, which for an encoded
    body are the compressed ones.
    """

    def __init__(self, stream: Stream, *, chunk_size: int, codings: tuple[str, ...] = ()) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self.status = stream.status
        self.content_length = stream.content_length
        self.codings = codings

    def __repr__(self) -> str:
        return f"Download({self._stream.url.redacted!r}, content_length={self.content_length})"

    @property
    def bytes_read(self) -> int:
        return self._stream.bytes_read

    async def chunks(self) -> AsyncIterator[bytes]:
        """The (decoded) body in chunks; raises unless it is complete and arrived without a stall.

        Complete means: as many bytes as Content-Length announced, when it did; the chunked
        terminator, when the body was chunked (aiohttp raises otherwise); and, for an encoded
        body, a compressed stream that reached its end.
        """
        decoder = BodyDecoder(self.codings, max_piece=self._chunk_size) if self.codings else None
        async for raw in self._stream.iter_raw():
            if decoder is None:
                yield raw
                continue
            for piece in self._decoded(decoder.feed, raw):
                yield piece
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise IncompleteBodyError(
                f"GET {self._stream.url.redacted}: body ended after {self.bytes_read} "
                f"of {self.content_length} bytes"
            )
        if decoder is not None:
            for piece in self._decoded(lambda _: decoder.finish(), b""):
                yield piece

    def _decoded(self, step: Callable[[bytes], Iterator[bytes]], data: bytes) -> Iterator[bytes]:
        safe = self._stream.url.redacted
        coding = "+".join(self.codings)
        try:
            yield from step(data)
        except TruncatedEncoding as exc:
            raise IncompleteBodyError(f"GET {safe}: {exc} after {self.bytes_read} bytes") from None
        except EncodingProblem as exc:
            raise DownloadError(f"GET {safe}: cannot decode the {coding} body: {exc}") from None


def open_download(
    transport: Transport, url: SignedUrl, *, chunk_size: int, follow: Follow | None = None
) -> AbstractAsyncContextManager[Download]:
    """GET a signed link; the context yields once the status and headers are in and are 200.

    ``follow`` vets every redirect target before it is requested (it raises to refuse one);
    without it a redirect fails the download, as any other unexpected status does.
    """
    return _open(transport, url, chunk_size, follow)


@asynccontextmanager
async def _open(
    transport: Transport, url: SignedUrl, chunk_size: int, follow: Follow | None
) -> AsyncIterator[Download]:
    stream = await _following(transport, url, follow, chunk_size)
    try:
        safe = stream.url.redacted
        if stream.status != 200:
            raise obs_error(stream.status, await stream.read(MAX_ERROR_BODY), stream.headers, safe)
        try:
            codings = parse_codings(stream.headers.get("Content-Encoding"))
        except UnsupportedEncoding as exc:
            raise DownloadError(f"GET {safe}: {exc}") from None
        yield Download(stream, chunk_size=chunk_size, codings=codings)
    finally:
        stream.close()


async def _following(transport: Transport, url: SignedUrl, follow: Follow | None, chunk_size: int) -> Stream:
    """The first answer that is not a redirect we may follow (the link that gave it is its url)."""
    current = url
    for hops in range(MAX_REDIRECTS + 1):
        stream = await transport.open_stream(current, headers=IDENTITY, read_bufsize=chunk_size)
        if stream.status not in REDIRECT_STATUSES or follow is None:
            return stream
        status, location = stream.status, stream.headers.get("Location", "")
        stream.close()
        safe = current.redacted
        if not location:
            raise DownloadError(f"GET {safe}: OBS {status} redirect without a Location")
        if hops == MAX_REDIRECTS:
            raise DownloadError(f"GET {safe}: OBS redirected more than {MAX_REDIRECTS} times")
        try:
            base = URL(current.reveal(), encoded=True)
            current = SignedUrl(str(base.join(URL(location, encoded=True))))
        except ValueError:
            raise DownloadError(f"GET {safe}: OBS {status} redirect to an invalid URL") from None
        follow(current)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
