"""HTTP for the harvester: the only module that touches aiohttp.

Two sessions with separate connection pools, because they serve different peers with
different trust: the API session talks to DCS and IAM and carries credentials; the download
session fetches pre-signed OBS links and never sees an auth header. It follows at most
``MAX_REDIRECTS`` redirects, each target checked by the caller (allowed host, https) before it
is requested, and undoes a ``Content-Encoding`` itself (:mod:`harvester.decoding`), counting
the encoded bytes against Content-Length and requiring the compressed stream to end.

Timeouts, each bounding one kind of wait:

    connect_timeout    TCP connect + TLS handshake, for every peer
    stall_timeout      a download: no byte for this long, *including* before the headers
    read_timeout       an API call: no byte for this long, including before the headers
    api_timeout        an API call in all (it is small JSON: minutes mean a hung peer)

Every peer (``scheme://host:port``) has a :class:`~harvester.breaker.Breaker`: connection
failures (refused, DNS, TLS, connect timeout) that persist open it, and calls to that peer then
fail at once with :class:`EndpointUnavailableError`.

What callers can catch (everything aiohttp raises is translated in :meth:`Transport._guarded`
and :func:`_map_errors`):

    ApiError           DCS/IAM answered with an error status (code, message, retry_after)
      AuthError        401 after one credential refresh, or at the IAM login
      (status 502)     a 2xx whose body is not JSON: treated like a bad gateway, so it is retried
    TransportError     no HTTP answer: refused, reset, timed out; also OBS 5xx/429
      EndpointUnavailableError   the peer's breaker is open: the call was not made
    DownloadError      OBS refused the download for good (404, other 4xx, redirect loops,
                       an unsupported Content-Encoding, corrupt compressed data)
      LinkExpiredError       OBS 403: ask DCS for a new link
      IncompleteBodyError    the body ended before Content-Length, or stalled

Messages are built here from the method, the redacted URL and a short reason; the text of
aiohttp's exceptions (which may quote a full signed URL) is never used, and the original
exception is not chained, so not even a traceback can carry a link's query string.
No retry happens here: the engine decides, from the exception class, what to do next.
"""

from __future__ import annotations

import errno
import html
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
from yarl import URL

from harvester import __version__ as _version
from harvester.auth import Authenticator
from harvester.breaker import Breaker, Rejection, endpoint_of
from harvester.decoding import (
    BodyDecoder,
    EncodingProblem,
    TruncatedEncoding,
    UnsupportedEncoding,
    parse_codings,
)
from harvester.errors import (
    ApiError,
    AuthError,
    DownloadError,
    EndpointUnavailableError,
    IncompleteBodyError,
    LinkExpiredError,
    TransportError,
)
from harvester.models import Secret, SignedUrl, redact_url

USER_AGENT = f"dcs-log-harvester/{_version}"
MALFORMED_STATUS = 502  # a 2xx with an unreadable body is reported as a bad gateway: retryable
MAX_ERROR_TEXT = 200
MAX_ERROR_BODY = 64 * 1024
DNS_CACHE_SECONDS = 300
TOKEN_LIFETIME = timedelta(hours=24)
API_READ_TIMEOUT = 60.0  # no byte of an API answer for this long (headers included): give up
API_TIMEOUT = 120.0  # one API call in all
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without a network)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def _code_text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return _one_line(str(value))


