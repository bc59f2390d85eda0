"""A fast lane beside aiohttp's request handler, for a server's commonest request: an HTTP/1.1 POST to
one of its routes whose head and Content-Length body have arrived whole. Its head is split here (find
the blank line, split the lines, lower-case the names), the route is awaited in a task, and the answer
is written on the transport in the bytes aiohttp writes. Anything else goes to aiohttp unchanged.

One connection's answers go out in its requests' order, so the lane takes a request only when aiohttp
holds nothing for the connection (no request queued or running, its parser between two messages), and
one at a time: bytes that arrive while it runs wait here until its answer is written. To know when
aiohttp's parser is empty again, the lane follows the message boundaries in the bytes it hands over
(a head's Content-Length); a head it cannot delimit for certain (chunked, malformed, an upgrade) leaves
the connection to aiohttp for good.

The guard's promises hold for the lane's requests: the write timeout is armed from the request's
bytes, aiohttp's keep-alive timer waits while the lane answers and counts from its answer, a shutdown
waits for the lane's request as for aiohttp's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE

from gateway.transport.fields import TOKEN_CHARS
from gateway.transport.http_guard import MAX_HEADER_BYTES, MAX_HEADERS, GuardedHandler, GuardedServer

log = logging.getLogger("gateway.transport.http")

MAX_PENDING = 1 << 20  # bytes held behind the lane's running request past which the connection stops being read

_TOKEN = TOKEN_CHARS.encode("ascii")
_HEAD_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])  # no NUL or other control byte
# Present, these leave a request to aiohttp: other framing, an interim answer, another protocol.
_AIOHTTP_HEADERS = frozenset({"transfer-encoding", "expect", "upgrade", "sec-websocket-key1"})


@dataclass(frozen=True, slots=True)
class FastRequest:
    headers: dict[str, str]  # lower-cased names (each once: a repeated name goes to aiohttp)
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]  # in order; aiohttp adds Content-Length, Date and Server after them
    body: bytes


Route = Callable[[FastRequest], Awaitable[Answer]]

_INTERNAL_ERROR = Answer(500, (("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")),
                         b"500 Internal Server Error\n\nServer got itself in trouble")


@dataclass(frozen=True)
class FastLane:
    """What a server answers itself: POSTs to `routes` with bodies up to `max_body` bytes whose headers
    `accepts` takes (the rest of its rules); everything else is aiohttp's."""

    routes: Mapping[str, Route]
    max_body: int
    accepts: Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class _Head:
    method: bytes
    target: bytes
    version: bytes
    headers: dict[str, str]
    repeated: bool  # a header name more than once
    length: int  # of the body


def parse_head(head: bytes) -> _Head | None:
    """A request head (without its blank line) split, or None when its end cannot be told for certain."""
    crlf = head.count(b"\r\n")
    if head.translate(None, _HEAD_BYTES) or head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or len(lines) > MAX_HEADERS:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None  # also a folded line (leading space)
        # as aiohttp's parser: no spaces or tabs around the value, bytes that are not UTF-8 kept as surrogates
        headers[name.decode("ascii").lower()] = value.strip(b" \t").decode("utf-8", "surrogateescape")
    length = headers.get("content-length", "0")
    if not (length.isascii() and length.isdigit()) or "transfer-encoding" in headers or "upgrade" in headers \
            or parts[0] == b"CONNECT":
        return None
    return _Head(parts[0], parts[1], parts[2], headers, len(headers) != len(lines) - 1, int(length))


def encode(answer: Answer) -> bytes:
    """The bytes aiohttp writes for this answer to a keep-alive HTTP/1.1 request: its Date and Server
    unless the answer has its own (a configured `response_headers`), as aiohttp does."""
    lines = [f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}"]
    lines.extend(f"{name}: {value}" for name, value in answer.headers)
    lines.append(f"Content-Length: {len(answer.body)}")
    names = {name.lower() for name, _ in answer.headers}
    if "date" not in names:
        lines.append(f"Date: {rfc822_formatted_time()}")
    if "server" not in names:
        lines.append(f"Server: {SERVER_SOFTWARE}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8") + answer.body


