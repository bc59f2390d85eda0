"""Serialized `ExportTraceServiceRequest`s walked and rebuilt at span granularity, without parsing spans.

A request is `resource_spans` (field 1) of `scope_spans` (field 2) of `spans` (field 2), each
length-delimited. `walk` finds every span's body in the bytes (and keeps every other field of the
three enclosing levels as it came); `rebuild` joins the span bodies a processor keeps, each followed
by bytes it appends, under rewritten length prefixes. Appending works because protobuf parses
concatenated fields as one message: an appended repeated field (an attribute, field 9) lands after the
span's own entries, and an appended singular field (trace_state, field 3) overrides an earlier one.

Fields other than the lists walked keep their relative order; a parser sees the same message. Bytes
the walk does not understand (groups, truncation) raise WireError, and the caller takes its upb path.

`remember_source` / `source_of`: a processor that rewrote a batch's bytes without changing the spans'
trace ids and trace states records which batch the new bytes came from, so the next processor can read
those fields from that batch's parse (free when the receiver parsed it) instead of parsing again. The
note is keyed by the identity of the new bytes object and holds it, so a hit is always for those bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.batch import Batch


class WireError(ValueError):
    """Bytes this walker does not handle; the caller falls back to parsing them."""


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    n = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: tag byte(s), length, payload."""
    return varint(tag) + varint(len(payload)) + payload


def _skip(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the field at `pos`: (tag, start of its length-delimited body or -1, end of the field)."""
    tag = data[pos]
    pos += 1
    if tag >= 0x80:
        tag, pos = read_varint(data, pos - 1)
    wt = tag & 7
    if wt == 2:
        b = data[pos] if pos < end else 0x80
        if b < 0x80:
            start = pos + 1
            stop = start + b
        else:
            n, start = read_varint(data, pos)
            stop = start + n
        if stop > end:
            raise WireError("length-delimited field runs past its message")
        return tag, start, stop
    if wt == 0:
        _, pos = read_varint(data, pos)
    elif wt == 1:
        pos += 8
    elif wt == 5:
        pos += 4
    else:
        raise WireError(f"unsupported wire type {wt}")
    if pos > end:
        raise WireError("field runs past its message")
    return tag, -1, pos


@dataclass(slots=True)
class Scope:
    """One ScopeSpans: its other fields (before / after its first span) and its spans' index range."""

    head: bytes
    tail: bytes
    first: int
    last: int


@dataclass(slots=True)
class Resource:
    head: bytes
    tail: bytes
    scopes: list[Scope]


@dataclass(slots=True)
class Request:
    """A walked request: `starts[i]:ends[i]` is the body of span i (in request order) in `data`."""

    data: bytes
    head: bytes
    tail: bytes
    resources: list[Resource]
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)


def walk(data: bytes) -> Request:
    """Locate every span of a serialized ExportTraceServiceRequest. Raises WireError."""
    req = Request(data, b"", b"", [])
    starts = req.starts
    ends = req.ends
    head: list[bytes] = []
    tail: list[bytes] = []
    pos = 0
    end = len(data)
    try:
        while pos < end:
            f0 = pos
            tag, start, pos = _skip(data, pos, end)
            if tag == 0x0A:
                req.resources.append(_walk_resource(data, start, pos, starts, ends))
            else:
                (tail if req.resources else head).append(data[f0:pos])
    except IndexError:
        raise WireError("truncated message") from None
    req.head = b"".join(head)
    req.tail = b"".join(tail)
    return req


def _walk_resource(data: bytes, pos: int, end: int, starts: list[int], ends: list[int]) -> Resource:
    res = Resource(b"", b"", [])
    head: list[bytes] = []
    tail: list[bytes] = []
    while pos < end:
        f0 = pos
        tag, start, pos = _skip(data, pos, end)
        if tag == 0x12:
            res.scopes.append(_walk_scope(data, start, pos, starts, ends))
        else:
            (tail if res.scopes else head).append(data[f0:pos])
    res.head = b"".join(head)
    res.tail = b"".join(tail)
    return res


