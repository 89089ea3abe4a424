"""Undoing ``Content-Encoding`` on a download, so the archive holds the log text itself.

We ask OBS for ``Accept-Encoding: identity``, but an object *stored* gzip-compressed is served
with ``Content-Encoding: gzip`` whatever we ask (contract section 8). Archiving those bytes as
``.log`` would give a manifest that hashes a gzip stream and an archive ``grep`` cannot read.

Why not aiohttp's ``auto_decompress``: the transport must check the body against
``Content-Length``, which counts the *encoded* bytes, and must know that the compressed stream
really ended (a gzip body cut short at a chunk boundary otherwise looks complete). Both need
the encoded bytes and the decoder's end-of-stream flag, so the transport reads the raw body and
feeds it through :class:`BodyDecoder`.

Supported: ``gzip`` (and ``x-gzip``, several members), ``deflate`` (zlib-wrapped, or raw as some
servers send it), ``identity``; chained codings are undone in reverse order. Anything else
(``br``, ``zstd``, ``compress``) is refused rather than archived undecoded. Output comes in
pieces of at most ``max_piece`` bytes, so a highly compressed body never balloons in memory.

Pure: no I/O; unit-tested.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

GZIP_MAGIC = b"\x1f\x8b"
_ALIASES = {"x-gzip": "gzip"}
SUPPORTED = frozenset({"gzip", "deflate"})


class EncodingProblem(ValueError):
    """The body cannot be decoded; ``str()`` is a short reason without any URL."""


class UnsupportedEncoding(EncodingProblem):
    """A coding we cannot undo: the file fails (retrying would get the same bytes)."""


class CorruptEncoding(EncodingProblem):
    """The compressed data is invalid."""


class TruncatedEncoding(EncodingProblem):
    """The body ended before the compressed stream did: a truncated transfer, retry it."""


def parse_codings(header: str | None) -> tuple[str, ...]:
    """The codings of a ``Content-Encoding`` header in the order they were applied.

    ``identity`` and empty entries are dropped, so a plain body gives ``()``.
    """
    if not header:
        return ()
    out: list[str] = []
    for token in header.split(","):
        name = token.strip().lower()
        name = _ALIASES.get(name, name)
        if not name or name == "identity":
            continue
        if name not in SUPPORTED:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {name[:40]!r}")
        out.append(name)
    return tuple(out)


def _zlib_wrapped(head: bytes) -> bool:
    """RFC 1950 header check: deflate method and a header checksum divisible by 31."""
    return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class _Inflater:
    """One coding: zlib's decompressor plus what HTTP servers actually send around it."""

    def __init__(self, coding: str, max_piece: int) -> None:
        self._coding = coding
        self._max = max_piece
        self._d: zlib._Decompress | None = None
        self._head = b""  # deflate: bytes held until we can tell zlib-wrapped from raw

    def _start(self, data: bytes) -> None:
        if self._coding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        else:
            wbits = zlib.MAX_WBITS if _zlib_wrapped(data) else -zlib.MAX_WBITS
        self._d = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None and self._coding == "deflate" and len(self._head) + len(data) < 2:
            self._head += data
            return
        if self._head:
            data, self._head = self._head + data, b""
        drain = False
        while data or drain:
            if self._d is None:
                self._start(data)
            elif self._d.eof:
                if self._coding == "gzip" and data.startswith(GZIP_MAGIC[: len(data)]):
                    self._start(data)  # another gzip member follows (allowed by RFC 1952)
                elif data.strip(b"\0"):
                    raise CorruptEncoding(f"data after the end of the {self._coding} stream")
                else:
                    return  # zero padding after the stream, as some gzip writers leave
            assert self._d is not None
            try:
                piece = self._d.decompress(data, self._max)
            except zlib.error:
                raise CorruptEncoding(f"invalid {self._coding} data") from None
            if piece:
                yield piece
            # A full piece may leave output pending inside zlib even with no input left.
            drain = len(piece) == self._max and not self._d.eof
            data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail

    def finish(self) -> Iterator[bytes]:
        if self._head:
            raise TruncatedEncoding(f"the {self._coding} stream ended after {len(self._head)} byte")
        if self._d is None:
            return  # an empty body: nothing was encoded
        if not self._d.eof:
            try:
                rest = self._d.flush()
            except zlib.error:
                raise CorruptEncoding(f"invalid {self._coding} data") from None
            if rest:
                yield rest
        if not self._d.eof:
            raise TruncatedEncoding(f"the {self._coding} stream is incomplete")


class BodyDecoder:
    """Feed encoded bytes in, get decoded pieces out; :meth:`finish` checks the stream ended."""

    def __init__(self, codings: Sequence[str], *, max_piece: int = 1024 * 1024) -> None:
        # Undo the last coding applied first.
        self._stages = [_Inflater(c, max(1, max_piece)) for c in reversed(codings)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.finish():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)