def parse_error_body(body: bytes) -> tuple[str, str]:
    """``(error_code, error_msg)`` from whatever an error answer carried.

    DCS/APIG send ``{"error_code", "error_msg"}`` (codes like ``DCS.4800`` or legacy numbers),
    IAM sends ``{"error": {"code", "message"}}``, and a gateway may send HTML or nothing.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return "", ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = _code_text(data.get("error_code") or data.get("errorCode") or data.get("code"))
        msg = _code_text(data.get("error_msg") or data.get("errorMsg") or data.get("message"))
        nested = data.get("error")
        if isinstance(nested, dict):
            code = code or _code_text(nested.get("code") or nested.get("error_code"))
            msg = msg or _code_text(nested.get("message") or nested.get("error_msg") or nested.get("title"))
        elif isinstance(nested, str):
            msg = msg or _one_line(nested)
        return code, msg
    if data is not None:
        return "", _one_line(text)
    title = _TITLE.search(text)
    if title:
        return "", _one_line(html.unescape(_TAG.sub(" ", title.group(1))))
    return "", _one_line(html.unescape(_TAG.sub(" ", text)))


_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


def parse_obs_error(body: bytes) -> tuple[str, str]:
    """``(Code, Message)`` of an OBS/S3 XML error; other elements may echo the signature, so skip them."""
    text = body.decode("utf-8", errors="replace")
    code = _XML_CODE.search(text)
    message = _XML_MESSAGE.search(text)
    return (
        _one_line(html.unescape(code.group(1))) if code else "",
        _one_line(html.unescape(message.group(1))) if message else "",
    )


def encode_query(params: Mapping[str, str]) -> str:
    """RFC 3986 encoding, the same the AK/SK signer applies, so the wire and the signature agree."""
    return "&".join(f"{quote(str(k), safe='~')}={quote(str(v), safe='~')}" for k, v in params.items())


def with_query(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{encode_query(params)}"


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
        return f"TLS certificate rejected ({_one_line(str(detail))})"
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


@contextmanager
def _map_errors(what: str, method: str, safe_url: str) -> Iterator[None]:
    """Translate third-party network failures into :class:`TransportError`, in one place."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        prefix = f"{what}: " if what else ""
        raise TransportError(f"{prefix}{method} {safe_url}: {_reason(exc)}") from None


def _unavailable(prefix: str, method: str, safe: str, rejection: Rejection) -> EndpointUnavailableError:
    return EndpointUnavailableError(
        f"{prefix}{method} {safe}: {rejection.message()}",
        endpoint=rejection.endpoint,
        cause=f"{rejection.cause} ({rejection.failures} connection attempts over {rejection.outage:.0f} s)",
    )


def _api_error(
    status: int, body: bytes, headers: Mapping[str, str], *, what: str, auth: bool = False
) -> ApiError:
    code, msg = parse_error_body(body)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    cls = AuthError if auth else ApiError
    return cls(status, code, msg, what=what, retry_after=retry_after)


def _parse_json(status: int, body: bytes, *, what: str) -> Any:
    if status == 204 or not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(MALFORMED_STATUS, "", f"malformed JSON response (HTTP {status})", what=what) from None


# --------------------------------------------------------------------------------------------
# Downloads


