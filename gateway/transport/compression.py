"""Content codings, one implementation for every transport: a request body (HTTP `Content-Encoding`)
or message (gRPC `grpc-encoding`) inflated under a size limit, and one compressed from the pieces it
is queued as, without joining them first.

Inflating stops as soon as the output would pass the limit, so a small compressed bomb is refused
without being inflated past it. (No snappy: nothing the gateway speaks to sends it unasked, and it
would be a dependency of its own.)
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import zstandard

# The codings both inflated and compressed here, besides identity.
ENCODINGS = ("gzip", "deflate", "zstd")
# Every Content-Encoding `decompress` takes (lower case, no spaces around it).
DECODED = frozenset({"", "identity", "x-gzip", *ENCODINGS})

Piece = bytes | bytearray | memoryview


class BodyTooLarge(Exception):
    """Inflated, the body or message would pass its size limit."""


class BadEncoding(Exception):
    """Bytes that do not inflate as their coding says, or a coding not supported here."""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate `body`, refusing as soon as the output would pass `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        # deflate on the wire is usually zlib-wrapped; some clients send it raw.
        if encoding == "deflate":
            wbits = zlib.MAX_WBITS if body[:1] == b"x" else -zlib.MAX_WBITS
        else:
            wbits = 16 + zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise BadEncoding(f"invalid {encoding} body: {exc}") from exc
        if len(out) > limit:
            raise BodyTooLarge()
        if not d.eof:
            raise BadEncoding(f"truncated {encoding} body")
        return out
    if encoding == "zstd":
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(body)
            out = reader.read(limit + 1)
            while len(out) <= limit:
                more = reader.read(limit + 1 - len(out))
                if not more:
                    break
                out += more
        except zstandard.ZstdError as exc:
            raise BadEncoding(f"invalid zstd body: {exc}") from exc
        if len(out) > limit:
            raise BodyTooLarge()
        return out
    raise BadEncoding(f"unsupported Content-Encoding {encoding!r} (want gzip, deflate or zstd)")


def compress(pieces: Sequence[Piece], encoding: str, level: int | None = None) -> bytes:
    """The pieces' concatenation compressed with `encoding` (one of ENCODINGS), without joining them
    first; `level` None is the coding's default (zlib 6, zstd 3)."""
    z: zlib._Compress | zstandard.ZstdCompressionObj
    if encoding == "gzip":
        z = zlib.compressobj(-1 if level is None else level, wbits=16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        z = zlib.compressobj(-1 if level is None else level)
    elif encoding == "zstd":
        # The size goes in the frame header, as ZstdCompressor.compress writes it: some decoders need it.
        size = sum(map(len, pieces))
        z = zstandard.ZstdCompressor(level=3 if level is None else level).compressobj(size=size)
    else:
        raise ValueError(f"cannot compress with {encoding!r} (want one of {', '.join(ENCODINGS)})")
    return b"".join([*map(z.compress, pieces), z.flush()])
