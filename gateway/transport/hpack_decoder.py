"""An HPACK (RFC 7541) header block decoder for the gRPC server and client.

`hpack.Decoder` (python-hyper) is correct but costs about 36 µs per gRPC request header block: a
Python call, a HeaderTuple and a debug log line per field, and a UTF-8 decode of every name and value
each time. Here a table entry is decoded to `str` once, when it enters the table, so the common block
(all fields indexed but `grpc-timeout`) is a few list lookups. Huffman strings are decoded by
`hpack`'s table, and errors are `hpack`'s exception types, so callers treat both decoders alike.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError, InvalidTableIndexError, InvalidTableSizeError, OversizedHeaderListError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

Header = tuple[str, str]
_ENTRY_OVERHEAD = 32  # RFC 7541 4.1
_MAX_INT_BYTES = 5  # continuation bytes after an integer's prefix (up to about 2**35), as hpack allows


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HPACKDecodingError("Unable to decode headers as UTF-8") from exc


# An entry: (name, value, its size in the table, the name's length in octets).
Entry = tuple[str, str, int, int]
# Indexes 1..61; index 0 is invalid.
_STATIC: list[Entry] = [("", "", 0, 0)] + [
    (_text(n), _text(v), len(n) + len(v) + _ENTRY_OVERHEAD, len(n)) for n, v in HeaderTable.STATIC_TABLE]
_STATIC_LEN = len(_STATIC) - 1


class HeaderDecoder:
    """One connection's decoding context (its dynamic table); `decode(block)` -> [(name, value)]."""

    __slots__ = ("dynamic", "max_header_list_size", "max_size", "max_table_size", "size")

    def __init__(self, max_header_list_size: int, max_table_size: int = 4096) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_table_size = max_table_size  # SETTINGS_HEADER_TABLE_SIZE (we keep the default)
        self.max_size = max_table_size  # what the peer's encoder last chose, at most max_table_size
        self.size = 0
        self.dynamic: deque[Entry] = deque()  # newest first (index 62)

    def decode(self, data: bytes | bytearray) -> list[Header]:
        headers: list[Header] = []
        total = 0
        pos = 0
        n = len(data)
        while pos < n:
            b = data[pos]
            if b & 0x80:  # indexed field
                index, pos = self._int(data, pos, 0x7F)
                name, value, size, _ = self._entry(index)
            elif b & 0x40 or not b & 0x20:  # literal: with incremental indexing (01), or not indexed (0000/0001)
                index, pos = self._int(data, pos, 0x3F if b & 0x40 else 0x0F)
                if index:
                    name, _, _, raw_name_len = self._entry(index)
                else:
                    raw, pos = self._string(data, pos)
                    name, raw_name_len = _text(raw), len(raw)
                raw, pos = self._string(data, pos)
                value = _text(raw)
                size = raw_name_len + len(raw) + _ENTRY_OVERHEAD
                if b & 0x40:
                    self._add((name, value, size, raw_name_len))
            else:  # dynamic table size update (001): only before the block's first field
                if headers:
                    raise HPACKDecodingError("Table size update not at the start of the block")
                start = pos
                new, pos = self._int(data, pos, 0x1F)
                total += pos - start  # a block of nothing but size updates is not free either
                if total > self.max_header_list_size:
                    raise OversizedHeaderListError("A header block of table size updates too long")
                if new > self.max_table_size:
                    raise InvalidTableSizeError(
                        f"Encoder attempted to set table size to {new}, max is {self.max_table_size}")
                self.max_size = new
                self._evict()
                continue
            headers.append((name, value))
            total += size
            if total > self.max_header_list_size:
                raise OversizedHeaderListError(
                    f"A header list larger than {self.max_header_list_size} has been received")
        return headers

    def _entry(self, index: int) -> Entry:
        if 0 < index <= _STATIC_LEN:
            return _STATIC[index]
        i = index - _STATIC_LEN - 1
        if index == 0 or i >= len(self.dynamic):
            raise InvalidTableIndexError(f"Invalid table index {index}")
        return self.dynamic[i]

    def _add(self, entry: Entry) -> None:
        size = entry[2]
        if size > self.max_size:  # RFC 7541 4.4: an entry larger than the table empties it
            self.dynamic.clear()
            self.size = 0
            return
        self.dynamic.appendleft(entry)
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size:
            self.size -= self.dynamic.pop()[2]

    @staticmethod
    def _int(data: bytes | bytearray, pos: int, mask: int) -> tuple[int, int]:
        """The integer whose prefix is the low bits (`mask`) of data[pos]; and the position after it."""
        value = data[pos] & mask
        pos += 1
        if value < mask:
            return value, pos
        shift = 0
        n = len(data)
        for _ in range(_MAX_INT_BYTES):
            if pos >= n:
                raise HPACKDecodingError("Unable to decode HPACK integer: the block ends inside it")
            b = data[pos]
            pos += 1
            value += (b & 0x7F) << shift
            if not b & 0x80:
                return value, pos
            shift += 7
        raise HPACKDecodingError("Unable to decode HPACK integer: too long")

    @classmethod
    def _string(cls, data: bytes | bytearray, pos: int) -> tuple[bytes, int]:
        if pos >= len(data):
            raise HPACKDecodingError("The header block ends before a string")
        huffman = data[pos] & 0x80
        length, pos = cls._int(data, pos, 0x7F)
        end = pos + length
        if end > len(data):
            raise HPACKDecodingError("A string runs past the end of the header block")
        raw = bytes(data[pos:end])
        return (decode_huffman(raw) if huffman else raw), end
