"""Serialized `ExportTraceServiceRequest`s split and rebuilt at span granularity, without parsing spans.

A request is `resource_spans` (field 1) of `scope_spans` (field 2) of `spans` (field 2), each
length-delimited. `walk` parses the request with upb against a *view* of the OTLP schema in which
every span is an opaque `bytes` field (and a resource or a scope one too), so upb hands over each
span's serialized body without building it: the split runs in C. `rebuild` joins the span bodies a
processor keeps, each followed by bytes it appends, under new length prefixes.

Why this parses as the processor means: the view has the same field numbers and wire types as OTLP,
so every occurrence of a span on the wire is one entry in both, in the same order; `resource` and
`scope` are `repeated bytes` in the view, so several occurrences (which a parser merges) are all kept
in order; other fields (schema_url, unknown ones) are re-serialized by upb as they parsed. Appending to
a span's bytes is protobuf concatenation: an appended repeated field (an attribute, field 9) lands
after the span's own entries, an appended singular field (trace_state, field 3) overrides earlier ones.

`Rewrite`: a processor that rewrote a batch without changing the spans' trace ids and trace states
passes the rewrite and the batch it came from on in the new batch (`Batch.rewrite`, a
`pipelines.batch.Rewrite`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from operator import add
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError


class WireError(ValueError):
    """Bytes the view does not parse; the caller takes its upb path (which reports them)."""


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


def _view_classes() -> Any:
    f = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="otel_gateway_wire_view.proto", package="otelgw.wire",
                                            syntax="proto3")

    def message(name: str, *fields: tuple[str, int, bool, str | None]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, repeated, type_name in fields:
            fld = m.field.add(name=fname, number=number,
                              label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL,
                              type=f.TYPE_MESSAGE if type_name else f.TYPE_BYTES)
            if type_name:
                fld.type_name = f".otelgw.wire.{type_name}"

    message("ScopeSpans", ("scope", 1, True, None), ("spans", 2, True, None), ("schema_url", 3, False, None))
    message("ResourceSpans", ("resource", 1, True, None), ("scope_spans", 2, True, "ScopeSpans"),
            ("schema_url", 3, False, None))
    message("Request", ("resource_spans", 1, True, "ResourceSpans"))
    # Any signal at the resource level: resource_{spans,metrics,logs} = 1 of (resource = 1,
    # scope_{spans,metrics,logs} = 2, schema_url = 3), the scope lists kept as opaque bytes.
    message("ResourceEntry", ("resource", 1, True, None), ("scopes", 2, True, None), ("schema_url", 3, False, None))
    message("ResourceRequest", ("resources", 1, True, "ResourceEntry"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"otelgw.wire.{name}"))
                 for name in ("Request", "ResourceRequest"))


_VIEW, _RESOURCE_VIEW = _view_classes()


def resources(data: bytes) -> Any:
    """The request (of any signal) viewed at the resource level: `.resources[i].resource` holds the
    serialized occurrences of entry i's `resource` field (a parser merges them: parse their
    concatenation), the rest stays bytes; change `.resource` and `SerializeToString()` the view.
    Raises WireError."""
    try:
        return _RESOURCE_VIEW.FromString(data)
    except DecodeError as exc:
        raise WireError(str(exc)) from None


@dataclass(slots=True)
class Scope:
    """One ScopeSpans: its other fields (before / after its spans) and its spans' index range."""

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
    """A split request: `bodies[i]` is span i (in request order), serialized.

    It may also describe a rewrite: span i is then `replaced[i]` (where given) or its body, followed
    by `added[i]` (see `span`). A processor that rewrote a request this way hands the description to
    the next one (`pipelines.batch.Rewrite`), which builds from it without splitting the new bytes again."""

    head: bytes
    tail: bytes
    resources: list[Resource]
    bodies: list[bytes]
    added: list[bytes] | None = None
    replaced: dict[int, bytes] | None = None

    def __len__(self) -> int:
        return len(self.bodies)

    def span(self, i: int) -> bytes:
        """The serialized span i, as this request has it."""
        replaced = self.replaced
        body = replaced[i] if replaced and i in replaced else self.bodies[i]
        return body + self.added[i] if self.added is not None else body

    def holding(self, needle: bytes) -> list[int]:
        """The spans whose bytes contain `needle`."""
        if self.added is None and not self.replaced:
            return [i for i, body in enumerate(self.bodies) if needle in body]
        return [i for i in range(len(self.bodies)) if needle in self.span(i)]


