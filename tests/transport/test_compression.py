"""Content codings (`gateway.transport.compression`): every coding both ways, pieces compressed as
one, and bombs refused without inflating past the limit (measured with tracemalloc)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
import zstandard

from gateway.transport.compression import ENCODINGS, BadEncoding, BodyTooLarge, compress, decompress

DATA = b"otlp " * 1000


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_round_trip(encoding: str) -> None:
    assert decompress(COMPRESSORS[encoding](DATA), encoding, len(DATA)) == DATA
    assert decompress(COMPRESSORS[encoding](DATA), encoding.upper() + " ", len(DATA)) == DATA


def test_raw_deflate_and_identity() -> None:
    assert decompress(_raw_deflate(DATA), "deflate", len(DATA)) == DATA
    assert decompress(DATA, "", 1) == DATA  # the body limit itself is checked before
    assert decompress(DATA, "identity", 1) == DATA


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_one_byte_over_the_limit_is_too_large(encoding: str) -> None:
    with pytest.raises(BodyTooLarge):
        decompress(COMPRESSORS[encoding](DATA), encoding, len(DATA) - 1)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_bomb_is_refused_without_inflating_past_the_limit(encoding: str) -> None:
    limit = 1024 * 1024
    bomb = COMPRESSORS[encoding](bytes(64 * 1024 * 1024))
    assert len(bomb) < limit
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            decompress(bomb, encoding, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit, f"peak {peak} bytes while inflating a 64 MiB bomb with a 1 MiB limit"


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"not compressed", "gzip", "invalid gzip body"),
        (gzip.compress(DATA, mtime=0)[:-30], "gzip", "truncated gzip body"),
        (b"not compressed", "deflate", "invalid deflate body"),
        (b"not compressed", "zstd", "invalid zstd body"),
        (DATA, "br", "unsupported Content-Encoding 'br' (want gzip, deflate or zstd)"),
    ],
)
def test_bad_encodings(body: bytes, encoding: str, message: str) -> None:
    with pytest.raises(BadEncoding) as info:
        decompress(body, encoding, 10 * len(DATA))
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("level", [None, 1])
def test_pieces_compress_as_their_concatenation(encoding: str, level: int | None) -> None:
    pieces = [DATA[:7], bytearray(DATA[7:2000]), memoryview(DATA)[2000:], b""]
    packed = compress(pieces, encoding, level)
    assert decompress(packed, encoding, len(DATA)) == DATA


def test_zstd_frame_carries_the_content_size() -> None:
    packed = compress([DATA[:10], DATA[10:]], "zstd")
    assert zstandard.frame_content_size(packed) == len(DATA)


def test_unknown_coding_is_not_compressed() -> None:
    with pytest.raises(ValueError, match="br"):
        compress([DATA], "br")