class Download:
    """An OBS answer whose headers arrived; the body is read with :meth:`chunks`.

    ``content_length`` and ``bytes_read`` count the bytes on the wire, which for an encoded
    body are the compressed ones; :meth:`chunks` yields the decoded log text.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        url: SignedUrl,
        *,
        chunk_size: int,
        stall_timeout: float,
        codings: tuple[str, ...] = (),
    ) -> None:
        self._response = response
        self._url = url
        self._chunk_size = chunk_size
        self._stall = stall_timeout
        self.status = response.status
        self.content_length: int | None = response.content_length
        self.etag: str | None = response.headers.get("ETag")
        self.codings = codings
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"Download({self._url.redacted!r}, status={self.status}, content_length={self.content_length})"

    async def chunks(self) -> AsyncIterator[bytes]:
        """The (decoded) body in chunks; raises unless it is complete and arrived without a stall.

        Complete means: as many bytes as Content-Length announced, when it did; the chunked
        terminator, when the body was chunked (aiohttp raises otherwise); and, for an encoded
        body, a compressed stream that reached its end.
        """
        decoder = BodyDecoder(self.codings, max_piece=self._chunk_size) if self.codings else None
        async for raw in self._raw():
            if decoder is None:
                yield raw
                continue
            for piece in self._decoded(decoder.feed, raw):
                yield piece
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise IncompleteBodyError(
                f"GET {self._url.redacted}: body ended after {self.bytes_read} of {self.content_length} bytes"
            )
        if decoder is not None:
            for piece in self._decoded(lambda _: decoder.finish(), b""):
                yield piece

    def _decoded(self, step: Callable[[bytes], Iterator[bytes]], data: bytes) -> Iterator[bytes]:
        safe = self._url.redacted
        coding = "+".join(self.codings)
        try:
            yield from step(data)
        except TruncatedEncoding as exc:
            raise IncompleteBodyError(f"GET {safe}: {exc} after {self.bytes_read} bytes") from None
        except EncodingProblem as exc:
            raise DownloadError(f"GET {safe}: cannot decode the {coding} body: {exc}") from None

    async def _raw(self) -> AsyncIterator[bytes]:
        it = self._response.content.iter_chunked(self._chunk_size).__aiter__()
        safe = self._url.redacted
        while True:
            try:
                with anyio.fail_after(self._stall):
                    chunk = await it.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise IncompleteBodyError(
                    f"GET {safe}: no data for {self._stall:g} s after {self.bytes_read} bytes"
                ) from None
            except aiohttp.ClientPayloadError:
                raise IncompleteBodyError(
                    f"GET {safe}: body ended after {self.bytes_read} of {self._expected()} bytes"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(f"GET {safe}: {_reason(exc)} after {self.bytes_read} bytes") from None
            self.bytes_read += len(chunk)
            yield chunk

    def _expected(self) -> str:
        return str(self.content_length) if self.content_length is not None else "unknown"


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
    def _guarded(self, url: URL, what: str, method: str, safe: str, *, waiting: str) -> Iterator[None]:
        """One attempt to reach ``url``: through its breaker, with failures as one safe line.

        ``waiting`` names the timeout that bounds the wait for an answer, for the message.
        """
        prefix = f"{what}: " if what else ""
        breaker = self.breaker(url)
        rejection = breaker.allow()
        if rejection is not None:
            raise _unavailable(prefix, method, safe, rejection)
        started = self._clock()
        try:
            yield
        except aiohttp.SocketTimeoutError:
            breaker.succeeded()  # connected, then nothing came back
            raise TransportError(f"{prefix}{method} {safe}: no response within {waiting}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            cause = connection_failure(exc)
            if cause is None:
                breaker.succeeded()
                raise TransportError(f"{prefix}{method} {safe}: {_reason(exc)}") from None
            opened = breaker.failed(cause, started=started)
            if opened is not None:
                raise _unavailable(prefix, method, safe, opened) from None
            raise TransportError(
                f"{prefix}{method} {safe}: {_reason(exc)}", endpoint=breaker.endpoint, cause=cause
            ) from None
        except BaseException:
            breaker.abandoned()
            raise
        breaker.succeeded()

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

    # ---------------------------------------------------------------- API (DCS, IAM)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        what: str,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One request, read to the end; the URL is sent exactly as signed (``encoded=True``)."""
        session = self._session("api")
        safe = redact_url(url)
        target = URL(url, encoded=True)
        waiting = f"{self.read_timeout:g} s"
        with self._guarded(target, what, method, safe, waiting=waiting):
            async with session.request(
                method,
                target,
                headers=dict(headers),
                data=body or None,
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                return resp.status, data, resp.headers

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        auth: Authenticator | None,
        what: str,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """One authenticated API call: ``(status, parsed JSON or None)`` for a status in ``ok``.

        A 401 gets exactly one resend, and only if the authenticator says fresh credentials
        exist; this is not retry policy but part of authenticating.
        """
        full = with_query(url, params)
        method = method.upper()
        body = b""
        refreshed = False
        while True:
            headers = await auth.headers(method, full, body) if auth is not None else {}
            status, data, resp_headers = await self._send(method, full, headers=headers, body=body, what=what)
            if status == 401 and auth is not None and not refreshed:
                refreshed = True
                if await auth.refresh_after_401(headers):
                    continue
            break
        if status in ok:
            return status, _parse_json(status, data, what=what)
        if 200 <= status < 300:
            raise ApiError(status, "", f"unexpected HTTP status {status}", what=what)
        raise _api_error(status, data, resp_headers, what=what, auth=status == 401)

    async def iam_login(
        self,
        iam_endpoint: str,
        username: str,
        password: Secret,
        domain: str,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
    ) -> tuple[Secret, datetime]:
        """An IAM token scoped to one project (contract 5.1): ``(token, expires_at)``."""
        token, body, before = await self._iam_login(
            iam_endpoint, username, password, domain, project_id=project_id, project_name=project_name
        )
        return token, _token_expiry(body, before)

    async def iam_project_id(
        self, iam_endpoint: str, username: str, password: Secret, domain: str, *, project_name: str
    ) -> str:
        """The id of a project named in the config: DCS paths need it, IAM's token body has it."""
        _, body, _ = await self._iam_login(
            iam_endpoint, username, password, domain, project_name=project_name
        )
        project = body.get("token", {}).get("project", {}) if isinstance(body, dict) else {}
        project_id = project.get("id") if isinstance(project, dict) else None
        if not isinstance(project_id, str) or not project_id:
            raise ApiError(
                MALFORMED_STATUS, "", "IAM token has no project id", what=f"resolve project {project_name!r}"
            )
        return project_id

    async def _iam_login(
        self,
        iam_endpoint: str,
        username: str,
        password: Secret,
        domain: str,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
    ) -> tuple[Secret, Any, datetime]:
        if not project_id and not project_name:
            raise ValueError("an IAM token needs a project scope: give project_id or project_name")
        project = {"id": project_id} if project_id else {"name": project_name}  # the id is unambiguous
        payload = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": username, "password": password.reveal(), "domain": {"name": domain}}
                    },
                },
                "scope": {"project": project},
            }
        }
        what = f"IAM login of user {username!r}"
        url = _iam_tokens_url(iam_endpoint)
        before = datetime.now(UTC)
        status, data, headers = await self._send(
            "POST",
            url,
            headers={"Content-Type": "application/json;charset=utf8"},
            body=json.dumps(payload).encode(),
            what=what,
        )
        if status not in (200, 201):
            raise _api_error(status, data, headers, what=what, auth=status == 401)
        token = headers.get("X-Subject-Token")
        if not token:
            raise ApiError(MALFORMED_STATUS, "", "IAM answered without X-Subject-Token", what=what)
        try:
            body = _parse_json(status, data, what=what)
        except ApiError:
            body = None  # the token is in the header; an unreadable body only costs us its expiry
        return Secret(token), body, before

    def login_fn(
        self,
        iam_endpoint: str,
        username: str,
        password: Secret,
        domain: str,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
    ) -> _Login:
        """A zero-argument login for :class:`harvester.auth.TokenProvider`."""
        return _Login(self, iam_endpoint, username, password, domain, project_id, project_name)

    # ---------------------------------------------------------------- downloads (OBS)

    def open_download(
        self, url: SignedUrl, *, chunk_size: int, follow: Callable[[SignedUrl], None] | None = None
    ) -> AbstractAsyncContextManager[Download]:
        """GET a signed link; the context yields once the status and headers are in and are 200.

        ``follow`` vets every redirect target before it is requested (it raises to refuse one);
        without it a redirect fails the download, as any other unexpected status does.
        """
        return self._open_download(url, chunk_size, follow)

    @asynccontextmanager
    async def _open_download(
        self, url: SignedUrl, chunk_size: int, follow: Callable[[SignedUrl], None] | None
    ) -> AsyncIterator[Download]:
        resp, current = await self._get_following(url, follow)
        safe = current.redacted
        try:
            if resp.status != 200:
                with _map_errors("download", "GET", safe):
                    data = await resp.content.read(MAX_ERROR_BODY)
                _raise_download_error(resp.status, data, resp.headers, safe)
            try:
                codings = parse_codings(resp.headers.get("Content-Encoding"))
            except UnsupportedEncoding as exc:
                raise DownloadError(f"GET {safe}: {exc}") from None
            yield Download(
                resp, current, chunk_size=chunk_size, stall_timeout=self.stall_timeout, codings=codings
            )
        finally:
            # close, not release: a body we did not read to the end must not be reused.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    async def _get_following(
        self, url: SignedUrl, follow: Callable[[SignedUrl], None] | None
    ) -> tuple[aiohttp.ClientResponse, SignedUrl]:
        """The first answer that is not a redirect we may follow, and the link that gave it.

        Redirects are followed by hand, not by aiohttp, so that each target is vetted (host,
        scheme) before a signed query string is sent to it, and the hops stay bounded.
        """
        session = self._session("obs")
        waiting = f"{self.stall_timeout:g} s (download.stall_timeout)"
        current = url
        for hops in range(MAX_REDIRECTS + 1):
            target = URL(current.reveal(), encoded=True)
            safe = current.redacted
            with self._guarded(target, "download", "GET", safe, waiting=waiting):
                resp = await session.get(
                    target, allow_redirects=False, headers={"Accept-Encoding": "identity"}
                )
            if resp.status not in REDIRECT_STATUSES or follow is None:
                return resp, current
            status, location = resp.status, resp.headers.get("Location", "")
            resp.close()
            if not location:
                raise DownloadError(f"GET {safe}: OBS {status} redirect without a Location")
            if hops == MAX_REDIRECTS:
                raise DownloadError(f"GET {safe}: OBS redirected more than {MAX_REDIRECTS} times")
            try:
                current = SignedUrl(str(target.join(URL(location, encoded=True))))
            except ValueError:
                raise DownloadError(f"GET {safe}: OBS {status} redirect to an invalid URL") from None
            follow(current)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _Login:
    """An IAM login bound to its arguments, for :class:`harvester.auth.TokenProvider`."""

    transport: Transport = field(repr=False)
    iam_endpoint: str
    username: str
    password: Secret  # prints as Secret('***')
    domain: str
    project_id: str | None
    project_name: str | None

    async def __call__(self) -> tuple[Secret, datetime]:
        return await self.transport.iam_login(
            self.iam_endpoint,
            self.username,
            self.password,
            self.domain,
            project_id=self.project_id,
            project_name=self.project_name,
        )


def _iam_tokens_url(iam_endpoint: str) -> str:
    """``{iam}/auth/tokens``, tolerating an endpoint given with or without ``/v3``."""
    base = iam_endpoint.rstrip("/")
    if not urlsplit(base).path:
        base += "/v3"
    return f"{base}/auth/tokens"


def _token_expiry(body: Any, obtained: datetime) -> datetime:
    """``token.expires_at``; when absent or unreadable assume the documented 24 h lifetime."""
    raw = body.get("token", {}).get("expires_at") if isinstance(body, dict) else None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return obtained + TOKEN_LIFETIME


def _raise_download_error(status: int, body: bytes, headers: Mapping[str, str], safe: str) -> NoReturn:
    code, message = parse_obs_error(body)
    detail = f"OBS {status}"
    if code:
        detail += f" {code}"
    if message:
        detail += f": {message}"
    text = f"GET {safe}: {detail}"
    if status == 403:
        raise LinkExpiredError(text)
    if status >= 500 or status in (408, 429):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is not None:
            text += f" (Retry-After {retry_after:g} s)"
        raise TransportError(text, retry_after=retry_after)
    raise DownloadError(text)