class FastHandler(GuardedHandler):
    __slots__ = ("_aiohttp_only", "_held", "_lane", "_owed", "_pending", "_pending_size", "_serving", "_shadow",
                 "_task")

    def __init__(self, manager: GuardedServer, lane: FastLane, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._lane = lane
        self._pending: list[bytes] = []  # bytes behind the lane's running request, nobody's yet
        self._pending_size = 0
        self._serving = False  # a request of the lane runs, or its answer is being written
        self._task: asyncio.Task[None] | None = None
        self._held = False  # reading paused by the lane (too much pending)
        self._owed = 0  # body bytes still to come of the last message handed to aiohttp
        self._shadow = bytearray()  # the start of a head handed to aiohttp, its end not seen yet
        self._aiohttp_only = False

    def data_received(self, data: bytes) -> None:
        if self._aiohttp_only or not data:
            # b"": aiohttp restarting its own parser (after its queue of 32 requests, or a body past its
            # high-water mark, drained): always aiohttp's, or its parser stays paused for good.
            super().data_received(data)
            return
        if self._force_close or self._close:
            return
        if not self._serving:
            self._advance(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > MAX_PENDING and not self._held and self.transport is not None:
            self._held = True
            self.transport.pause_reading()

    def _process_keepalive(self) -> None:
        if self._serving:
            self._keepalive_handle = None  # the lane's answer starts it again
            return
        super()._process_keepalive()

    def _advance(self, buf: bytes) -> None:
        """Start the lane's request at the start of `buf` (and keep the rest pending), or hand it all to aiohttp."""
        if not buf:
            return
        end = -1 if self._owed or self._shadow or not self._aiohttp_idle() else buf.find(b"\r\n\r\n")
        head = parse_head(buf[:end]) if end >= 0 else None
        start = end + 4
        route = self._route(head) if head is not None and start + head.length <= len(buf) else None
        if route is None or head is None:
            self._to_aiohttp(buf)
            return
        stop = start + head.length
        if stop < len(buf):
            self._pending.append(buf[stop:])
            self._pending_size += len(buf) - stop
        self._start(route, FastRequest(head.headers, buf[start:stop]))

    def _aiohttp_idle(self) -> bool:
        waiting = self._waiter is not None and not self._waiter.done()
        return not self._messages and not self._request_in_progress and (waiting or self._request_count == 0)

    def _route(self, head: _Head) -> Route | None:
        lane = self._lane
        headers = head.headers
        if head.method != b"POST" or head.version != b"HTTP/1.1" or head.repeated or head.length > lane.max_body \
                or "host" not in headers or not _AIOHTTP_HEADERS.isdisjoint(headers) \
                or headers.get("connection", "keep-alive").lower() != "keep-alive" or not lane.accepts(headers):
            return None
        return lane.routes.get(head.target.decode("latin-1"))

    def _to_aiohttp(self, data: bytes) -> None:
        self._track(data)
        super().data_received(data)
        if self._held and self.transport is not None:
            self._held = False
            self.transport.resume_reading()

    def _track(self, data: bytes) -> None:
        """Follow the message boundaries in bytes handed to aiohttp, by position: a body is counted, not
        copied (at 512 spans a request, copying each read to find the next head cost 11% of the CPU)."""
        pos, n = 0, len(data)
        while pos < n:
            if self._owed:
                taken = min(self._owed, n - pos)
                self._owed -= taken
                pos += taken
                continue
            if self._shadow:  # a head that began in an earlier read
                seen = len(self._shadow)
                self._shadow += data[pos:]
                end = self._shadow.find(b"\r\n\r\n", max(0, seen - 3))
                if end < 0:
                    if len(self._shadow) > MAX_HEADER_BYTES:  # the guard ends the connection
                        self._aiohttp_only = True
                    return
                head = parse_head(bytes(self._shadow[:end]))
                pos += end + 4 - seen
                self._shadow.clear()
            else:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    self._shadow += data[pos:]
                    if len(self._shadow) > MAX_HEADER_BYTES:  # the guard ends the connection
                        self._aiohttp_only = True
                    return
                head = parse_head(data[pos:end])
                pos = end + 4
            if head is None:
                self._aiohttp_only = True
                return
            self._owed = head.length

    def _start(self, route: Route, request: FastRequest) -> None:
        self._serving = True
        self._request_in_progress = True  # for the guard's write timeout and aiohttp's shutdown
        self.request_started = self._loop.time()
        self._head_started = None
        timeout = self._limits.write_timeout
        self._arm(self.request_started + timeout if timeout else None)
        self._task = self._loop.create_task(self._serve(route, request))

    async def _serve(self, route: Route, request: FastRequest) -> None:
        try:
            answer: Answer = await route(request)
        except Exception:
            # A bug: answered as aiohttp answers a handler's exception, then the connection is closed.
            log.exception("the fast lane's handler failed")
            answer = _INTERNAL_ERROR
        finally:
            self._request_in_progress = False
            waiter = self._handler_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the connection went (or the write timeout ended it): what is pending goes with it
        transport.write(encode(answer))
        if answer is _INTERNAL_ERROR:
            self.force_close()
            return
        if self.writing_paused:
            try:
                await self._drain_helper()
            except ConnectionError:
                return
        self._serving = False
        self._task = None
        if self._force_close or self._close:
            return
        close_time = self._loop.time() + self._keepalive_timeout
        self._next_keepalive_close_time = close_time
        if self._keepalive_handle is None:
            self._keepalive_handle = self._loop.call_at(close_time, self._process_keepalive)
        pending = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._advance(pending)
        if self._held and not self._serving and self.transport is not None:
            self._held = False
            self.transport.resume_reading()
