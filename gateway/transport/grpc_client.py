"""One HTTP/2 connection of our gRPC client for unary calls, on asyncio and our own framing (the
counterpart of `gateway.transport.grpc_server`); `grpc_channel.H2Client` resolves the target, keeps
these connections and picks one per call.

Why not grpcio's aio channel: each call hops between gRPC core's threads, its poller and the event
loop, about 2.6 ms of CPU per 3 MB export; here a call is framed, sent and read on the event loop.

Of HTTP/2 (RFC 9113): one connection, h2c with prior knowledge or TLS with ALPN "h2"; SETTINGS
(MAX_CONCURRENT_STREAMS waited for, MAX_FRAME_SIZE, INITIAL_WINDOW_SIZE) and PING acknowledged; send
and receive flow control; HEADERS + CONTINUATION (HPACK decoding by `hpack_decoder`, our own blocks
never indexed); RST_STREAM; GOAWAY (streams above its last id were not processed and go out again on
another connection; new calls too); keepalive PINGs on a timer (`Keepalive`, grpc-go's semantics).
Of gRPC: the length-prefixed message, gzip/deflate, `grpc-timeout`, Trailers-Only responses,
`grpc-status` / `grpc-message` / `grpc-status-details-bin`, and the HTTP-to-gRPC and HTTP/2-error-to-gRPC
code tables. Every failure is a `GrpcCallError`; transport failures and anything malformed from the
peer are UNAVAILABLE, the deadline DEADLINE_EXCEEDED (the stream is then reset with CANCEL).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import urllib.parse
from dataclasses import dataclass, field

import hpack

from gateway.transport.compression import BadEncoding, BodyTooLarge, decompress
from gateway.transport.grpc_status import Status
from gateway.transport.h2 import (
    ACK,
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME,
    DEFAULT_PEER_WINDOW,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INADEQUATE_SECURITY,
    INTERNAL_ERROR,
    MAX_HEADER_LIST,
    MAX_STREAM_ID,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    S_ENABLE_PUSH,
    S_INITIAL_WINDOW_SIZE,
    S_MAX_CONCURRENT_STREAMS,
    S_MAX_FRAME_SIZE,
    S_MAX_HEADER_LIST_SIZE,
    SETTING,
    SETTINGS,
    U32,
    WINDOW_UPDATE,
    ConnectionError_,
    HeaderBlock,
    frame,
    frame_head,
    read_settings,
    unpad,
)
from gateway.transport.hpack_decoder import HeaderDecoder

log = logging.getLogger("gateway.exporter.h2")

# The gRPC spec's tables: an HTTP status without grpc-status, and an HTTP/2 RST_STREAM error code.
HTTP_TO_GRPC = {400: Status.INTERNAL, 401: Status.UNAUTHENTICATED, 403: Status.PERMISSION_DENIED,
                404: Status.UNIMPLEMENTED, 429: Status.UNAVAILABLE, 502: Status.UNAVAILABLE,
                503: Status.UNAVAILABLE, 504: Status.UNAVAILABLE}
# Every other RST_STREAM code: INTERNAL.
RST_TO_GRPC = {REFUSED_STREAM: Status.UNAVAILABLE, CANCEL: Status.CANCELLED,
               ENHANCE_YOUR_CALM: Status.RESOURCE_EXHAUSTED, INADEQUATE_SECURITY: Status.PERMISSION_DENIED}

RECV_MAX_FRAME = 1 << 20  # the largest frame we accept
STREAM_WINDOW = 4 * 1024 * 1024  # per response stream, replenished when half is used
CONN_WINDOW = 16 * 1024 * 1024
WRITE_CHUNK = 1024 * 1024  # request bytes handed to the transport at a time
# What we ask servers to compress responses with, if at all.
RESPONSE_ENCODINGS = ("gzip", "deflate")
ACCEPT_ENCODING = ",".join(("identity", *RESPONSE_ENCODINGS))

Trailing = list[tuple[str, str | bytes]]


class GrpcCallError(Exception):
    """A call that did not return OK: the gRPC status code, its message, and the trailing metadata
    (`-bin` values decoded to bytes). `answered`: the server sent this status (or a response, however
    malformed); else our side made it up. `unreachable`: made up because there is no connection to the
    server (cannot connect, TLS failure, the connection lost or going away)."""

    def __init__(self, code: Status, message: str, trailing: Trailing | None = None, *,
                 answered: bool = True, unreachable: bool = False) -> None:
        super().__init__(f"{int(code)}: {message}")
        self.code = code
        self.message = message
        self.trailing: Trailing = trailing or []
        self.answered = answered and not unreachable
        self.unreachable = unreachable


def no_connection(message: str) -> GrpcCallError:
    """UNAVAILABLE made up by our side: no connection to the server."""
    return GrpcCallError(Status.UNAVAILABLE, message, unreachable=True)


class _Refused(GrpcCallError):
    """RST_STREAM(REFUSED_STREAM): the server did not process the stream (RFC 9113 8.7), so it is safe
    to send again at once; a server that frees a stream slot a moment after our side saw it close does this."""


class _Unprocessed(GrpcCallError):
    """Above the last stream id of a GOAWAY: the server says it did not process the call (RFC 9113
    6.8), so it goes out again at once on another connection, not after the retry backoff."""


class _NotSent(Exception):
    """The connection cannot take a new stream; nothing of the call went out: use another connection."""


def _malformed(why: str) -> GrpcCallError:
    return GrpcCallError(Status.UNAVAILABLE, f"malformed response: {why}")


def grpc_timeout(seconds: float) -> str:
    """`grpc-timeout`: at most 8 digits and a unit."""
    ms = max(1, math.ceil(seconds * 1000))
    return f"{ms}m" if ms < 10**8 else f"{min(10**8 - 1, math.ceil(seconds))}S"


@dataclass(frozen=True, slots=True)
class Keepalive:
    """grpc-go's keepalive.ClientParameters: after `time` seconds without reading anything, a PING; when
    nothing at all arrives within `timeout` after it, the connection is dead (a black-holed peer) and
    its calls fail as UNAVAILABLE. Idle connections are pinged only if `permit_without_stream`."""

    time: float
    timeout: float
    permit_without_stream: bool = False


@dataclass(slots=True, eq=False)
class _Call:
    sid: int
    send_window: int
    done: asyncio.Future[bytes]
    recv_window: int = STREAM_WINDOW
    recv_unacked: int = 0
    headers: list[tuple[str, str]] | None = None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    reset: bool = False  # RST_STREAM sent or received: nothing more to send on it


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: frames in (`data_received`), calls out (`call`)."""

    def __init__(self, max_response: int, keepalive: Keepalive | None = None) -> None:
        self.max_response = max_response
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.keepalive = keepalive
        self.last_read = loop.time()
        self.ping_sent = 0.0  # when our keepalive PING went out, while it is unanswered
        self.ping_timer: asyncio.TimerHandle | None = None
        self.dormant = False  # keepalive waits for a call (idle, and not permit_without_stream)
        self.too_many_pings = False  # GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.decoder = HeaderDecoder(MAX_HEADER_LIST)
        self.calls: dict[int, _Call] = {}
        self.next_sid = 1
        self.settled: asyncio.Future[None] = loop.create_future()  # the server's first SETTINGS
        self.lost: asyncio.Future[None] = loop.create_future()
        self.error: GrpcCallError | None = None  # set once the connection is unusable
        self.goaway = False  # no new streams (GOAWAY received, or stream ids used up)
        self.max_streams = MAX_STREAM_ID
        self.max_frame = DEFAULT_MAX_FRAME
        self.peer_initial_window = DEFAULT_PEER_WINDOW
        self.send_window = DEFAULT_PEER_WINDOW
        self.recv_window = CONN_WINDOW
        self.recv_unacked = 0
        self.blocks = HeaderBlock()
        self.paused = False
        self.waiters: list[asyncio.Future[None]] = []

    def usable(self) -> bool:
        return self.error is None and not self.goaway and self.transport is not None

    # -- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        settings = [(S_ENABLE_PUSH, 0), (S_INITIAL_WINDOW_SIZE, STREAM_WINDOW), (S_MAX_FRAME_SIZE, RECV_MAX_FRAME),
                    (S_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST)]
        transport.write(PREFACE + frame(SETTINGS, 0, 0, b"".join(SETTING.pack(k, v) for k, v in settings))
                        + frame(WINDOW_UPDATE, 0, 0, U32.pack(CONN_WINDOW - DEFAULT_PEER_WINDOW)))
        if self.keepalive is not None:
            self.ping_timer = self.loop.call_later(self.keepalive.time, self._keepalive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        why = f"connection lost: {exc}" if exc else "connection closed by the server"
        self._fail_all(no_connection(why))
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        buf = self.buf
        try:
            buf += data
            with memoryview(buf) as mv:
                consumed = self._frames(mv)
            del buf[:consumed]
        except ConnectionError_ as exc:
            self.abort(exc.code, f"protocol error: {exc}")
        except Exception as exc:  # a peer must never crash us: whatever it sent ends the connection
            log.debug("HTTP/2 client: unexpected failure reading frames", exc_info=True)
            self.abort(INTERNAL_ERROR, f"cannot read the server's frames: {exc!r}")
        self._send_now()

    def _send_now(self) -> None:
        if self.out:
            if self.transport is not None:
                self.transport.write(b"".join(self.out))
            self.out.clear()

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait(self) -> None:
        w = self.loop.create_future()
        self.waiters.append(w)
        await w

    # -- keepalive, on a timer as grpc-go's: anything read counts as a sign of life, not only the PING's ACK
    def _keepalive(self) -> None:
        self.ping_timer = None
        ka = self.keepalive
        if ka is None or self.transport is None:
            return
        if self.ping_sent:
            if self.last_read <= self.ping_sent:
                self.close(f"keepalive: nothing received within {ka.timeout}s of a PING")
                return
            self.ping_sent = 0.0
        idle = self.loop.time() - self.last_read
        if idle < ka.time:
            self.ping_timer = self.loop.call_later(ka.time - idle, self._keepalive)
        elif self.calls or ka.permit_without_stream:
            self._ping()
        else:
            self.dormant = True  # the next call wakes it with a PING

    def _ping(self) -> None:
        assert self.keepalive is not None and self.transport is not None
        self.dormant = False
        self.ping_sent = self.loop.time()
        self.transport.write(frame(PING, 0, 0, b"keepaliv"))
        self.ping_timer = self.loop.call_later(self.keepalive.timeout, self._keepalive)

    def drain(self) -> None:
        """No new calls; close once the calls in flight are answered (an address no longer resolved)."""
        self.goaway = True
        self._finished()

    # -- ending
    def _fail_all(self, error: GrpcCallError) -> None:
        if self.error is None:
            self.error = error
        calls, self.calls = self.calls, {}
        for call in calls.values():
            if not call.done.done():
                call.done.set_exception(error)
        if not self.settled.done():
            self.settled.set_exception(error)
            self.settled.exception()  # retrieved: whoever connects reads it from `error`
        self._wake()

    def abort(self, code: int, why: str) -> None:
        """End the connection: GOAWAY(code) and close; every call fails as UNAVAILABLE."""
        log.debug("HTTP/2 client: closing the connection: %s", why)
        if self.transport is not None:
            self._send_now()
            self.transport.write(frame(GOAWAY, 0, 0, U32.pack(0) + U32.pack(code) + why.encode()[:256]))
            self.transport.close()
            self.transport = None
        self.out.clear()
        self._fail_all(no_connection(why))

    def close(self, why: str) -> None:
        """Drop the connection at once (no TLS close_notify to wait for); every call fails as UNAVAILABLE."""
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self._fail_all(no_connection(why))

    def _finished(self) -> None:
        """A call left `calls`: a stream slot is free; a connection told to go away closes once idle."""
        if self.goaway and not self.calls and self.transport is not None:
            self.transport.close()
        self._wake()

    def _reset(self, call: _Call, code: int, error: GrpcCallError) -> None:
        """A stream-level error: RST_STREAM(code) and fail the call."""
        if self.calls.pop(call.sid, None) is not None:
            call.reset = True
            self.out.append(frame(RST_STREAM, 0, call.sid, U32.pack(code)))
            if not call.done.done():
                call.done.set_exception(error)
            self._finished()

    # -- frames in
    def _frames(self, mv: memoryview) -> int:
        pos = 0
        n = len(mv)
        while n - pos >= 9:
            length = (mv[pos] << 16) | (mv[pos + 1] << 8) | mv[pos + 2]
            if length > RECV_MAX_FRAME:
                raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            end = pos + 9 + length
            if end > n:
                break
            kind = mv[pos + 3]
            flags = mv[pos + 4]
            sid = U32.unpack_from(mv, pos + 5)[0] & 0x7FFFFFFF
            start = pos + 9
            pos = end
            if not self.settled.done() and (kind != SETTINGS or flags & ACK):
                raise ConnectionError_(PROTOCOL_ERROR, "the server's first frame is not SETTINGS")
            if self.blocks.pending is not None and kind != CONTINUATION:
                raise ConnectionError_(PROTOCOL_ERROR, "expected CONTINUATION")
            if kind == DATA:
                self._data(sid, flags, mv, start, end)
            elif kind == HEADERS:
                if sid == 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
                block = self.blocks.headers(sid, flags, mv, start, end)
                if block is not None:
                    self._headers(sid, flags, block)
            elif kind == CONTINUATION:
                block = self.blocks.continuation(sid, flags, mv, start, end)
                if block is not None:
                    self._headers(self.blocks.sid, self.blocks.flags, block)
            elif kind == SETTINGS:
                if sid != 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
                if flags & ACK:
                    if length:
                        raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
                else:
                    self._settings(mv[start:end])
                    self.out.append(frame(SETTINGS, ACK, 0))
                    if not self.settled.done():
                        self.settled.set_result(None)
            elif kind == PING:
                if length != 8 or sid != 0:
                    raise ConnectionError_(FRAME_SIZE_ERROR if length != 8 else PROTOCOL_ERROR, "bad PING")
                if not flags & ACK:
                    self.out.append(frame(PING, ACK, 0, bytes(mv[start:end])))
            elif kind == WINDOW_UPDATE:
                if length != 4:
                    raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
                self._window_update(sid, U32.unpack_from(mv, start)[0] & 0x7FFFFFFF)
            elif kind == RST_STREAM:
                if length != 4 or sid == 0:
                    raise ConnectionError_(FRAME_SIZE_ERROR if length != 4 else PROTOCOL_ERROR, "bad RST_STREAM")
                self._rst_stream(sid, U32.unpack_from(mv, start)[0])
            elif kind == GOAWAY:
                if length < 8 or sid != 0:
                    raise ConnectionError_(FRAME_SIZE_ERROR if length < 8 else PROTOCOL_ERROR, "bad GOAWAY")
                self._goaway(U32.unpack_from(mv, start)[0] & 0x7FFFFFFF, U32.unpack_from(mv, start + 4)[0],
                             bytes(mv[start + 8:end]))
            elif kind == PUSH_PROMISE:
                raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE, though push is disabled")
            # PRIORITY and unknown frame types are ignored, as RFC 9113 asks.
        if self.recv_unacked >= CONN_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(self.recv_unacked)))
            self.recv_window += self.recv_unacked
            self.recv_unacked = 0
        return pos

    def _known(self, sid: int) -> _Call | None:
        """The open call on `sid`; None for a stream we closed; a connection error for one never opened."""
        call = self.calls.get(sid)
        if call is None and (sid % 2 == 0 or sid >= self.next_sid):
            raise ConnectionError_(PROTOCOL_ERROR, f"frame on idle stream {sid}")
        return call

    def _data(self, sid: int, flags: int, mv: memoryview, start: int, end: int) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        length = end - start
        self.recv_window -= length
        if self.recv_window < 0:
            raise ConnectionError_(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self.recv_unacked += length
        call = self._known(sid)
        if call is None:
            return
        call.recv_window -= length
        if call.recv_window < 0:
            self._reset(call, FLOW_CONTROL_ERROR, _malformed("DATA beyond the stream window"))
            return
        if flags & PADDED:
            start, end = unpad(mv, start, end)
        if call.headers is None:
            self._reset(call, PROTOCOL_ERROR, _malformed("DATA before the response headers"))
            return
        if end > start:
            call.parts.append(bytes(mv[start:end]))
            call.size += end - start
            if call.size > self.max_response + 5:
                self._reset(call, CANCEL, GrpcCallError(
                    Status.RESOURCE_EXHAUSTED, f"response larger than max ({self.max_response} bytes)"))
                return
        if flags & END_STREAM:
            self.calls.pop(sid, None)
            if not call.done.done():
                call.done.set_exception(_malformed("the stream ended without trailers"))
            self._finished()
            return
        call.recv_unacked += length
        if call.recv_unacked >= STREAM_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, sid, U32.pack(call.recv_unacked)))
            call.recv_window += call.recv_unacked
            call.recv_unacked = 0

    def _headers(self, sid: int, flags: int, block: bytearray) -> None:
        try:  # always decoded: the HPACK dynamic table is the connection's
            headers = self.decoder.decode(block)
        except hpack.HPACKError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, f"cannot decode headers: {exc}") from None
        call = self._known(sid)
        if call is None:
            return
        if call.headers is None:
            status = next((v for k, v in headers if k == ":status"), "")
            if status[:1] == "1" and not flags & END_STREAM:
                return  # an informational response: the real one follows
            call.headers = headers
            if flags & END_STREAM:
                self._end(call, headers)  # Trailers-Only
        elif flags & END_STREAM:
            self._end(call, headers)
        else:
            self._reset(call, PROTOCOL_ERROR, _malformed("a second header block without END_STREAM"))

    def _settings(self, payload: memoryview) -> None:
        for key, value in read_settings(payload):
            if key == S_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self.calls.values():
                    call.send_window += delta
                self._wake()
            elif key == S_MAX_FRAME_SIZE:
                self.max_frame = value
            elif key == S_MAX_CONCURRENT_STREAMS:
                self.max_streams = value
                self._wake()
            # HEADER_TABLE_SIZE: our blocks never use the dynamic table; others do not concern a client.

    def _window_update(self, sid: int, increment: int) -> None:
        if sid == 0:
            if increment == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
        else:
            call = self._known(sid)
            if call is None:
                return
            if increment == 0:
                self._reset(call, PROTOCOL_ERROR, _malformed("WINDOW_UPDATE of 0"))
                return
            call.send_window += increment
            if call.send_window > MAX_WINDOW:
                self._reset(call, FLOW_CONTROL_ERROR, _malformed("stream window above 2^31-1"))
                return
        self._wake()

    def _rst_stream(self, sid: int, code: int) -> None:
        call = self._known(sid)
        if call is None:
            return
        del self.calls[sid]
        call.reset = True
        if not call.done.done():
            kind = _Refused if code == REFUSED_STREAM else GrpcCallError
            call.done.set_exception(kind(RST_TO_GRPC.get(code, Status.INTERNAL),
                                         f"stream reset by the server with HTTP/2 error code {code}"))
        self._finished()

    def _goaway(self, last: int, code: int, debug: bytes) -> None:
        self.goaway = True
        self.too_many_pings = self.too_many_pings or (code == ENHANCE_YOUR_CALM and debug == b"too_many_pings")
        why = f"the server is closing the connection (GOAWAY, HTTP/2 error code {code}"
        why += f": {debug[:200].decode(errors='replace')})" if debug else ")"
        for sid in [s for s in self.calls if s > last]:
            call = self.calls.pop(sid)
            call.reset = True
            if not call.done.done():
                call.done.set_exception(_Unprocessed(Status.UNAVAILABLE, f"{why}; the call was not processed",
                                                      unreachable=True))
        if not self.calls and self.transport is not None:
            self.transport.close()
        self._wake()

    # -- a response, once complete
    def _end(self, call: _Call, trailers: list[tuple[str, str]]) -> None:
        del self.calls[call.sid]
        try:
            result = self._outcome(call, trailers)
        except GrpcCallError as exc:
            if not call.done.done():
                call.done.set_exception(exc)
        else:
            if not call.done.done():
                call.done.set_result(result)
        self._finished()

    def _outcome(self, call: _Call, trailers: list[tuple[str, str]]) -> bytes:
        headers = call.headers or []
        status = next((v for k, v in headers if k == ":status"), "")
        if not status.isdigit():
            raise _malformed(f"no valid :status ({status!r})")
        code_text = next((v for k, v in trailers if k == "grpc-status"), None)
        if code_text is None:
            if status != "200":
                raise GrpcCallError(HTTP_TO_GRPC.get(int(status), Status.UNKNOWN),
                                    f"HTTP status {status} without grpc-status")
            raise _malformed("no grpc-status in the trailers")
        if not code_text.isdigit():
            raise _malformed(f"grpc-status {code_text[:20]!r}")
        code = int(code_text)
        if code:  # not OK (0)
            text = urllib.parse.unquote(next((v for k, v in trailers if k == "grpc-message"), ""), errors="replace")
            raise GrpcCallError(Status.of(code), text, _trailing(trailers))
        data = b"".join(call.parts)
        call.parts = []
        if not data:
            return b""  # no response message: read as an empty one
        if len(data) < 5 or data[0] > 1 or U32.unpack_from(data, 1)[0] != len(data) - 5:
            raise _malformed("the response is not one length-prefixed message")
        if not data[0]:
            return data[5:]
        encoding = next((v for k, v in headers if k == "grpc-encoding"), "identity")
        if encoding not in RESPONSE_ENCODINGS:
            raise _malformed(f"compressed with grpc-encoding {encoding!r}")
        try:
            return decompress(data[5:], encoding, self.max_response)
        except BodyTooLarge:
            raise GrpcCallError(
                Status.RESOURCE_EXHAUSTED, f"response larger than max ({self.max_response} bytes)") from None
        except BadEncoding as exc:
            raise _malformed(str(exc)) from None

    # -- a call out
    async def call(self, block: bytes, body: list[bytes | bytearray | memoryview]) -> bytes:
        """Send HEADERS (`block`) and the request (the gRPC prefix and message, in pieces); return the
        response message. Raises `_NotSent` while nothing has gone out and the connection cannot take
        the stream."""
        while len(self.calls) >= self.max_streams:
            if not self.usable():
                raise _NotSent
            await self._wait()
        if not self.usable() or self.next_sid > MAX_STREAM_ID:
            self.goaway = self.goaway or self.next_sid > MAX_STREAM_ID
            raise _NotSent
        transport = self.transport
        assert transport is not None
        sid = self.next_sid
        self.next_sid += 2
        cursor = _Cursor(body)
        total = cursor.total
        call = _Call(sid, self.peer_initial_window, self.loop.create_future())
        self.calls[sid] = call
        if self.dormant:
            self._ping()
        parts = self._header_frames(sid, block)
        sent = 0
        try:
            while not call.done.done() and self.transport is not None:
                # At most WRITE_CHUNK at a time, then only once the transport has room again: what the
                # socket does not take waits in the transport's buffer, so that stays small.
                avail = min(self.send_window, call.send_window, total - sent, WRITE_CHUNK)
                if avail > 0 and not self.paused:
                    self._data_frames(parts, sid, cursor, avail, sent + avail == total)
                    self.send_window -= avail
                    call.send_window -= avail
                    sent += avail
                    _write(transport, parts)
                    parts.clear()
                    if sent == total:
                        break
                else:
                    if parts:
                        transport.write(b"".join(parts))
                        parts.clear()
                    await self._wait()
            return await call.done
        finally:
            parts.clear()
            if self.calls.pop(sid, None) is not None:
                # Cancelled (deadline, shutdown) while in flight: the server may stop working on it.
                call.reset = True
                if self.transport is not None:
                    self.transport.write(frame(RST_STREAM, 0, sid, U32.pack(CANCEL)))
                self._finished()
            elif sent < total and not call.reset and self.transport is not None:
                # The response came before the whole request: close our side of the stream.
                self.transport.write(frame(RST_STREAM, 0, sid, U32.pack(NO_ERROR)))

    def _header_frames(self, sid: int, block: bytes) -> list[bytes | memoryview]:
        limit = self.max_frame
        if len(block) <= limit:
            return [frame_head(len(block), HEADERS, END_HEADERS, sid), block]
        parts: list[bytes | memoryview] = [frame_head(limit, HEADERS, 0, sid), block[:limit]]
        for i in range(limit, len(block), limit):
            chunk = block[i:i + limit]
            parts += [frame_head(len(chunk), CONTINUATION, END_HEADERS if i + limit >= len(block) else 0, sid), chunk]
        return parts

    def _data_frames(self, parts: list[bytes | memoryview], sid: int, cursor: _Cursor, n: int, last: bool) -> None:
        """DATA frames for the next `n` bytes of the request, no larger than the server allows."""
        limit = self.max_frame
        while n > 0:
            size = min(limit, n)
            n -= size
            parts.append(frame_head(size, DATA, END_STREAM if last and not n else 0, sid))
            cursor.take(size, parts)


