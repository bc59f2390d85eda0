"""A trace request cut into one piece per (resource, trace): a serialized ResourceSpans holding that
resource, its scopes and the trace's spans in their order, as the Collector regroups a request before
buffering it. Pieces are stored and sent as they are: a request is the concatenation of its pieces,
each as field 1 (`resource_spans`), so a kept trace goes downstream without a parse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.wire import field_bytes

_RS_RESOURCE, _RS_SCOPES, _RS_SCHEMA = 0x0A, 0x12, 0x1A
_SS_SCOPE, _SS_SPANS, _SS_SCHEMA = 0x0A, 0x12, 0x1A
_REQ_RESOURCE_SPANS = 0x0A


@dataclass(frozen=True, slots=True)
class Piece:
    trace_id: bytes
    data: bytes  # a serialized ResourceSpans
    spans: int
    has_root: bool


def split(msg: Any) -> list[Piece]:
    """The pieces of a parsed ExportTraceServiceRequest, in the order their traces first appear."""
    out: list[Piece] = []
    for rs in msg.resource_spans:
        resource = field_bytes(_RS_RESOURCE, rs.resource.SerializeToString()) if rs.HasField("resource") else b""
        tail = field_bytes(_RS_SCHEMA, rs.schema_url.encode()) if rs.schema_url else b""
        # trace id -> [scope index -> serialized spans], span count, has a root span
        by_trace: dict[bytes, tuple[dict[int, list[bytes]], list[int], list[bool]]] = {}
        for si, ss in enumerate(rs.scope_spans):
            for span in ss.spans:
                scopes, count, root = by_trace.setdefault(span.trace_id, ({}, [0], [False]))
                scopes.setdefault(si, []).append(field_bytes(_SS_SPANS, span.SerializeToString()))
                count[0] += 1
                root[0] = root[0] or not span.parent_span_id
        scope_heads: dict[int, tuple[bytes, bytes]] = {}
        for tid, (scopes, count, root) in by_trace.items():
            parts = [resource]
            for si, spans in scopes.items():
                if si not in scope_heads:
                    ss = rs.scope_spans[si]
                    head = field_bytes(_SS_SCOPE, ss.scope.SerializeToString()) if ss.HasField("scope") else b""
                    schema = field_bytes(_SS_SCHEMA, ss.schema_url.encode()) if ss.schema_url else b""
                    scope_heads[si] = (head, schema)
                head, schema = scope_heads[si]
                parts.append(field_bytes(_RS_SCOPES, b"".join((head, *spans, schema))))
            parts.append(tail)
            out.append(Piece(tid, b"".join(parts), count[0], root[0]))
    return out


def join(pieces: list[bytes]) -> bytes:
    """Serialized ResourceSpans as one ExportTraceServiceRequest."""
    return b"".join(field_bytes(_REQ_RESOURCE_SPANS, p) for p in pieces)
