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
    DEFAULT_MAX_FRAME,
    DEFAULT_PEER_WINDOW,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    MAX_HEADER_LIST,
    MAX_STREAM_ID,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
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
    hpack_indexed_name,
    hpack_literal,
    hpack_str,
    read_settings,
    unpad,
)
from gateway.transport.h2_lifecycle import Lifecycle, ServerLimits
from gateway.transport.h2_request import Malformed, Request, check_trailers, read_request
from gateway.transport.h2_state import (
    CALM_BUDGET,
    CALM_REFILL,
    CLOSED,
    HALF_CLOSED_REMOTE,
    IDLE,
    OPEN,
    RECV_DATA,
    RECV_DATA_END,
    RECV_HEADERS,
    RECV_HEADERS_END,
    RECV_RST,
    RECV_WINDOW_UPDATE,
    RESET_LOCAL,
    RESET_REMOTE,
    TINY_DATA,
    Error,
    RecentResets,
    RecvWindow,
    transition,
)
from gateway.transport.hpack_decoder import HeaderDecoder

Metadata = list[tuple[str, str]]

log = logging.getLogger("gateway.receiver.grpc")

Handler = Callable[[bytes, Metadata], Awaitable[bytes]]

FRAME_OUT = DEFAULT_MAX_FRAME  # the largest frame we send (what every peer takes)
# The largest frame we take, advertised in SETTINGS_MAX_FRAME_SIZE: Go's net/http2 server default. A
# request of a few hundred KiB then arrives in one DATA frame, kept as it was read, where 16 KiB frames
# would cost a pass of the frame loop and a copy each (scenario a: about 8% of its CPU); what a frame
# may make us hold stays bounded (and far below the 16 MiB the server used to advertise).
FRAME_IN = 1024 * 1024
CONN_WINDOW = 64 * 1024 * 1024  # the least connection receive window
CONN_WINDOW_THRESHOLD = 1024 * 1024  # window given back in WINDOW_UPDATEs of at least this
STREAM_WINDOW_SLACK = 64 * 1024  # past the largest message: its prefix, padding
_DRAIN_PING = b"gw-drain"  # the PING of a graceful GOAWAY (its ACK sends the final one)
_KEEPALIVE_PING = b"gw-alive"
_TEXT_PLAIN = hpack_indexed_name(31, "text/plain")
_NOT_GRPC = b"this is a gRPC endpoint: POST with content-type application/grpc\n"
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
    request: Request
    state: int
    recv_window: int  # what the client may still send on it (never given back: one unary message fits)
    send_window: int = 0
    parts: list[bytes] = field(default_factory=list)
    body: bytearray | None = None  # the message once it came in more than one frame: no object per frame
    size: int = 0
    declared: int = -1  # the gRPC message length from its prefix, once 5 bytes have arrived
    compressed: int = 0
    received: int = 0  # DATA payload bytes, against content-length
    held: int = 0  # bytes counted on the connection window, given back when the handler takes them
    refused: bool = False  # answered early (too large): further data is dropped
    handling: bool = False  # its handler runs


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2GrpcServer) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface = False
        self.settled = False  # the client's first SETTINGS arrived
        self.decoder = HeaderDecoder(MAX_HEADER_LIST)
        self.streams: dict[int, _Stream] = {}
        self.resets = RecentResets()
        self.last_stream = 0
        self.window = RecvWindow(server.conn_window, server.conn_window_threshold)
        self.blocks = HeaderBlock()
        self.self_dependent = False  # the pending header block's stream depends on itself
        self.peer_window = DEFAULT_PEER_WINDOW  # for streams the peer has not told us about
        self.conn_send_window = DEFAULT_PEER_WINDOW
        # (stream, the rest of its response, its trailers) waiting for send window
        self.blocked: list[tuple[int, bytes, bytes | None]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.orphans: set[int] = set()  # streams the client reset while their handler runs
        self.calm = CALM_BUDGET
        self.goaway_sent = False  # the final GOAWAY: no stream above last_stream is taken
        self.draining = False  # the first GOAWAY of a graceful close went out
        self.peer_goaway = False
        self.out: list[bytes] = []  # frames to write
        self.flush_scheduled = False
        self.life: Lifecycle | None = None

    # -- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        limits = self.limits
        if len(server.connections) >= limits.max_connections:
            server.refused_connections += 1
            transport.abort()
            return
        server.connections.add(self)
        self.life = Lifecycle(self, limits)
        if limits.write_high_water:
            transport.set_write_buffer_limits(high=limits.write_high_water)
        if limits.read_size and hasattr(transport, "max_size"):
            transport.max_size = limits.read_size  # selector transports read this much per recv
        payload = b"".join(SETTING.pack(k, v) for k, v in server.settings)
        transport.write(frame(SETTINGS, 0, 0, payload)
                        + frame(WINDOW_UPDATE, 0, 0, U32.pack(server.conn_window - DEFAULT_PEER_WINDOW)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.life is not None:
            self.life.stop()
        self.streams.clear()
        self.blocked.clear()
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
        if self.transport is None:
            return
        buf = self.buf
        life = self.life
        assert life is not None
        life.last_read = life.loop.time()
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
            if length > FRAME_IN:
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
            if not self.settled:
                if kind != SETTINGS or flags & ACK:
                    raise ConnectionError_(PROTOCOL_ERROR, "the preface must be followed by SETTINGS")
                self.settled = True
                assert self.life is not None
                self.life.handshake_done()
            if kind == DATA:
                st = streams.get(sid)
                if st is not None and st.state == OPEN and not flags & PADDED and length >= TINY_DATA:
                    # the common case, in one piece: the stream is open and takes the bytes
                    self.window.received(length)
                    st.recv_window -= length
                    if st.recv_window < 0:
                        self._stream_error(sid, FLOW_CONTROL_ERROR, out)
                        self._give_back(length, out)
                        continue
                    st.held += length
                    st.received += length
                    if st.received > st.request.content_length >= 0:
                        self._stream_error(sid, PROTOCOL_ERROR, out)
                        continue
                    if not st.refused:
                        self._data(sid, st, mv[start:end], out)
                    if flags & END_STREAM:
                        st.state = HALF_CLOSED_REMOTE
                        self._end(sid, st, out)
                else:
                    self._data_frame(sid, st, flags, mv, start, end, out)
            elif kind == HEADERS:
                if sid == 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
                self.self_dependent = bool(flags & PRIORITY_FLAG) and self._depends_on(mv, start, end, flags) == sid
                block = self.blocks.headers(sid, flags, mv, start, end)
                if block is not None:
                    self._headers(sid, flags, block, out)
                else:
                    assert self.life is not None
                    self.life.block_started()
            elif kind == CONTINUATION:
                if end - start < TINY_DATA:  # CVE-2023-45288: a block in crumbs costs like nothing else
                    self._spend(1)
                block = self.blocks.continuation(sid, flags, mv, start, end)
                if block is not None:
                    assert self.life is not None
                    self.life.handshake_done()
                    self._headers(self.blocks.sid, self.blocks.flags, block, out)
            elif kind == SETTINGS:
                if sid != 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
                if flags & ACK:
                    if length:
                        raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
                else:
                    self._spend(1)
                    self._settings(mv[start:end])
                    out.append(frame(SETTINGS, ACK, 0))
                    self._unblock(out)  # a larger SETTINGS_INITIAL_WINDOW_SIZE opens stream windows
            elif kind == PING:
                self._ping(sid, flags, mv[start:end], out)
            elif kind == WINDOW_UPDATE:
                if length != 4:
                    raise ConnectionError_(FRAME_SIZE_ERROR, f"WINDOW_UPDATE of {length} bytes")
                self._window_update(sid, U32.unpack_from(mv, start)[0] & 0x7FFFFFFF, out)
            elif kind == RST_STREAM:
                self._rst_stream(sid, length, out)
            elif kind == PRIORITY:
                self._priority(sid, mv, start, end, out)
            elif kind == GOAWAY:
                if sid != 0:
                    raise ConnectionError_(PROTOCOL_ERROR, "GOAWAY on a stream")
                self.peer_goaway = True
            elif kind == PUSH_PROMISE:
                raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            else:
                self._spend(1)  # unknown frame types are ignored, as RFC 9113 asks, but not for free
        return pos

    def _spend(self, cost: int) -> None:
        self.calm -= cost
        if self.calm < 0:
            raise ConnectionError_(ENHANCE_YOUR_CALM, "too many frames that carry no request")

    def _state(self, sid: int) -> int:
        st = self.streams.get(sid)
        if st is not None:
            return st.state
        reset = self.resets.ids.get(sid)
        if reset is not None:
            return reset
        return CLOSED if sid <= self.last_stream else IDLE

    def _apply(self, sid: int, event: int, out: list[bytes]) -> int:
        """The stream's next state for `event`, or -1 once its error is dealt with."""
        nxt = transition(self._state(sid), event)
        if isinstance(nxt, Error):
            if nxt.connection:
                raise ConnectionError_(nxt.code, f"stream {sid}: frame not allowed in its state")
            self._stream_error(sid, nxt.code, out)
            return -1
        return nxt

    def _data_frame(self, sid: int, st: _Stream | None, flags: int, mv: memoryview, start: int, end: int,
                    out: list[bytes]) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        length = end - start
        self.window.received(length)  # counted on the connection whatever the stream's state
        nxt = self._apply(sid, RECV_DATA_END if flags & END_STREAM else RECV_DATA, out)
        if st is None or nxt < 0 or nxt >= RESET_LOCAL:
            self._give_back(length, out)
            return
        if flags & PADDED:
            start, end = unpad(mv, start, end)
        if not flags & END_STREAM and end - start < TINY_DATA:
            self._spend(1)
        st.recv_window -= length
        if st.recv_window < 0:
            self._stream_error(sid, FLOW_CONTROL_ERROR, out)
            self._give_back(length, out)
            return
        self._give_back(length - (end - start), out)  # the padding
        st.held += end - start
        st.received += end - start
        if st.received > st.request.content_length >= 0:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        if not st.refused:
            self._data(sid, st, mv[start:end], out)
        st.state = nxt
        if nxt in (HALF_CLOSED_REMOTE, CLOSED):
            self._end(sid, st, out)

    def _give_back(self, n: int, out: list[bytes]) -> None:
        increment = self.window.consumed(n)
        if increment:
            out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(increment)))

    @staticmethod
    def _depends_on(mv: memoryview, start: int, end: int, flags: int) -> int:
        if flags & PADDED:
            start += 1
        return U32.unpack_from(mv, start)[0] & 0x7FFFFFFF if end - start >= 5 else -1

    def _priority(self, sid: int, mv: memoryview, start: int, end: int, out: list[bytes]) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "PRIORITY on stream 0")
        self._spend(1)
        if end - start != 5:
            self._stream_error(sid, FRAME_SIZE_ERROR, out)
        elif U32.unpack_from(mv, start)[0] & 0x7FFFFFFF == sid:
            self._stream_error(sid, PROTOCOL_ERROR, out)

    def _rst_stream(self, sid: int, length: int, out: list[bytes]) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if length != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, f"RST_STREAM of {length} bytes")
        self._spend(1)
        if self._apply(sid, RECV_RST, out) == RESET_REMOTE:
            self.resets.add(sid, RESET_REMOTE)
        st = self.streams.pop(sid, None)
        if st is not None:
            if st.handling:
                self.orphans.add(sid)
            self._released(st, out)

    def _ping(self, sid: int, flags: int, payload: memoryview, out: list[bytes]) -> None:
        if sid != 0:
            raise ConnectionError_(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(FRAME_SIZE_ERROR, f"PING of {len(payload)} bytes")
        if flags & ACK:
            if bytes(payload) == _DRAIN_PING and self.draining:
                self._goaway(NO_ERROR)
            return
        assert self.life is not None
        if not self.life.client_ping(len(self.streams)):
            raise ConnectionError_(ENHANCE_YOUR_CALM, "too_many_pings")
        out.append(frame(PING, ACK, 0, bytes(payload)))

    def _settings(self, payload: memoryview) -> None:
        for key, value in read_settings(payload):
            if key == S_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_window
                self.peer_window = value
                for st in self.streams.values():
                    st.send_window += delta
                    if st.send_window > MAX_WINDOW:
                        raise ConnectionError_(FLOW_CONTROL_ERROR, "a stream's window past 2^31-1")
            # SETTINGS_HEADER_TABLE_SIZE: our encoder never uses the dynamic table; we never push.

    def _window_update(self, sid: int, increment: int, out: list[bytes]) -> None:
        if sid == 0:
            if increment == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.conn_send_window += increment
            if self.conn_send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window past 2^31-1")
        else:
            if self._apply(sid, RECV_WINDOW_UPDATE, out) < 0:
                return
            st = self.streams.get(sid)
            if st is None:
                return
            if increment == 0:
                self._stream_error(sid, PROTOCOL_ERROR, out)
                return
            st.send_window += increment
            if st.send_window > MAX_WINDOW:
                self._stream_error(sid, FLOW_CONTROL_ERROR, out)
                return
        self._unblock(out)

    def _unblock(self, out: list[bytes]) -> None:
        if self.blocked:
            waiting, self.blocked = self.blocked, []
            for sid, data, trailers in waiting:
                st = self.streams.get(sid)
                if st is not None:
                    self._send(sid, st, data, out, trailers)

    def _headers(self, sid: int, flags: int, block: bytearray, out: list[bytes]) -> None:
        try:
            headers = self.decoder.decode(block)
        except hpack.HPACKError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, f"cannot decode headers: {exc}") from None
        st = self.streams.get(sid)
        event = RECV_HEADERS_END if flags & END_STREAM else RECV_HEADERS
        if st is not None:  # trailers from the client
            nxt = self._apply(sid, event, out)
            if nxt < 0:
                return
            try:
                check_trailers(headers)
            except Malformed as exc:
                log.debug("stream %d: %s", sid, exc)
                self._stream_error(sid, PROTOCOL_ERROR, out)
                return
            st.state = nxt
            self._end(sid, st, out)
            return
        if sid % 2 == 0 or (sid < self.last_stream and sid not in self.resets.ids):
            # 5.1.1: a new stream's id is odd and above every id used before (the last one used, and
            # those we reset, are "closed" streams: the table answers them)
            raise ConnectionError_(PROTOCOL_ERROR, f"stream id {sid} is even or not increasing")
        nxt = self._apply(sid, event, out)
        if nxt < 0 or nxt >= RESET_LOCAL:
            return
        self.last_stream = sid
        if self.self_dependent:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        try:
            request = read_request(headers)
        except Malformed as exc:
            log.debug("stream %d: %s", sid, exc)
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        if self.goaway_sent or len(self.streams) + len(self.orphans) >= self.limits.max_concurrent_streams:
            self._spend(1)
            self._stream_error(sid, REFUSED_STREAM, out)
            return
        st = _Stream(request, nxt, self.server.stream_window, send_window=self.peer_window)
        self.streams[sid] = st
        if nxt == HALF_CLOSED_REMOTE:
            self._end(sid, st, out)

    def _stream_error(self, sid: int, code: int, out: list[bytes]) -> None:
        """RST_STREAM(code): the stream is dropped (its handler, if running, answers nobody)."""
        out.append(frame(RST_STREAM, 0, sid, U32.pack(code)))
        self.resets.add(sid)
        st = self.streams.pop(sid, None)
        if st is not None:
            if st.handling:
                self.orphans.add(sid)
            self._released(st, out)

    def _released(self, st: _Stream, out: list[bytes]) -> None:
        """The stream is gone: its bytes not yet given back are, and the connection may be idle."""
        if st.held:
            self._give_back(st.held, out)
            st.held = 0
        st.parts = []
        st.body = None
        if not self.streams and self.life is not None:
            self.life.idle_since = self.life.loop.time()

    def _data(self, sid: int, st: _Stream, chunk: memoryview, out: list[bytes]) -> None:
        """Gather the stream's bytes; the gRPC prefix (flag, length) is read off as soon as it is whole,
        so the parts hold only the message and a single-part message is never copied again."""
        if st.declared >= 0:
            if st.body is not None:
                st.body += chunk
            elif st.parts:
                st.body = bytearray(st.parts[0])
                st.body += chunk
                st.parts = []
            else:
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
            msg = self.server.on_too_large(st.request.path, st.declared)
            self._respond(sid, error_trailers(Status.RESOURCE_EXHAUSTED, msg, None), b"", out)

    def _end(self, sid: int, st: _Stream, out: list[bytes]) -> None:
        """The client's END_STREAM: answer, or hand the message to its handler."""
        if st.refused:
            return
        req = st.request
        if 0 <= req.content_length != st.received:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        if req.method != "POST" or not req.content_type.startswith("application/grpc"):
            # Not a gRPC call: a plain HTTP status, as grpc-go answers (gRPC clients map it to a code).
            status = b"405" if req.method != "POST" else b"415"
            block = b"\x00" + hpack_str(b":status") + hpack_str(status) + _TEXT_PLAIN
            out.append(frame(HEADERS, END_HEADERS, sid, block))
            self._send(sid, st, _NOT_GRPC, out, None)
            return
        path = req.path
        handler = self.server.methods.get(path)
        if handler is None:
            self._finish(sid, error_trailers(Status.UNIMPLEMENTED, f"unknown service or method {path}", None), out)
            return
        if st.declared < 0:
            self._finish(sid, error_trailers(Status.INTERNAL, "expected one request message, got none", None), out)
            return
        message = bytes(st.body) if st.body is not None else st.parts[0]
        if st.size != st.declared:
            self._finish(sid, error_trailers(
                Status.INTERNAL, f"request message of {st.size} bytes, its prefix says {st.declared}", None), out)
            return
        st.parts = []
        st.body = None
        if st.compressed:
            encoding = req.encoding
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
        # The handler has the message: its bytes go back to the client's connection window.
        self._give_back(st.held, out)
        st.held = 0
        self.calm = min(CALM_BUDGET, self.calm + CALM_REFILL)
        task = asyncio.get_running_loop().create_task(self._call(sid, st, handler, message, req.metadata))
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
        if self.life is not None:
            self.life.forgive = True  # grpc-go forgives ping strikes when it sends HEADERS or DATA
        if data:
            out.append(frame(HEADERS, END_HEADERS, sid, headers))
            self._send(sid, st, data, out)
        else:
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, headers))
            self._closed(sid, st, out)

    def _closed(self, sid: int, st: _Stream, out: list[bytes]) -> None:
        """We sent END_STREAM: closed, or half-closed (local) until a reset ignores the rest (an
        early refusal: the client need not send the rest of a message nobody takes)."""
        if st.state == OPEN:
            out.append(frame(RST_STREAM, 0, sid, U32.pack(NO_ERROR)))
            self.resets.add(sid)
        del self.streams[sid]
        self._released(st, out)

    def _send(self, sid: int, st: _Stream, data: bytes, out: list[bytes], trailers: bytes | None = OK_TRAILERS) -> None:
        """As much of `data` as the peer's windows allow (the rest waits for its WINDOW_UPDATE), then
        the trailers (None: the last DATA frame ends the stream)."""
        n = max(0, min(len(data), st.send_window, self.conn_send_window))
        if n:
            st.send_window -= n
            self.conn_send_window -= n
            out.extend(frame(DATA, 0, sid, data[i: min(i + FRAME_OUT, n)]) for i in range(0, n, FRAME_OUT))
        if n < len(data):
            self.blocked.append((sid, data[n:], trailers))
            return
        out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers) if trailers is not None
                   else frame(DATA, END_STREAM, sid))
        self._closed(sid, st, out)

    # -- ending (the Lifecycle's Owner)
    def is_idle(self) -> bool:
        return not self.streams

    def idle_goaway(self) -> None:
        self._goaway(NO_ERROR, "max_connection_idle")
        self._close()

    def graceful_goaway(self) -> None:
        """grpc-go's two-step GOAWAY: a first naming 2^31-1 (requests in flight are still taken) and a
        PING; at its ACK the final one, naming the last stream taken."""
        if self.transport is None or self.draining or self.goaway_sent:
            return
        self.draining = True
        self.transport.write(frame(GOAWAY, 0, 0, U32.pack(MAX_STREAM_ID) + U32.pack(NO_ERROR))
                             + frame(PING, 0, 0, _DRAIN_PING))

    def keepalive_ping(self) -> None:
        if self.transport is not None:
            self.transport.write(frame(PING, 0, 0, _KEEPALIVE_PING))

    def close_now(self, why: str) -> None:
        log.debug("closing a connection: %s", why)
        if self.transport is not None:
            self._send_now()
            if self.preface:
                self._goaway(NO_ERROR, why)
            self.transport.abort()
            self.transport = None

    def _goaway(self, code: int, why: str = "") -> None:
        if self.transport is None:
            return
        if not self.goaway_sent:
            self.goaway_sent = True
            self.transport.write(frame(GOAWAY, 0, 0, U32.pack(self.last_stream) + U32.pack(code)
                                       + why.encode()[:256]))
        if code != NO_ERROR:
            self._close()
        elif not self.streams:
            self._send_soon()

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
        limits: ServerLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        on_too_large: Callable[[str, int | None], str] | None = None,
    ) -> None:
        self.methods = methods
        self.max_message = max_message
        self.limits = limits = limits or ServerLimits()
        # A unary request up to the limit arrives without waiting for a stream WINDOW_UPDATE ...
        self.stream_window = min(MAX_WINDOW, max(DEFAULT_PEER_WINDOW, max_message + STREAM_WINDOW_SLACK))
        # ... and the connection window holds every stream's whole request at once, so requests that
        # arrive interleaved can never wait on each other (window is given back as handlers take them).
        self.conn_window_threshold = CONN_WINDOW_THRESHOLD
        self.conn_window = min(MAX_WINDOW, max(CONN_WINDOW, limits.max_concurrent_streams * self.stream_window
                                                + CONN_WINDOW_THRESHOLD))
        self.settings = [(S_INITIAL_WINDOW_SIZE, self.stream_window),
                         (S_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
                         (S_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST), (S_ENABLE_PUSH, 0),
                         (S_MAX_FRAME_SIZE, FRAME_IN)]
        self.refused_connections = 0
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

    async def start(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> int:
        """Listen on `host:port` (every address it resolves to, or only IPv4 / IPv6 ones by `family`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host or None, port, family=family, ssl=self._ssl,
            reuse_port=self._reuse_port or None, backlog=1024,
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
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
        finally:
            # Also when the service's shutdown deadline (shorter than `grace`) cancels this wait: no
            # connection is left open.
            for conn in list(self.connections):
                conn._close()
        await self._server.wait_closed()
        self._server = None
