"""HTTP/2 framing (RFC 9113) as our gRPC server and client both speak it: frame and setting numbers,
frames out, padding and header blocks in, and HPACK blocks that never touch the peer's dynamic table.
Nothing here knows of gRPC; the decoding side of HPACK is `hpack_decoder`."""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM, INADEQUATE_SECURITY = 0xB, 0xC
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

MAX_WINDOW = 2**31 - 1
MAX_STREAM_ID = 2**31 - 1
DEFAULT_PEER_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE until a peer says otherwise, and its least value
MAX_HEADER_LIST = 64 * 1024
MAX_HEADER_BLOCK = 4 * MAX_HEADER_LIST  # the encoded block, HEADERS and CONTINUATION frames together

U32 = struct.Struct(">I")
SETTING = struct.Struct(">HI")


class ConnectionError_(Exception):
    """A connection-level protocol error: the connection ends with GOAWAY(code)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


# Each setting's allowed values (RFC 9113 6.5.2) and the error a value outside them is.
_SETTING_RANGES = {
    S_ENABLE_PUSH: (0, 1, PROTOCOL_ERROR),
    S_INITIAL_WINDOW_SIZE: (0, MAX_WINDOW, FLOW_CONTROL_ERROR),
    S_MAX_FRAME_SIZE: (DEFAULT_MAX_FRAME, 2**24 - 1, PROTOCOL_ERROR),
}


def read_settings(payload: memoryview) -> list[tuple[int, int]]:
    """A SETTINGS frame's (identifier, value) pairs in order, each checked against its range; the
    server and the client apply them. ConnectionError_ for a bad length or value."""
    if len(payload) % 6:
        raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
    pairs = [SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]
    for key, value in pairs:
        allowed = _SETTING_RANGES.get(key)
        if allowed is not None and not allowed[0] <= value <= allowed[1]:
            raise ConnectionError_(allowed[2], f"setting {key} = {value} out of range")
    return pairs


def unpad(mv: memoryview, start: int, end: int) -> tuple[int, int]:
    """The payload bounds of a PADDED frame's payload `mv[start:end]`, without its pad length and padding."""
    if end <= start:
        raise ConnectionError_(PROTOCOL_ERROR, "padded frame without a pad length")
    pad = mv[start]
    if pad >= end - start:
        raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
    return start + 1, end - pad


class HeaderBlock:
    """A header block as it arrives, in a HEADERS frame and any CONTINUATION frames after it (RFC 9113
    6.2, 6.10): padding and priority fields skipped, at most MAX_HEADER_BLOCK bytes. `pending` while
    CONTINUATION frames must follow; `sid` and `flags` are then the HEADERS frame's."""

    __slots__ = ("flags", "pending", "sid")

    def __init__(self) -> None:
        self.sid = 0
        self.flags = 0
        self.pending: bytearray | None = None

    def headers(self, sid: int, flags: int, mv: memoryview, start: int, end: int) -> bytearray | None:
        """The block of a HEADERS frame `mv[start:end]` if it is whole, else None (it continues)."""
        if flags & PADDED:
            start, end = unpad(mv, start, end)
        if flags & PRIORITY_FLAG:
            start += 5
            if start > end:
                raise ConnectionError_(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        if end - start > MAX_HEADER_BLOCK:
            raise ConnectionError_(PROTOCOL_ERROR, "header block too large")
        block = bytearray(mv[start:end])
        if flags & END_HEADERS:
            return block
        self.sid, self.flags, self.pending = sid, flags, block
        return None

    def continuation(self, sid: int, flags: int, mv: memoryview, start: int, end: int) -> bytearray | None:
        """The whole block once this CONTINUATION frame ends it, else None."""
        block = self.pending
        if block is None or self.sid != sid:
            raise ConnectionError_(PROTOCOL_ERROR, "unexpected CONTINUATION")
        block.extend(mv[start:end])
        if len(block) > MAX_HEADER_BLOCK:
            raise ConnectionError_(PROTOCOL_ERROR, "header block too large")
        if not flags & END_HEADERS:
            return None
        self.pending = None
        return block


def frame_head(length: int, kind: int, flags: int, stream: int) -> bytes:
    """The 9 bytes before a frame's payload, for a payload written separately."""
    return bytes((length >> 16, (length >> 8) & 0xFF, length & 0xFF, kind, flags)) + U32.pack(stream)


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF, kind, flags)) + U32.pack(stream) + payload


# -- HPACK encoding: static-table entries and literals "without indexing", so the blocks never touch
# the peer's dynamic table and most are constants.
def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s: bytes) -> bytes:
    return hpack_int(len(s), 7) + s


def hpack_indexed_name(index: int, value: str) -> bytes:
    """A literal without indexing whose name is static-table entry `index`."""
    return hpack_int(index, 4) + hpack_str(value.encode())


def hpack_literal(name: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode()
    return b"\x00" + hpack_str(name.encode()) + hpack_str(raw)
