"""HTTP for the harvester: the only module that touches aiohttp, and it knows no API.

Like httpx's transport it does two things: send a request and hand back the whole answer
(:meth:`Transport.send`), or open one whose body the caller streams
(:meth:`Transport.open_stream`). What a status means, how a request is authenticated, where a
link may be followed and what to do after a failure are its callers' business
(:mod:`~harvester.cloud.api`, :mod:`~harvester.cloud.iam`, :mod:`~harvester.cloud.obs`, the
engine). No retry happens here.

Two sessions with separate connection pools, because they serve peers with different trust:
the API session talks to DCS and IAM and carries credentials; the download session fetches
pre-signed links, never sees an auth header, follows no redirect by itself (the caller vets
each target before a signed query string goes there) and leaves ``Content-Encoding`` to the
caller, who must count the encoded bytes against Content-Length.

Timeouts, each bounding one kind of wait:

    connect_timeout    TCP connect + TLS handshake, for every peer
    stall_timeout      a download: no byte for this long, *including* before the headers
    read_timeout       an API call: no byte for this long, including before the headers
    api_timeout        an API call in all (it is small JSON: minutes mean a hung peer)

Every peer (``scheme://host:port``) has a :class:`~harvester.cloud.breaker.Breaker`:
connection failures (refused, DNS, TLS, connect timeout) that persist open it, and calls to
that peer then fail at once with :class:`EndpointUnavailableError`.

Everything aiohttp (or the OS) raises is translated in one place, :func:`map_errors`:

    TransportError              no HTTP answer: refused, reset, timed out
      EndpointUnavailableError  the peer's breaker is open: the call was not made
    IncompleteBodyError         a streamed body ended before Content-Length, or stalled

Messages are built from the method, the redacted URL and a short reason; the text of
aiohttp's exceptions (which may quote a full signed URL) is never used, and the original
exception is not chained, so not even a traceback can carry a link's query string.
"""

from __future__ import annotations

import errno
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import anyio
from yarl import URL

from harvester import __version__ as _version
from harvester.cloud.breaker import Breaker, Rejection, endpoint_of
from harvester.cloud.wire import one_line
from harvester.errors import EndpointUnavailableError, HarvesterError, IncompleteBodyError, TransportError
from harvester.models import SignedUrl, redact_url

USER_AGENT = f"dcs-log-harvester/{_version}"
DNS_CACHE_SECONDS = 300
API_READ_TIMEOUT = 60.0  # no byte of an API answer for this long (headers included): give up
API_TIMEOUT = 120.0  # one API call in all


# --------------------------------------------------------------------------------------------
# Failures, in one place


