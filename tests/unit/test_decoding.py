"""Content-Encoding is undone exactly, in bounded pieces, and an incomplete stream is never accepted."""

from __future__ import annotations

import gzip
import zlib

import pytest

from harvester.cloud.decoding import (
    BodyDecoder,
    CorruptEncoding,
    TruncatedEncoding,
    UnsupportedEncoding,
    parse_codings,
)

LOG = b"".join(
    b"1:M 27 Nov 2026 00:%02d:00.000 * Background saving started by pid %d\n" % (i % 60, i)
    for i in range(3000)
)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def decode(codings: tuple[str, ...], body: bytes, *, feed: int = 7, piece: int = 4096) -> list[bytes]:
    decoder = BodyDecoder(codings, max_piece=piece)
    out: list[bytes] = []
    for at in range(0, len(body), feed):
        out.extend(decoder.feed(body[at : at + feed]))
    out.extend(decoder.finish())
    return out


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", lambda d: gzip.compress(d, mtime=0)),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),  # what some servers send as "deflate"
    ],
)
@pytest.mark.parametrize("feed", [1, 7, 65536])
def test_encoded_bodies_decode_to_the_log_text(coding: str, encode: object, feed: int) -> None:
    """Whatever the chunking on the wire, the decoded bytes are exactly the log, in bounded pieces."""
    assert callable(encode)
    pieces = decode((coding,), encode(LOG), feed=feed, piece=4096)
    assert b"".join(pieces) == LOG
    assert max(len(p) for p in pieces) <= 4096


def test_concatenated_gzip_members_are_one_body() -> None:
    """RFC 1952 allows several members; all of them are the content."""
    body = gzip.compress(LOG[:1000], mtime=0) + gzip.compress(LOG[1000:], mtime=0)
    assert b"".join(decode(("gzip",), body)) == LOG


def test_zero_padding_after_the_stream_is_tolerated_but_other_trailing_data_is_not() -> None:
    """Zeros after the gzip trailer are padding; anything else means the body is not what it claims."""
    body = gzip.compress(LOG, mtime=0)
    assert b"".join(decode(("gzip",), body + b"\0" * 10)) == LOG
    with pytest.raises(CorruptEncoding, match="after the end"):
        decode(("gzip",), body + b"garbage")


@pytest.mark.parametrize("cut", [1, 10, 100, -9, -1])
def test_a_cut_gzip_stream_is_truncated_not_complete(cut: int) -> None:
    """A body that ends before the gzip trailer raises at finish, so it is retried, never archived."""
    body = gzip.compress(LOG, mtime=0)
    with pytest.raises(TruncatedEncoding):
        decode(("gzip",), body[:cut])


def test_a_one_byte_deflate_body_is_truncated() -> None:
    """Too short to even tell zlib from raw deflate: incomplete."""
    with pytest.raises(TruncatedEncoding):
        decode(("deflate",), b"x")


def test_corrupt_data_is_reported_as_corrupt() -> None:
    """Bytes that are not gzip at all fail with a short reason."""
    with pytest.raises(CorruptEncoding, match="invalid gzip data"):
        decode(("gzip",), b"this is not gzip, just text" * 10)


def test_an_empty_body_decodes_to_nothing() -> None:
    """Zero bytes with a Content-Encoding header are an empty file, not an error."""
    assert decode(("gzip",), b"") == []


def test_chained_codings_are_undone_in_reverse_order() -> None:
    """``Content-Encoding: deflate, gzip`` means deflated first, then gzipped."""
    body = gzip.compress(zlib.compress(LOG), mtime=0)
    assert b"".join(decode(parse_codings("deflate, gzip"), body)) == LOG


def test_a_highly_compressible_body_still_comes_in_bounded_pieces() -> None:
    """A small body that inflates a lot never yields more than max_piece at once."""
    zeros = b"\0" * (4 * 1024 * 1024)
    pieces = decode(("gzip",), gzip.compress(zeros, mtime=0), feed=1 << 20, piece=65536)
    assert sum(len(p) for p in pieces) == len(zeros)
    assert max(len(p) for p in pieces) <= 65536


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ()),
        ("", ()),
        ("identity", ()),
        ("GZIP", ("gzip",)),
        ("x-gzip", ("gzip",)),
        (" gzip , identity ", ("gzip",)),
        ("deflate, gzip", ("deflate", "gzip")),
    ],
)
def test_content_encoding_headers_are_read_tolerantly(header: str | None, expected: tuple[str, ...]) -> None:
    """Case, spacing, aliases and identity do not matter."""
    assert parse_codings(header) == expected


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, compress"])
def test_codings_we_cannot_undo_are_refused(header: str) -> None:
    """An encoding we cannot decode is an error naming it, never an archive of opaque bytes."""
    with pytest.raises(UnsupportedEncoding, match="unsupported Content-Encoding"):
        parse_codings(header)