class _Cursor:
    """A request's bytes in consecutive pieces, handed out front to back as memoryview slices."""

    __slots__ = ("index", "offset", "total", "views")

    def __init__(self, pieces: list[bytes | bytearray | memoryview]) -> None:
        self.views = [memoryview(p).cast("B") for p in pieces if len(p)]
        self.total = sum(map(len, self.views))
        self.index = 0
        self.offset = 0

    def take(self, n: int, out: list[bytes | memoryview]) -> None:
        while n > 0:
            view = self.views[self.index]
            rest = len(view) - self.offset
            if n < rest:
                out.append(view[self.offset:self.offset + n])
                self.offset += n
                return
            # Always a slice, never the piece's own view: a transport may keep what it was given
            # (Python 3.12+ queues it uncopied), and a slice stays valid on its own.
            out.append(view[self.offset:])
            n -= rest
            self.index += 1
            self.offset = 0


def _write(transport: asyncio.Transport, parts: list[bytes | memoryview]) -> None:
    """Frames out in as few writes as copies allow: large slices of the message go as they are."""
    small: list[bytes | memoryview] = []
    for part in parts:
        if len(part) >= 65536:
            if small:
                transport.write(b"".join(small))
                small.clear()
            transport.write(part)
        else:
            small.append(part)
    if small:
        transport.write(b"".join(small))


def _trailing(trailers: list[tuple[str, str]]) -> Trailing:
    out: Trailing = []
    for key, value in trailers:
        if key[:1] == ":" or key in ("grpc-status", "grpc-message"):
            continue
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                continue  # undecodable: dropped
        else:
            out.append((key, value))
    return out
