"""Our HPACK decoder against python-hyper's `hpack.Decoder`: the same headers from what an encoder
writes (any table size, Huffman or not, never-indexed fields, size updates), and the same verdict,
headers or an HPACKError, on arbitrary bytes, block after block on one connection."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport.hpack_decoder import HeaderDecoder

LIMIT = 64 * 1024
names = st.sampled_from([":method", ":path", ":authority", "content-type", "grpc-timeout", "te", "user-agent",
                         "x-tenant", "authorization", "grpc-accept-encoding", "x-custom-ü"])
values = st.text(max_size=40)
header_lists = st.lists(st.tuples(names, values), max_size=12)


def _both(blocks: list[bytes]) -> None:
    ours, theirs = HeaderDecoder(LIMIT), hpack.Decoder(max_header_list_size=LIMIT)
    for block in blocks:
        try:
            want = [tuple(h) for h in theirs.decode(block)]
        except hpack.HPACKError:
            with pytest.raises(hpack.HPACKError):
                ours.decode(block)
            return  # the connection is over after a compression error
        assert ours.decode(block) == want


@settings(max_examples=300, deadline=None)
@given(lists=st.lists(header_lists, min_size=1, max_size=8), huffman=st.booleans(),
       table=st.sampled_from([0, 64, 256, 4096]), sensitive=st.booleans())
def test_same_headers_as_hpack_from_an_encoder(lists: list[list[tuple[str, str]]], huffman: bool, table: int,
                                               sensitive: bool) -> None:
    enc = hpack.Encoder()
    enc.header_table_size = table  # emits a size update at the start of the next block
    blocks = []
    for headers in lists:
        fields = [hpack.NeverIndexedHeaderTuple(n, v) if sensitive and n == "authorization" else (n, v)
                  for n, v in headers]
        blocks.append(enc.encode(fields, huffman=huffman))
    ours = HeaderDecoder(LIMIT)
    for block, headers in zip(blocks, lists, strict=True):
        assert ours.decode(block) == headers
    _both(blocks)


@settings(max_examples=500, deadline=None)
@given(blocks=st.lists(st.binary(max_size=60), min_size=1, max_size=4))
def test_same_verdict_as_hpack_on_arbitrary_bytes(blocks: list[bytes]) -> None:
    _both(blocks)


@pytest.mark.parametrize("block", [
    b"\x80",                      # index 0
    b"\xff\x80\x80\x80\x80\x80\x80\x80\x01",  # an integer that never ends within bounds
    b"\x40\x05ab",                # a name that runs past the block
    b"\x82\x3f\xe1\x1f",          # a size update after a field
    b"\x3f\xe2\x1f",              # a size update above SETTINGS_HEADER_TABLE_SIZE (4096)
    b"\xbe",                      # a dynamic index with an empty table
    b"\x3f\x80\x80\x80\x80\x80\x00",  # an integer of more continuation bytes than hpack allows
])
def test_malformed_blocks_are_errors(block: bytes) -> None:
    with pytest.raises(hpack.HPACKError):
        HeaderDecoder(LIMIT).decode(block)


def test_header_list_over_the_limit_is_an_error() -> None:
    block = hpack.Encoder().encode([("x-big", "v" * 2000)] * 3)
    assert len(HeaderDecoder(LIMIT).decode(block)) == 3
    with pytest.raises(hpack.OversizedHeaderListError):
        HeaderDecoder(5000).decode(block)


def test_eviction_keeps_indexes_right() -> None:
    enc = hpack.Encoder()
    enc.header_table_size = 100  # room for one or two entries: every block evicts
    dec = HeaderDecoder(LIMIT)
    for i in range(50):
        headers = [("x-a", f"value-{i}"), ("x-b", f"{i}" * 10), ("x-a", f"value-{i}")]
        assert dec.decode(enc.encode(headers)) == headers
    assert dec.size <= 100


def test_a_block_of_size_updates_counts_against_the_limit() -> None:
    with pytest.raises(hpack.OversizedHeaderListError):
        HeaderDecoder(1000).decode(b"\x20" * 2000)
    assert HeaderDecoder(LIMIT).decode(b"\x20" * 10 + b"\x82") == [(":method", "GET")]


def test_never_indexed_field_with_an_indexed_name_stays_out_of_the_table() -> None:
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(":path", "/secret")])
    dec = HeaderDecoder(LIMIT)
    assert dec.decode(block) == [(":path", "/secret")] and not dec.dynamic