def _walk_scope(data: bytes, pos: int, end: int, starts: list[int], ends: list[int]) -> Scope:
    first = len(starts)
    head: list[bytes] = []
    tail: list[bytes] = []
    add_start = starts.append
    add_end = ends.append
    while pos < end:
        tag = data[pos]
        if tag == 0x12:
            # The hot loop: a span, its length most often one or two varint bytes.
            b = data[pos + 1]
            if b < 0x80:
                start = pos + 2
                pos = start + b
            else:
                b2 = data[pos + 2]
                if b2 < 0x80:
                    start = pos + 3
                    pos = start + ((b & 0x7F) | (b2 << 7))
                else:
                    n, start = read_varint(data, pos + 1)
                    pos = start + n
            if pos > end:
                raise WireError("span runs past its scope")
            add_start(start)
            add_end(pos)
            continue
        f0 = pos
        _, _, pos = _skip(data, pos, end)
        (tail if len(starts) > first else head).append(data[f0:pos])
    return Scope(b"".join(head), b"".join(tail), first, len(starts))


_SPAN_HDR: dict[int, bytes] = {}


def span_header(n: int) -> bytes:
    """The tag and length of a span field (ScopeSpans.spans) with an n-byte body."""
    h = _SPAN_HDR.get(n)
    if h is None:
        h = b"\x12" + varint(n)
        if len(_SPAN_HDR) < 65536:
            _SPAN_HDR[n] = h
    return h


def rebuild(req: Request, extra: list[bytes | None], bodies: dict[int, bytes] | None = None,
            prune: bool = False) -> bytes:
    """The request with span i dropped where `extra[i]` is None, else its body (or `bodies[i]` in its
    place) followed by `extra[i]`. With `prune`, scopes left without spans and resources left without
    scopes are dropped (as the sampler's upb path prunes them)."""
    data = req.data
    starts = req.starts
    ends = req.ends
    out: list[bytes] = [req.head]
    for res in req.resources:
        r_slot = len(out)
        out.append(b"")
        r_total = len(res.head)
        out.append(res.head)
        kept_scopes = 0
        for sc in res.scopes:
            s_slot = len(out)
            out.append(b"")
            s_total = len(sc.head)
            out.append(sc.head)
            kept = 0
            for i in range(sc.first, sc.last):
                x = extra[i]
                if x is None:
                    continue
                kept += 1
                body = bodies[i] if bodies is not None and i in bodies else data[starts[i]:ends[i]]
                n = len(body) + len(x)
                h = span_header(n)
                out.append(h)
                out.append(body)
                out.append(x)
                s_total += len(h) + n
            if prune and kept == 0:
                del out[s_slot:]
                continue
            kept_scopes += 1
            out.append(sc.tail)
            s_total += len(sc.tail)
            s_hdr = b"\x12" + varint(s_total)
            out[s_slot] = s_hdr
            r_total += len(s_hdr) + s_total
        if prune and kept_scopes == 0:
            del out[r_slot:]
            continue
        out.append(res.tail)
        r_total += len(res.tail)
        out[r_slot] = b"\x0a" + varint(r_total)
    out.append(req.tail)
    return b"".join(out)


# -- which batch rewritten bytes came from
_SOURCES: OrderedDict[int, tuple[bytes, Batch]] = OrderedDict()
_MAX_SOURCES = 8


def remember_source(data: bytes, source: Batch) -> None:
    """Note that the spans of `data` have the trace ids and trace states of `source`'s spans, in order."""
    _SOURCES[id(data)] = (data, source)
    _SOURCES.move_to_end(id(data))
    while len(_SOURCES) > _MAX_SOURCES:
        _SOURCES.popitem(last=False)


def source_of(data: bytes) -> Batch | None:
    hit = _SOURCES.get(id(data))
    if hit is None or hit[0] is not data:
        return None
    return hit[1]
