"""A gRPC server for unary calls, on asyncio and our own HTTP/2 framing.

Why not grpcio's server: its requests hop between gRPC core's threads, its completion-queue poller
and the event loop; on this workload that costs 500-700 µs of CPU per request before any handler
runs, more than parsing the request does. Here a request is read, framed and answered on the event
loop, with no thread hop (see `bench/RESULTS.md`).

What a unary gRPC call needs of HTTP/2 (RFC 9113), and all this implements:
- the connection preface and SETTINGS exchange, PING acknowledgements, GOAWAY both ways;
- HEADERS (+ CONTINUATION) decoded with HPACK (`hpack_decoder`: its dynamic table is per connection),
  a header block of at most 256 KiB, padding and priority fields skipped;
- DATA gathered per stream until END_STREAM; receive windows kept open with WINDOW_UPDATE; responses
  sent as the peer's send windows allow, in frames of at most 16 KiB (what every peer accepts);
- RST_STREAM from the client drops the stream; a stream over `max_concurrent_streams` is refused (a
  reset stream whose handler still runs keeps counting, so resets cannot pile up handlers).
A peer that does not read what we send is not read from either (`pause_writing`), so floods of
PINGs or requests never buffer without bound.
gRPC on top (the "gRPC over HTTP2" protocol): the length-prefixed message, `grpc-encoding` (gzip,
deflate, zstd, identity), a message over the size limit refused with RESOURCE_EXHAUSTED as soon as
its length prefix arrives, and responses as headers + message + trailers, or trailers only on error
(`grpc-status`, percent-encoded `grpc-message`, `grpc-status-details-bin`), kept within the 8 KiB
of trailers that gRPC clients accept.

Handlers are coroutines `handler(message, metadata) -> response bytes` that raise `GrpcError`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import hpack

from gateway.transport.compression import ENCODINGS, BadEncoding, BodyTooLarge, decompress
from gateway.transport.grpc_status import Status
from gateway.transport.h2 import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_PEER_WINDOW,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    MAX_HEADER_LIST,
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
    S_HEADER_TABLE_SIZE,
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
    hpack_indexed_name,
    hpack_literal,
    hpack_str,
    unpad,
)
from gateway.transport.hpack_decoder import HeaderDecoder

log = logging.getLogger("gateway.receiver.grpc")

Metadata = list[tuple[str, str]]
Handler = Callable[[bytes, Metadata], Awaitable[bytes]]

MAX_FRAME = 2**24 - 1  # the largest frame we let a client send (fewer frames, less work per byte)
FRAME_OUT = 16384  # the largest frame we send: the SETTINGS_MAX_FRAME_SIZE every peer accepts
CONN_WINDOW = 64 * 1024 * 1024  # replenished when half is used
ACCEPT_ENCODING = ",".join(("identity", *ENCODINGS))
# Trailers past 8 KiB (names + values + 32 each) are refused by grpc core (at random, from its soft
# limit) and grpc-java: the message and details values share this, the message cut to fit.
MAX_TRAILER_VALUES = 7 * 1024
MAX_GRPC_MESSAGE = 4096


class GrpcError(Exception):
    """A handler's refusal: a gRPC status code, a message, and optional `grpc-status-details-bin`."""

    def __init__(self, code: Status, message: str, details: bytes | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


_STATUS_200 = b"\x88"  # ":status: 200", static table index 8
_CONTENT_TYPE = hpack_indexed_name(31, "application/grpc")  # static name index 31
RESPONSE_HEADERS = _STATUS_200 + _CONTENT_TYPE + hpack_literal("grpc-accept-encoding", ACCEPT_ENCODING)
OK_TRAILERS = hpack_literal("grpc-status", str(int(Status.OK)))


def percent_encode(message: str, limit: int = MAX_GRPC_MESSAGE) -> bytes:
    """`grpc-message`: UTF-8, with bytes outside printable ASCII and '%' percent-encoded; cut at a
    character to at most `limit` bytes."""
    out = bytearray()
    for ch in message:
        raw = ch.encode(errors="replace")  # a lone surrogate becomes "?"
        piece = raw if " " <= ch <= "~" and ch != "%" else b"".join(b"%%%02X" % b for b in raw)
        if len(out) + len(piece) > limit:
            break
        out += piece
    return bytes(out)


def error_trailers(code: Status, message: str, details: bytes | None) -> bytes:
    block = RESPONSE_HEADERS + hpack_literal("grpc-status", str(int(code)))
    encoded = base64.b64encode(details).rstrip(b"=") if details else b""
    if len(encoded) > MAX_TRAILER_VALUES - 1024:  # no client would take them, nor the status with them
        log.debug("grpc-status-details-bin of %d bytes left out", len(encoded))
        encoded = b""
    if message:
        limit = min(MAX_GRPC_MESSAGE, MAX_TRAILER_VALUES - len(encoded))
        block += hpack_literal("grpc-message", percent_encode(message, limit))
    if encoded:
        block += hpack_literal("grpc-status-details-bin", encoded)
    return block


@dataclass(slots=True)
class _Stream:
    headers: Metadata
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    declared: int = -1  # the gRPC message length from its prefix, once 5 bytes have arrived
    compressed: int = 0
    refused: bool = False  # answered early (too large): further data is dropped
    send_window: int = 0
    handling: bool = False  # its handler runs


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2GrpcServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface = False
        self.decoder = HeaderDecoder(MAX_HEADER_LIST)
        self.streams: dict[int, _Stream] = {}
        self.last_stream = 0
        self.unacked = 0  # bytes received on the connection since the last WINDOW_UPDATE we sent
        self.blocks = HeaderBlock()
        self.peer_window = DEFAULT_PEER_WINDOW  # for streams the peer has not told us about
        self.conn_send_window = DEFAULT_PEER_WINDOW
        self.blocked: list[tuple[int, bytes]] = []  # (stream, the rest of its response) waiting for send window
        self.tasks: set[asyncio.Task[None]] = set()
        self.orphans: set[int] = set()  # streams the client reset while their handler runs
        self.goaway_sent = False
        self.peer_goaway = False
        self.out: list[bytes] = []  # frames to write
        self.flush_scheduled = False

    # -- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        settings = [(S_INITIAL_WINDOW_SIZE, self.server.stream_window), (S_MAX_FRAME_SIZE, MAX_FRAME),
                    (S_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST), (S_ENABLE_PUSH, 0)]
        if self.server.max_concurrent_streams:
            settings.append((S_MAX_CONCURRENT_STREAMS, self.server.max_concurrent_streams))
        payload = b"".join(SETTING.pack(k, v) for k, v in settings)
        transport.write(frame(SETTINGS, 0, 0, payload)
                        + frame(WINDOW_UPDATE, 0, 0, U32.pack(CONN_WINDOW - DEFAULT_PEER_WINDOW)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        # The peer is not reading what we send: read no more from it (each PING, SETTINGS or request
        # read would add to what waits for it) until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if not self.preface:
            buf += data
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(bytes(buf)):
                    self._close()
                return
            if buf[: len(PREFACE)] != PREFACE:
                self._close()
                return
            del buf[: len(PREFACE)]
            self.preface = True
            data = bytes(buf)
            buf.clear()
        out = self.out
        try:
            if buf:
                buf += data
                with memoryview(buf) as mv:
                    consumed = self._frames(mv, out)
                del buf[:consumed]
            else:
                # The common case: frames straight from what was read; only a partial tail is kept.
                with memoryview(data) as mv:
                    consumed = self._frames(mv, out)
                if consumed < len(data):
                    buf += data[consumed:]
        except ConnectionError_ as exc:
            log.debug("HTTP/2 connection error: %s", exc)
            self._send_now()
            self._goaway(exc.code, str(exc))
            return
        self._send_now()
        if self.peer_goaway and not self.streams:
            self._close()

    def _send_now(self) -> None:
        out = self.out
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        out.clear()

    def _send_soon(self) -> None:
        """Responses finished in one turn of the event loop go out in one write."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    # -- frames
    def _frames(self, mv: memoryview, out: list[bytes]) -> int:
        pos = 0
        n = len(mv)
        streams = self.streams
        while n - pos >= 9:
            length = (mv[pos] << 16) | (mv[pos + 1] << 8) | mv[pos + 2]
            if length > MAX_FRAME:
                raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            end = pos + 9 + length
            if end > n:
                break
            kind = mv[pos + 3]
            flags = mv[pos + 4]
            sid = U32.unpack_from(mv, pos + 5)[0] & 0x7FFFFFFF
            start = pos + 9
            pos = end
            if self.blocks.pending is not None and kind != CONTINUATION:
                raise ConnectionError_(PROTOCOL_ERROR, "expected CONTINUATION")
            if kind == DATA:
                self.unacked += length
                if flags & PADDED:
                    start, end = unpad(mv, start, end)
                st = streams.get(sid)
                if st is not None and not st.refused:
                    self._data(sid, st, mv[start:end], out)
                if flags & END_STREAM and st is not None:
                    self._end(sid, out)
            elif kind == HEADERS:
                block = self.blocks.headers(sid, flags, mv, start, end)
                if block is not None:
                    self._headers(sid, flags, block, out)
            elif kind == CONTINUATION:
                block = self.blocks.continuation(sid, flags, mv, start, end)
                if block is not None:
                    self._headers(self.blocks.sid, self.blocks.flags, block, out)
            elif kind == SETTINGS:
                if not flags & ACK:
                    self._settings(mv[start:end])
                    out.append(frame(SETTINGS, ACK, 0))
                    self._unblock(out)  # a larger SETTINGS_INITIAL_WINDOW_SIZE opens stream windows
            elif kind == PING:
                if not flags & ACK:
                    out.append(frame(PING, ACK, 0, bytes(mv[start:end])))
            elif kind == WINDOW_UPDATE:
                if length != 4:
                    raise ConnectionError_(FRAME_SIZE_ERROR, f"WINDOW_UPDATE of {length} bytes")
                self._window_update(sid, U32.unpack_from(mv, start)[0] & 0x7FFFFFFF, out)
            elif kind == RST_STREAM:
                st = streams.pop(sid, None)
                if st is not None and st.handling:
                    self.orphans.add(sid)
            elif kind == GOAWAY:
                self.peer_goaway = True
            elif kind == PUSH_PROMISE:
                raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            # PRIORITY and unknown frame types are ignored, as RFC 9113 asks.
        if self.unacked >= CONN_WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(self.unacked)))
            self.unacked = 0
        return pos

    def _settings(self, payload: memoryview) -> None:
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
        for i in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, i)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self.peer_window
                self.peer_window = value
                for st in self.streams.values():
                    st.send_window += delta
            elif key == S_HEADER_TABLE_SIZE:
                pass  # our encoder never uses the dynamic table

    def _window_update(self, sid: int, increment: int, out: list[bytes]) -> None:
        if sid == 0:
            self.conn_send_window += increment
        else:
            st = self.streams.get(sid)
            if st is not None:
                st.send_window += increment
        self._unblock(out)

    def _unblock(self, out: list[bytes]) -> None:
        if self.blocked:
            waiting, self.blocked = self.blocked, []
            for sid, data in waiting:
                st = self.streams.get(sid)
                if st is not None:
                    self._send(sid, st, data, out)

    def _headers(self, sid: int, flags: int, block: bytearray, out: list[bytes]) -> None:
        try:
            headers = self.decoder.decode(block)
        except hpack.HPACKError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, f"cannot decode headers: {exc}") from None
        if sid in self.streams:  # trailers from the client
            if flags & END_STREAM:
                self._end(sid, out)
            return
        if sid % 2 == 0 or sid <= self.last_stream:
            raise ConnectionError_(PROTOCOL_ERROR, f"bad stream id {sid}")
        self.last_stream = sid
        limit = self.server.max_concurrent_streams
        if self.goaway_sent or (limit and len(self.streams) + len(self.orphans) >= limit):
            out.append(frame(RST_STREAM, 0, sid, U32.pack(REFUSED_STREAM)))
            return
        self.streams[sid] = _Stream(headers, send_window=self.peer_window)
        if flags & END_STREAM:
            self._end(sid, out)

    def _data(self, sid: int, st: _Stream, chunk: memoryview, out: list[bytes]) -> None:
        """Gather the stream's bytes; the gRPC prefix (flag, length) is read off as soon as it is whole,
        so the parts hold only the message and a single-part message is never copied again."""
        if st.declared >= 0:
            st.parts.append(bytes(chunk))
            st.size += len(chunk)
            return
        if st.parts:
            head: bytes | memoryview = b"".join(st.parts) + bytes(chunk)
        else:
            head = chunk
        if len(head) < 5:
            st.parts = [bytes(head)]
            return
        st.compressed = head[0]
        st.declared = U32.unpack_from(head, 1)[0]
        st.parts = [bytes(head[5:])]
        st.size = len(head) - 5
        if st.declared > self.server.max_message:
            st.refused = True
            st.parts = []
            msg = self.server.on_too_large(self._path(st), st.declared)
            self._respond(sid, error_trailers(Status.RESOURCE_EXHAUSTED, msg, None), b"", out)
            out.append(frame(RST_STREAM, 0, sid, U32.pack(NO_ERROR)))

    @staticmethod
    def _path(st: _Stream) -> str:
        for name, value in st.headers:
            if name == ":path":
                return str(value)
        return ""

    def _end(self, sid: int, out: list[bytes]) -> None:
        st = self.streams.get(sid)
        if st is None:
            return
        path = ""
        encoding = ""
        content_type = ""
        method = ""
        metadata: Metadata = []
        for name, value in st.headers:
            if name[:1] == ":":
                if name == ":path":
                    path = value
                elif name == ":method":
                    method = value
            elif name == "content-type":
                content_type = value
            elif name == "grpc-encoding":
                encoding = value
            elif name in ("te", "grpc-timeout", "grpc-accept-encoding"):
                continue
            elif not name.endswith("-bin"):
                metadata.append((name, value))
        if method != "POST" or not content_type.startswith("application/grpc"):
            # Not a gRPC call: a plain HTTP status, as grpc-go answers (gRPC clients map it to a code).
            status = b"405" if method != "POST" else b"415"
            self.streams.pop(sid, None)
            block = b"\x00" + hpack_str(b":status") + hpack_str(status)
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
            return
        handler = self.server.methods.get(path)
        if handler is None:
            self._finish(sid, error_trailers(Status.UNIMPLEMENTED, f"unknown service or method {path}", None), out)
            return
        if st.declared < 0:
            self._finish(sid, error_trailers(Status.INTERNAL, "expected one request message, got none", None), out)
            return
        message = st.parts[0] if len(st.parts) == 1 else b"".join(st.parts)
        st.parts = []
        if st.size != st.declared:
            self._finish(sid, error_trailers(
                Status.INTERNAL, f"request message of {st.size} bytes, its prefix says {st.declared}", None), out)
            return
        if st.compressed:
            if encoding not in ENCODINGS:
                self._finish(sid, error_trailers(
                    Status.UNIMPLEMENTED, f"grpc-encoding {encoding!r} is not supported (want {ACCEPT_ENCODING})",
                    None), out)
                return
            try:
                message = decompress(message, encoding, self.server.max_message)
            except BodyTooLarge:
                msg = self.server.on_too_large(path, None)
                self._finish(sid, error_trailers(Status.RESOURCE_EXHAUSTED, msg, None), out)
                return
            except BadEncoding as exc:
                self._finish(sid, error_trailers(Status.INTERNAL, str(exc), None), out)
                return
        st.handling = True
        task = asyncio.get_running_loop().create_task(self._call(sid, st, handler, message, metadata))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, sid: int, st: _Stream, handler: Handler, message: bytes, metadata: Metadata) -> None:
        try:
            response = await handler(message, metadata)
        except GrpcError as exc:
            self._finish(sid, error_trailers(exc.code, exc.message, exc.details), self.out)
        except Exception:
            log.exception("gRPC handler failed")
            self._finish(sid, error_trailers(Status.UNKNOWN, "internal error in the gateway", None), self.out)
        else:
            self._respond(sid, RESPONSE_HEADERS, b"\x00" + U32.pack(len(response)) + response, self.out)
        finally:
            st.handling = False
            self.orphans.discard(sid)
        self._send_soon()

    def _flush(self) -> None:
        self.flush_scheduled = False
        self._send_now()
        if (self.peer_goaway or self.goaway_sent) and not self.streams:
            self._close()

    def _finish(self, sid: int, trailers_only: bytes, out: list[bytes]) -> None:
        self._respond(sid, trailers_only, b"", out)

    def _respond(self, sid: int, headers: bytes, data: bytes, out: list[bytes]) -> None:
        """Headers (+ one message and the OK trailers when `data`), or a trailers-only response."""
        st = self.streams.get(sid)
        if st is None:
            return  # the client reset the stream: nobody is listening
        if data:
            out.append(frame(HEADERS, END_HEADERS, sid, headers))
            self._send(sid, st, data, out)
        else:
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, headers))
            self.streams.pop(sid, None)

    def _send(self, sid: int, st: _Stream, data: bytes, out: list[bytes]) -> None:
        """As much of `data` as the peer's windows allow (the rest waits for its WINDOW_UPDATE), then
        the OK trailers."""
        n = max(0, min(len(data), st.send_window, self.conn_send_window))
        if n:
            st.send_window -= n
            self.conn_send_window -= n
            out.extend(frame(DATA, 0, sid, data[i: min(i + FRAME_OUT, n)]) for i in range(0, n, FRAME_OUT))
        if n < len(data):
            self.blocked.append((sid, data[n:]))
            return
        out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, OK_TRAILERS))
        self.streams.pop(sid, None)

    # -- ending
    def _goaway(self, code: int, why: str = "") -> None:
        if self.transport is None:
            return
        if not self.goaway_sent:
            self.goaway_sent = True
            self.transport.write(frame(GOAWAY, 0, 0, U32.pack(self.last_stream) + U32.pack(code)
                                       + why.encode()[:256]))
        if code != NO_ERROR:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def drain_and_close(self) -> None:
        self._send_now()
        self._goaway(NO_ERROR)
        if not self.tasks:
            self._close()


class H2GrpcServer:
    """Serves `methods` ("/package.Service/Method" -> handler) on one endpoint."""

    def __init__(
        self,
        methods: dict[str, Handler],
        *,
        max_message: int,
        max_concurrent_streams: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        on_too_large: Callable[[str, int | None], str] | None = None,
    ) -> None:
        self.methods = methods
        self.max_message = max_message
        self.max_concurrent_streams = max_concurrent_streams
        # A unary request up to the limit arrives without waiting for a stream WINDOW_UPDATE.
        self.stream_window = min(MAX_WINDOW, max(DEFAULT_PEER_WINDOW, max_message + 1024 * 1024))
        self.on_too_large = on_too_large or self._too_large
        self._ssl = ssl_context
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()

    def _too_large(self, path: str, size: int | None) -> str:
        """The refusal's message (`size` is None when the message passed the limit as it was inflated);
        the owner may count it, and word it, through `on_too_large`."""
        got = "after decompression" if size is None else f"({size} vs. {self.max_message})"
        return f"received message larger than max {got}"

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host or None, port, ssl=self._ssl, reuse_port=self._reuse_port or None,
            backlog=1024,
        )
        sockets: Sequence[socket.socket] = self._server.sockets
        bound: int = sockets[0].getsockname()[1]
        return bound

    async def stop(self, grace: float) -> None:
        """Stop accepting; tell every client (GOAWAY) and give in-flight calls `grace` seconds."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.drain_and_close()
        tasks = [t for c in self.connections for t in c.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for conn in list(self.connections):
            conn._close()
        await self._server.wait_closed()
        self._server = None
