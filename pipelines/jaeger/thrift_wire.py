"""A Thrift reader for the binary and compact protocols, with Apache Thrift Go's (v0.24) rules, which
the Collector decodes with: a field of a known id but another type is skipped; a known list is read as
a list of structs whatever element type its header names; skipping nests at most 64 deep; negative
sizes, sizes over 100 MiB and unknown types fail; a struct missing a required field fails. Only reads:
a `Struct` schema names the fields a caller wants, everything else is skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import PermanentError

STOP, BOOL, BYTE, DOUBLE, I16, I32, I64 = 0, 2, 3, 4, 6, 8, 10
STRING, STRUCT, MAP, SET, LIST, UUID = 11, 12, 13, 14, 15, 16
MAX_SIZE = 100 * 1024 * 1024  # Thrift Go's default max message size, which bounds every string and container
SKIP_DEPTH = 64
_MASK64 = (1 << 64) - 1
# the compact protocol's type nibble -> Thrift type (1 and 2 are bool true and false)
_COMPACT_TYPES = {0: STOP, 1: BOOL, 2: BOOL, 3: BYTE, 4: I16, 5: I32, 6: I64, 7: DOUBLE, 8: STRING, 9: LIST,
                  10: SET, 11: MAP, 12: STRUCT, 13: UUID}


class ThriftError(PermanentError):
    pass


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Reader:
    """What both protocols read; `pos` walks `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ThriftError("thrift: unexpected end of data")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ThriftError("thrift: unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def sized(self, size: int) -> int:
        if size < 0:
            raise ThriftError(f"thrift: negative size {size}")
        if size > MAX_SIZE:
            raise ThriftError(f"thrift: size {size} exceeds the maximum")
        return size

    def container(self, size: int) -> int:
        # Every element that reads takes at least one byte: a longer count cannot be met.
        if self.sized(size) > len(self.data) - self.pos:
            raise ThriftError(f"thrift: container of {size} elements longer than the data")
        return size

    def binary(self) -> bytes:
        return self.take(self.sized(self.length()))

    # the protocol's own encodings
    def length(self) -> int: raise NotImplementedError
    def struct_begin(self) -> None: pass
    def struct_end(self) -> None: pass
    def field_begin(self) -> tuple[int, int]: raise NotImplementedError
    def list_begin(self) -> tuple[int, int]: raise NotImplementedError
    def map_begin(self) -> tuple[int, int, int]: raise NotImplementedError
    def boolean(self) -> bool: raise NotImplementedError
    def i16(self) -> int: raise NotImplementedError
    def i32(self) -> int: raise NotImplementedError
    def i64(self) -> int: raise NotImplementedError
    def double(self) -> float: raise NotImplementedError
    def message_begin(self) -> str: raise NotImplementedError


class BinaryReader(Reader):
    def length(self) -> int:
        return self.i32()

    def field_begin(self) -> tuple[int, int]:
        t = self.byte()
        return (STOP, 0) if t == STOP else (t, self.i16())

    def list_begin(self) -> tuple[int, int]:
        elem = self.byte()
        return elem, self.container(self.i32())

    def map_begin(self) -> tuple[int, int, int]:
        key, value = self.byte(), self.byte()
        return key, value, self.container(self.i32())

    def boolean(self) -> bool:
        return self.byte() == 1

    def i16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def i32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def double(self) -> float:
        return float(struct.unpack(">d", self.take(8))[0])

    def message_begin(self) -> str:
        size = self.i32()
        if size < 0:
            if size & 0xFFFF0000 != 0x80010000:
                raise ThriftError("thrift: bad version in the message header")
            name = self.binary()
            self.i32()  # sequence id
        else:  # the old, unversioned header: the name, the type, the sequence id
            name = self.take(self.sized(size))
            self.byte()
            self.i32()
        return name.decode("utf-8", "replace")


class CompactReader(Reader):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._last = 0
        self._stack: list[int] = []
        self._bool: bool | None = None  # a bool field's value, carried in its header

    def _varint(self) -> int:
        result = shift = 0
        for _ in range(10):
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return _signed(result, 64)
            shift += 7
        raise ThriftError("thrift: variable-length int over 10 bytes")

    def _varint32(self) -> int:
        return _signed(self._varint(), 32)

    @staticmethod
    def _type(nibble: int) -> int:
        t = _COMPACT_TYPES.get(nibble & 0x0F)
        if t is None:
            raise ThriftError(f"thrift: unknown compact type {nibble & 0x0F}")
        return t

    def length(self) -> int:
        return self._varint32()

    def struct_begin(self) -> None:
        self._stack.append(self._last)
        self._last = 0

    def struct_end(self) -> None:
        self._last = self._stack.pop()

    def field_begin(self) -> tuple[int, int]:
        t = self.byte()
        if t & 0x0F == 0:
            return STOP, 0
        delta = t >> 4
        fid = self.i16() if delta == 0 else _signed(self._last + delta, 16)
        ttype = self._type(t)
        if ttype == BOOL:
            self._bool = t & 0x0F == 1
        self._last = fid
        return ttype, fid

    def list_begin(self) -> tuple[int, int]:
        b = self.byte()
        size = b >> 4
        if size == 15:
            size = self._varint32()
        return self._type(b), self.container(size)

    def map_begin(self) -> tuple[int, int, int]:
        size = self._varint32()
        kv = self.byte() if size != 0 else 0
        # Thrift Go ignores an unknown type here; it fails on the first element instead
        return _COMPACT_TYPES.get(kv >> 4, STOP), _COMPACT_TYPES.get(kv & 0x0F, STOP), self.container(size)

    def boolean(self) -> bool:
        if self._bool is not None:
            value, self._bool = self._bool, None
            return value
        return self.byte() == 1

    def i16(self) -> int:
        return _signed(self.i32(), 16)

    def i32(self) -> int:
        n = self._varint32() & 0xFFFFFFFF
        return (n >> 1) ^ -(n & 1)

    def i64(self) -> int:
        n = self._varint() & _MASK64
        return (n >> 1) ^ -(n & 1)

    def double(self) -> float:
        return float(struct.unpack("<d", self.take(8))[0])

    def message_begin(self) -> str:
        if self.byte() != 0x82:
            raise ThriftError("thrift: not a compact protocol message")
        if self.byte() & 0x1F != 1:
            raise ThriftError("thrift: bad compact protocol version")
        self._varint32()  # sequence id
        return self.binary().decode("utf-8", "replace")


def skip(r: Reader, ttype: int, depth: int = SKIP_DEPTH) -> None:
    if depth <= 0:
        raise ThriftError("thrift: depth limit exceeded")
    if ttype == BOOL:
        r.boolean()
    elif ttype == BYTE:
        r.take(1)
    elif ttype == I16:
        r.i16()
    elif ttype == I32:
        r.i32()
    elif ttype == I64:
        r.i64()
    elif ttype == DOUBLE:
        r.take(8)
    elif ttype == STRING:
        r.binary()
    elif ttype == UUID:
        r.take(16)
    elif ttype == STRUCT:
        r.struct_begin()
        while (f := r.field_begin())[0] != STOP:
            skip(r, f[0], depth - 1)
        r.struct_end()
    elif ttype == MAP:
        key, value, size = r.map_begin()
        for _ in range(size):
            skip(r, key, depth - 1)
            skip(r, value, depth - 1)
    elif ttype in (SET, LIST):
        elem, size = r.list_begin()
        for _ in range(size):
            skip(r, elem, depth - 1)
    else:
        raise ThriftError(f"thrift: unknown data type {ttype}")


@dataclass(frozen=True)
class Struct:
    """A struct's wanted fields: id -> (name, Thrift type, how to read it: a scalar type, a `Struct`,
    or `[Struct]` for a list of them), and the names that must be present."""

    name: str
    fields: dict[int, tuple[str, int, Any]]
    required: frozenset[str] = field(default_factory=frozenset)


def read_struct(r: Reader, schema: Struct) -> dict[str, Any]:
    """The fields present, by name; a list field is a list of dicts."""
    values: dict[str, Any] = {}
    r.struct_begin()
    while True:
        ttype, fid = r.field_begin()
        if ttype == STOP:
            break
        spec = schema.fields.get(fid)
        if spec is None or spec[1] != ttype:
            skip(r, ttype)
        else:
            values[spec[0]] = _value(r, spec[2])
    r.struct_end()
    missing = [name for name in sorted(schema.required) if name not in values]
    if missing:
        raise ThriftError(f"thrift: {schema.name}: required field {missing[0]} is not set")
    return values


def _value(r: Reader, how: Any) -> Any:
    if isinstance(how, Struct):
        return read_struct(r, how)
    if isinstance(how, list):
        _, size = r.list_begin()
        return [read_struct(r, how[0]) for _ in range(size)]
    read = {BOOL: r.boolean, I32: r.i32, I64: r.i64, DOUBLE: r.double, STRING: r.binary}[how]
    return read()