def _repeated(tag: bytes, values: Iterable[bytes]) -> bytes:
    return b"".join([tag + varint(len(v)) + v for v in values])


def walk(data: bytes) -> Request:
    """Split a serialized ExportTraceServiceRequest into its spans. Raises WireError."""
    try:
        view = _VIEW.FromString(data)
    except DecodeError as exc:
        raise WireError(str(exc)) from None
    bodies: list[bytes] = []
    resources: list[Resource] = []
    for rs in view.resource_spans:
        scopes: list[Scope] = []
        for ss in rs.scope_spans:
            first = len(bodies)
            bodies.extend(ss.spans)
            head = _repeated(b"\x0a", ss.scope)
            del ss.scope[:]
            del ss.spans[:]
            scopes.append(Scope(head, ss.SerializeToString(), first, len(bodies)))
        head = _repeated(b"\x0a", rs.resource)
        del rs.resource[:]
        del rs.scope_spans[:]
        resources.append(Resource(head, rs.SerializeToString(), scopes))
    del view.resource_spans[:]
    return Request(b"", view.SerializeToString(), resources, bodies)


class _SpanHeaders(dict[int, bytes]):
    """The tag and length of a span field (ScopeSpans.spans) by body length, made on first use."""

    def __missing__(self, n: int) -> bytes:
        h = b"\x12" + varint(n)
        if len(self) < 65536:
            self[n] = h
        return h


_SPAN_HDR = _SpanHeaders()


def rebuild(req: Request, extra: list[bytes | None] | list[bytes], prune: bool = False,
            keep_all: bool = False) -> bytes:
    """The request with span i dropped where `extra[i]` is None, else its bytes (`req.span(i)`)
    followed by `extra[i]`. With `prune`, scopes left without spans and resources left without scopes
    are dropped (as the sampler's upb path prunes them). `keep_all`: the caller says no entry is None.

    Per scope, the pieces are made by C-level maps (lengths, headers) and interleaved by slice
    assignment: no Python bytecode runs per span."""
    out: list[bytes] = [req.head]
    for res in req.resources:
        scopes: list[bytes] = []
        r_total = len(res.head) + len(res.tail)
        for sc in res.scopes:
            pieces, size = _scope_spans(req, extra, sc.first, sc.last, keep_all)
            if prune and not pieces:
                continue
            s_total = len(sc.head) + len(sc.tail) + size
            s_hdr = b"\x12" + varint(s_total)
            scopes.append(s_hdr)
            scopes.append(sc.head)
            scopes.extend(pieces)
            scopes.append(sc.tail)
            r_total += len(s_hdr) + s_total
        if prune and not scopes:
            continue
        out.append(b"\x0a" + varint(r_total))
        out.append(res.head)
        out.extend(scopes)
        out.append(res.tail)
    out.append(req.tail)
    return b"".join(out)


def _scope_spans(req: Request, extra: list[bytes | None] | list[bytes], a: int, b: int,
                 keep_all: bool) -> tuple[list[bytes], int]:
    """The pieces of spans a..b-1 (header, body, added, extra) as `rebuild` keeps them, and their size."""
    xs = extra[a:b]
    kept: list[int] | range
    if not keep_all and None in xs:
        mask = [x is not None for x in xs]
        kept = list(compress(range(a, b), mask))
        xs = list(compress(xs, mask))
        bodies = list(compress(req.bodies[a:b], mask))
    else:
        kept = range(a, b)
        bodies = req.bodies[a:b]
    m = len(bodies)
    if not m:
        return [], 0
    if req.replaced:
        for j, i in enumerate(kept):
            if i in req.replaced:
                bodies[j] = req.replaced[i]
    columns: list[list[bytes]] = [bodies]
    if req.added is not None:
        columns.append(list(map(req.added.__getitem__, kept)) if isinstance(kept, list) else req.added[a:b])
    columns.append(xs)  # type: ignore[arg-type]  # no None left in xs
    sizes: Iterable[int] = map(len, bodies)
    for col in columns[1:]:
        # One value for all (mostly an identity test per entry): add a constant.
        one = col.count(col[0]) == m
        sizes = map(len(col[0]).__add__, sizes) if one else map(add, sizes, map(len, col))
    ns = list(sizes)
    headers = list(map(_SPAN_HDR.__getitem__, ns))
    k = len(columns) + 1
    pieces: list[bytes] = [b""] * (k * m)
    pieces[0::k] = headers
    for c, col in enumerate(columns, 1):
        pieces[c::k] = col
    return pieces, sum(ns) + sum(map(len, headers))