def connection_failure(exc: BaseException) -> str | None:
    """The cause when ``exc`` means no connection could be made at all, else None.

    Refused, DNS, TLS and connect timeouts say the peer is unreachable; a reset, a stall or a
    disconnect after connecting say it is there but struggling, which is the retry policy's
    business and not the circuit breaker's.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorDNSError):
        return _reason(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_reason(exc.os_error)
    return None


def _reason(exc: BaseException) -> str:
    """A short description of a network failure that never quotes a URL."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = getattr(exc.certificate_error, "verify_message", "") or "not trusted"
        return f"TLS certificate rejected ({one_line(str(detail))})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "cannot resolve the host name"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response body incomplete"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({_os_reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        reason = _os_reason(exc)
        return reason if reason.startswith("connection") else f"connection failed ({reason})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return type(exc).__name__


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET:
        return "connection reset by peer"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno is not None:
        return errno.errorcode.get(exc.errno, type(exc).__name__)
    return type(exc).__name__


def label(what: str, method: str, safe_url: str) -> str:
    """How a failure message names its request: ``"<what>: GET https://host/path"``."""
    return f"{what}: {method} {safe_url}" if what else f"{method} {safe_url}"


class BodyProgress(Protocol):
    """How far a streamed body got, for the message when it breaks off."""

    @property
    def bytes_read(self) -> int: ...

    @property
    def stall_timeout(self) -> float: ...

    def expected(self) -> str: ...


@contextmanager
def map_errors(
    where: str,
    *,
    waiting: str = "",
    breaker: Breaker | None = None,
    started: float = 0.0,
    body: BodyProgress | None = None,
) -> Iterator[None]:
    """Translate every network failure inside the block into one of our errors, in one line.

    ``where`` names the request (see :func:`label`). Reaching a peer passes its ``breaker``
    (with when the attempt ``started``) and ``waiting``, the timeout that bounds the wait for
    an answer; reading a streamed body passes its ``body`` progress instead. Anything that is
    not a network failure (a bug, a cancellation) passes through untouched.
    """
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _translated(exc, where, waiting=waiting, breaker=breaker, started=started, body=body) from None
    except BaseException:
        if breaker is not None:
            breaker.abandoned()  # cancelled before we knew whether the peer answered
        raise
    if breaker is not None:
        breaker.succeeded()


def _translated(
    exc: BaseException,
    where: str,
    *,
    waiting: str,
    breaker: Breaker | None,
    started: float,
    body: BodyProgress | None,
) -> HarvesterError:
    if body is not None:
        got = body.bytes_read
        if isinstance(exc, TimeoutError):
            return IncompleteBodyError(f"{where}: no data for {body.stall_timeout:g} s after {got} bytes")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return IncompleteBodyError(f"{where}: body ended after {got} of {body.expected()} bytes")
        return TransportError(f"{where}: {_reason(exc)} after {got} bytes")
    cause = connection_failure(exc)
    if breaker is not None and cause is not None:
        opened = breaker.failed(cause, started=started)
        if opened is not None:
            return _unavailable(where, opened)
        return TransportError(f"{where}: {_reason(exc)}", endpoint=breaker.endpoint, cause=cause)
    if breaker is not None:
        breaker.succeeded()  # connected: a stall or a reset afterwards is not an outage
    if waiting and isinstance(exc, aiohttp.SocketTimeoutError):
        return TransportError(f"{where}: no response within {waiting}")
    return TransportError(f"{where}: {_reason(exc)}")


def _unavailable(where: str, rejection: Rejection) -> EndpointUnavailableError:
    return EndpointUnavailableError(
        f"{where}: {rejection.message()}",
        endpoint=rejection.endpoint,
        cause=f"{rejection.cause} ({rejection.failures} connection attempts over {rejection.outage:.0f} s)",
    )


# --------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True, slots=True)
class Response:
    """An answer read to its end."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


class Stream:
    """An answer whose status and headers arrived; the caller reads its body in pieces.

    ``content_length`` and ``bytes_read`` count the bytes on the wire (for an encoded body,
    the encoded ones). Close it with :meth:`close` once done, read or not.
    """

    def __init__(
        self, response: aiohttp.ClientResponse, url: SignedUrl, *, what: str, stall_timeout: float
    ) -> None:
        self._response = response
        self._what = what
        self.url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self.content_length: int | None = response.content_length
        self.stall_timeout = stall_timeout
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"Stream({self.url.redacted!r}, status={self.status}, content_length={self.content_length})"

    def expected(self) -> str:
        return str(self.content_length) if self.content_length is not None else "unknown"

    async def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body: an error answer's explanation."""
        with map_errors(label(self._what, "GET", self.url.redacted)):
            return await self._response.content.read(limit)

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """The body in the pieces the socket delivered; ``stall_timeout`` without a byte ends it.

        Each piece is the ``bytes`` aiohttp already holds, handed on as it is: reading a fixed
        size (``iter_chunked``) would join several pieces into a new object, one more copy of
        every byte on the event loop. How much arrives before the socket is paused is the
        request's ``read_bufsize`` (see :meth:`Transport.open_stream`).

        The stall clock is the download session's ``sock_read`` (``stall_timeout``): aiohttp
        restarts it on every byte received and stops it while reading is paused because *we*
        have not consumed the buffer yet, so a slow disk is never mistaken for a stalled peer.
        No per-piece timer of our own is needed on top of it.
        """
        content = self._response.content
        with map_errors(f"GET {self.url.redacted}", body=self):
            while True:
                piece, chunk_end = await content.readchunk()
                if not piece:
                    if chunk_end:
                        continue  # the end of an HTTP chunk: more may follow
                    return
                self.bytes_read += len(piece)
                yield piece

    def close(self) -> None:
        """Hand the connection back; one whose body was not read to the end is dropped, not reused."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


# --------------------------------------------------------------------------------------------
# The transport


class Transport:
    """Owns the HTTP sessions; use as ``async with Transport(...) as t``."""

    def __init__(
        self,
        *,
        api_connections: int = 16,
        download_connections: int = 8,
        connect_timeout: float = 10.0,
        read_timeout: float = API_READ_TIMEOUT,
        api_timeout: float = API_TIMEOUT,
        stall_timeout: float = 60.0,
        breaker: Callable[[str], Breaker] = Breaker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_connections = api_connections
        self.download_connections = download_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.api_timeout = api_timeout
        self.stall_timeout = stall_timeout
        self._new_breaker = breaker
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._api: aiohttp.ClientSession | None = None
        self._obs: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return (
            f"Transport(api_connections={self.api_connections}, "
            f"download_connections={self.download_connections})"
        )

    def _timeout(self, *, read: float, total: float | None) -> aiohttp.ClientTimeout:
        # sock_connect, not connect: aiohttp's ``connect`` also counts the wait for a free pooled
        # connection, which under load is queueing, not a dead peer. sock_read runs from the
        # moment the request is sent, so it bounds the wait for the headers as well as each
        # wait for more body.
        return aiohttp.ClientTimeout(total=total, sock_connect=self.connect_timeout, sock_read=read)

    def breaker(self, url: URL) -> Breaker:
        """The circuit breaker of the peer ``url`` points to (one per scheme, host and port)."""
        key = endpoint_of(url.scheme, url.host or "", url.port)
        found = self._breakers.get(key)
        if found is None:
            found = self._breakers[key] = self._new_breaker(key)
        return found

    @contextmanager
    def _attempt(self, url: URL, where: str, *, waiting: str) -> Iterator[None]:
        """One attempt to reach ``url``: through its breaker, failures mapped by :func:`map_errors`."""
        breaker = self.breaker(url)
        rejection = breaker.allow()
        if rejection is not None:
            raise _unavailable(where, rejection)
        with map_errors(where, waiting=waiting, breaker=breaker, started=self._clock()):
            yield

    async def __aenter__(self) -> Transport:
        headers = {"User-Agent": USER_AGENT}
        self._api = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.api_connections, ttl_dns_cache=DNS_CACHE_SECONDS),
            timeout=self._timeout(read=self.read_timeout, total=self.api_timeout),
            headers=headers,
            raise_for_status=False,
            trust_env=False,
        )
        self._obs = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.download_connections, ttl_dns_cache=DNS_CACHE_SECONDS),
            # No total: a multi-GiB log may take hours; stall_timeout bounds every silence.
            timeout=self._timeout(read=self.stall_timeout, total=None),
            headers=headers,
            auto_decompress=False,
            raise_for_status=False,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close both pools; shielded, because a run stopped by a signal must still close them."""
        api, obs, self._api, self._obs = self._api, self._obs, None, None
        with anyio.CancelScope(shield=True):
            for session in (api, obs):
                if session is not None:
                    await session.close()

    def _session(self, kind: str) -> aiohttp.ClientSession:
        session = self._api if kind == "api" else self._obs
        if session is None:
            raise RuntimeError("Transport is not open: use 'async with Transport(...)'")
        return session

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        what: str = "",
    ) -> Response:
        """One API request (DCS, IAM), read to the end, whatever its status.

        The URL is sent exactly as given (``encoded=True``): it is what was signed.
        """
        session = self._session("api")
        target = URL(url, encoded=True)
        with self._attempt(target, label(what, method, redact_url(url)), waiting=f"{self.read_timeout:g} s"):
            async with session.request(
                method, target, headers=dict(headers or {}), data=body or None, allow_redirects=False
            ) as resp:
                return Response(resp.status, resp.headers, await resp.read())

    async def open_stream(
        self,
        url: SignedUrl,
        *,
        headers: Mapping[str, str] | None = None,
        what: str = "download",
        read_bufsize: int | None = None,
    ) -> Stream:
        """GET a pre-signed link on the download session; returns once status and headers are in.

        A redirect comes back as it is, for the caller to vet and follow. ``read_bufsize``: body
        bytes buffered before reading from the socket pauses (aiohttp pauses above twice this
        and resumes below it); aiohttp's 64 KiB default pauses and resumes the socket on nearly
        every read of a fast transfer.
        """
        session = self._session("obs")
        target = URL(url.reveal(), encoded=True)
        waiting = f"{self.stall_timeout:g} s (download.stall_timeout)"
        with self._attempt(target, label(what, "GET", url.redacted), waiting=waiting):
            resp = await session.get(
                target, allow_redirects=False, headers=dict(headers or {}), read_bufsize=read_bufsize
            )
        return Stream(resp, url, what=what, stall_timeout=self.stall_timeout)
