"""Connection limits for an aiohttp server: Go net/http's timeouts as the Collector's confighttp sets
them (`read_header_timeout`, `write_timeout`, `idle_timeout`; `read_timeout` is the handler's, on the
body, see `request_started`), Go's 1 MiB bound on a request's header bytes, and a cap on open connections.

One timer per connection, re-aimed as the connection moves from reading a request's headers to
handling it; idle connections are aiohttp's keep-alive timer. Nothing is added per request but that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("gateway.transport.http")

MAX_HEADER_BYTES = 1 << 20  # Go's http.DefaultMaxHeaderBytes, which the Collector leaves as it is
MAX_HEADERS = 1024  # ours: Go counts only bytes; aiohttp's own default is 128
NEVER = 365 * 24 * 3600.0  # aiohttp's keep-alive has no "off": 0 closes a connection after each answer

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
HEADERS_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TOO_MANY_CONNECTIONS = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    """Seconds (0: none) and a count (0: no cap)."""

    header_timeout: float = 0.0  # from a request's first byte (a new connection's accept) to its last header
    read_timeout: float = 0.0  # from a request's first byte to its body's last (the handler's to enforce)
    write_timeout: float = 0.0  # from a request's first byte to the last byte of its answer written
    idle_timeout: float = 0.0  # between an answer and the next request's first byte
    max_connections: int = 0


def request_started(request: web.BaseRequest) -> float:
    """When the request's first byte arrived (loop time): where Go's ReadTimeout counts from."""
    started: float = getattr(request.protocol, "request_started", asyncio.get_running_loop().time())
    return started


class GuardedHandler(RequestHandler):
    __slots__ = ("_body", "_counted", "_head_bytes", "_head_started", "_limits", "_server", "_timer",
                 "request_started")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._limits = manager.limits
        self._timer: asyncio.TimerHandle | None = None
        self._head_started: float | None = None  # None: not reading a request's headers
        self._head_bytes = 0
        self._body: StreamReader | None = None  # the last request's body, to tell its bytes from the next request
        self.request_started = 0.0
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        if self._limits.max_connections and server.open >= self._limits.max_connections:
            server.refused += 1
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            self._manager = None  # so connection_lost has nothing to undo
            return
        server.open += 1
        self._counted = True
        super().connection_made(transport)
        self._start_head()  # as Go: the first request's header deadline counts from the accept

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._server.open -= 1
            self._counted = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_started is None and data and (self._body is None or self._body.is_eof()):
            self._start_head()
        if self._head_started is None:
            super().data_received(data)
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEADER_BYTES:
            self._server.header_overflows += 1
            self._end(HEADERS_TOO_LARGE)
            return
        count = self._request_count
        super().data_received(data)
        if self._request_count != count and self._messages:  # the headers are complete
            self._body = self._messages[-1][1]
            self.request_started = self._head_started
            self._head_started = None
            self._arm(self.request_started + self._limits.write_timeout if self._limits.write_timeout else None)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # A malformed request is the client's doing: one DEBUG line, never an ERROR traceback per request.
        log.debug("bad HTTP request from %s: %s", request.remote, exc)
        if isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
            status = 431
        response = web.Response(status=status, text=exc.message)
        response.force_close()
        return response

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        read_timeout = self._limits.read_timeout
        if read_timeout and self._loop.time() >= self.request_started + read_timeout and not request.content.is_eof():
            # Past its read deadline the rest of the body is not read (as Go), where aiohttp would linger 10s.
            self.force_close()
        return answered

    def _start_head(self) -> None:
        self._head_started = self._loop.time()
        self._head_bytes = 0
        timeout = self._limits.header_timeout
        self._arm(self._head_started + timeout if timeout else None)

    def _arm(self, deadline: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._head_started is not None:
            self._server.header_timeouts += 1
            self._end(REQUEST_TIMEOUT)
            return
        transport = self.transport
        if transport is not None and (self._request_in_progress or transport.get_write_buffer_size()):
            self._server.write_timeouts += 1  # the answer was not written in time: as Go, the connection ends
            self.force_close()
            transport.abort()

    def _end(self, answer: bytes) -> None:
        if self.transport is not None:
            self.transport.write(answer)
        self.force_close()


Protocol = Callable[..., GuardedHandler]  # (server, loop=..., **handler options)


class GuardedServer(web.Server):
    """aiohttp's Server, making GuardedHandlers, with counters of what the limits ended."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, protocol: Protocol, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self._protocol = protocol
        self.open = 0
        self.refused = 0
        self.header_timeouts = 0
        self.header_overflows = 0
        self.write_timeouts = 0

    def __call__(self) -> RequestHandler:
        return self._protocol(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """`protocol` makes each connection's handler: a GuardedHandler, or a subclass (`http_fast`)."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, protocol: Protocol = GuardedHandler,
                 **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.idle_timeout or NEVER, max_line_size=MAX_HEADER_BYTES,
                         max_field_size=MAX_HEADER_BYTES, max_headers=MAX_HEADERS, **kwargs)
        self._limits = limits
        self._protocol = protocol

    async def _make_server(self) -> web.Server:
        # aiohttp has no public hook for the protocol class: rebuild its Server as ours, same arguments.
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, limits=self._limits,
                             protocol=self._protocol,
                             **plain._kwargs)
