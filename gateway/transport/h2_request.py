"""A request's header list read once (RFC 9113 8.2, 8.3): what the gRPC server needs of it, or why it
is malformed (a stream error PROTOCOL_ERROR). One pass over the fields, on the request's path."""

from __future__ import annotations

from dataclasses import dataclass, field

Metadata = list[tuple[str, str]]

_PSEUDO = frozenset((":method", ":scheme", ":path", ":authority"))
# 8.2.2: connection-specific fields have no place in HTTP/2 ("te" is allowed with "trailers" only).
_CONNECTION_SPECIFIC = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"))
_NOT_METADATA = frozenset(("te", "grpc-timeout", "grpc-accept-encoding", "content-type", "grpc-encoding"))
_REQUIRED = frozenset((":method", ":scheme", ":path"))


class Malformed(Exception):
    """A malformed request or trailers: the stream is reset with PROTOCOL_ERROR."""


@dataclass(slots=True)
class Request:
    method: str = ""
    path: str = ""
    content_type: str = ""
    encoding: str = ""
    content_length: int = -1
    metadata: Metadata = field(default_factory=list)


def _check_name(name: str) -> None:
    if not name or name != name.lower():
        raise Malformed(f"header name {name!r} is empty or not lowercase")
    if name in _CONNECTION_SPECIFIC:
        raise Malformed(f"connection-specific header {name!r}")


def read_request(headers: list[tuple[str, str]]) -> Request:
    req = Request()
    seen: set[str] = set()
    regular = False
    for name, value in headers:
        if name[:1] == ":":
            if regular:
                raise Malformed(f"pseudo-header {name} after a regular header")
            if name not in _PSEUDO or name in seen:
                raise Malformed(f"pseudo-header {name} unknown or repeated")
            seen.add(name)
            if name == ":path":
                req.path = value
            elif name == ":method":
                req.method = value
            continue
        regular = True
        _check_name(name)
        if name == "content-type":
            req.content_type = value
        elif name == "grpc-encoding":
            req.encoding = value
        elif name == "content-length":
            if not value.isdigit():
                raise Malformed(f"content-length {value!r}")
            req.content_length = int(value)
            req.metadata.append((name, value))
        elif name == "te":
            if value != "trailers":
                raise Malformed(f"te: {value!r} (only 'trailers' is allowed)")
        elif name not in _NOT_METADATA and not name.endswith("-bin"):
            req.metadata.append((name, value))
    if not seen >= _REQUIRED:
        raise Malformed("a request needs :method, :scheme and :path")
    if not req.path:
        raise Malformed("empty :path")
    return req


def check_trailers(headers: list[tuple[str, str]]) -> None:
    for name, _ in headers:
        if name[:1] == ":":
            raise Malformed(f"pseudo-header {name} in trailers")
        _check_name(name)
