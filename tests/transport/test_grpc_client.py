"""The asyncio HTTP/2 gRPC client (`gateway.transport.grpc_client`) against grpcio's server, our own
H2GrpcServer, and a scripted peer that misbehaves: every outcome is a response or a clean error."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import hpack
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.exporters import classify
from gateway.exporters.otlp_grpc import client_ssl_context
from gateway.transport import h2
from gateway.transport.grpc_channel import H2Client
from gateway.transport.grpc_client import GrpcCallError
from gateway.transport.grpc_server import GrpcError, H2GrpcServer
from gateway.transport.grpc_status import Status
from gateway.transport.h2 import frame
from gateway.transport.h2_lifecycle import ServerLimits
from gateway.transport.tls import TLSClientConfig
from pipelines.errors import RetryableError
from tests.e2e.support import Certs

SERVICE = "test.Echo"
PATH = f"/{SERVICE}/Call"
MiB = 1024 * 1024


class GrpcioServer:
    """grpcio's server with one method; `behaviour(request, context)` answers (default: echo)."""

    def __init__(self, behaviour: Callable[[bytes, grpc.ServicerContext], bytes] | None = None, port: int = 0,
                 credentials: grpc.ServerCredentials | None = None, options: tuple[tuple[str, Any], ...] = ()) -> None:
        self.metadata: list[dict[str, str]] = []
        self.cancelled = threading.Event()
        behave = behaviour or (lambda request, context: request)

        def call(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
            context.add_callback(lambda: None if context.is_active() else self.cancelled.set())
            return behave(request, context)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[
            ("grpc.max_receive_message_length", 32 * MiB), ("grpc.max_send_message_length", 32 * MiB), *options])
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"Call": grpc.unary_unary_rpc_method_handler(call)}),))
        address = f"127.0.0.1:{port}"
        self.port = (self.server.add_secure_port(address, credentials) if credentials
                     else self.server.add_insecure_port(address))
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


@pytest.fixture
def echo() -> Iterator[GrpcioServer]:
    server = GrpcioServer()
    yield server
    server.stop()


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 60))


async def call_once(port: int, message: bytes | list[bytes], *, time_limit: float | None = 10, **kwargs: Any) -> bytes:
    client = H2Client(f"127.0.0.1:{port}", **kwargs)
    try:
        return await client.unary(PATH, message, time_limit=time_limit)
    finally:
        await client.close()


def error_of(port: int, message: bytes = b"hello", **kwargs: Any) -> GrpcCallError:
    with pytest.raises(GrpcCallError) as info:
        run(lambda: call_once(port, message, **kwargs))
    return info.value


# ---------------------------------------------------------------- against grpcio


def test_ok_call_carries_metadata(echo: GrpcioServer) -> None:
    async def body() -> bytes:
        client = H2Client(f"127.0.0.1:{echo.port}", metadata=[("x-scope-orgid", "acme")], user_agent="gw-test/1")
        try:
            return await client.unary(PATH, b"hello", [("x-tenant", "team-a")], time_limit=5)
        finally:
            await client.close()

    assert run(body) == b"hello"
    md = echo.metadata[0]
    assert (md["x-scope-orgid"], md["x-tenant"]) == ("acme", "team-a")
    assert md["user-agent"].startswith("gw-test/1")


def test_status_message_and_retry_info_reach_classify() -> None:
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down")
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7)))

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()), ("x-why", "quota")))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota 100% used, réessayez")

    server = GrpcioServer(refuse)
    try:
        error = error_of(server.port)
    finally:
        server.stop()
    assert error.code == Status.RESOURCE_EXHAUSTED
    assert error.message == "quota 100% used, réessayez"
    assert ("x-why", "quota") in error.trailing
    consumer_error = classify.from_grpc(Status.RESOURCE_EXHAUSTED, error.message, error.trailing)
    assert isinstance(consumer_error, RetryableError)
    assert consumer_error.delay == 7.0


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.UNAUTHENTICATED])
def test_error_codes(code: grpc.StatusCode) -> None:
    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(code, "no")

    server = GrpcioServer(refuse)
    try:
        error = error_of(server.port)
    finally:
        server.stop()
    assert (error.code, error.message) == (code.value[0], "no")


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compressed_request(echo: GrpcioServer, compression: str) -> None:
    message = b"abc" * 200_000
    assert run(lambda: call_once(echo.port, message, compression=compression)) == message


def test_8mb_each_way_flows_through_small_windows() -> None:
    # grpcio starts streams at a 64 KiB window: the request waits for WINDOW_UPDATEs, the 8 MiB
    # response needs ours.
    server = GrpcioServer(options=(("grpc.http2.bdp_probe", 0),))
    message = bytes(range(256)) * (8 * MiB // 256)
    try:
        assert run(lambda: call_once(server.port, message, max_response=16 * MiB)) == message
    finally:
        server.stop()


PIECES = {
    "one": [b"x" * 70_000],
    "empty pieces between": [b"", b"ab", b"", b"cd" * 9000, b""],
    "across frames and writes": [bytes(range(256)) * 300, b"y", bytes(3 * MiB), b"tail" * 5000],
    "many small": [b"%d," % i for i in range(5000)],
}


@pytest.mark.parametrize("compression", ["", "gzip"])
@pytest.mark.parametrize("layout", list(PIECES))
def test_message_in_pieces_arrives_whole(layout: str, compression: str) -> None:
    # The exporter hands the queued requests over unjoined; through 64 KiB windows (no BDP probing),
    # 16 KiB frames and transport pauses the server must still see their concatenation.
    server = GrpcioServer(options=(("grpc.http2.bdp_probe", 0),))
    pieces = PIECES[layout]
    try:
        got = run(lambda: call_once(server.port, list(pieces), compression=compression, max_response=8 * MiB))
    finally:
        server.stop()
    assert got == b"".join(pieces)


def test_response_over_the_limit_is_refused(echo: GrpcioServer) -> None:
    error = error_of(echo.port, b"x" * (2 * MiB), max_response=MiB)
    assert error.code == Status.RESOURCE_EXHAUSTED


def test_concurrent_calls_respect_max_concurrent_streams() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow_echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return request

    server = GrpcioServer(slow_echo, options=(("grpc.max_concurrent_streams", 3),))

    async def body() -> list[bytes]:
        client = H2Client(f"127.0.0.1:{server.port}")
        try:
            return await asyncio.gather(*(client.unary(PATH, b"m%d" % i, time_limit=20) for i in range(24)))
        finally:
            await client.close()

    try:
        assert run(body) == [b"m%d" % i for i in range(24)]
    finally:
        server.stop()
    assert 1 < peak <= 3


def test_server_restart_reconnects() -> None:
    first = GrpcioServer()
    port = first.port

    async def body() -> list[str]:
        client = H2Client(f"127.0.0.1:{port}")
        outcomes = []
        try:
            outcomes.append((await client.unary(PATH, b"a", time_limit=5)).decode())
            first.stop()
            with pytest.raises(GrpcCallError) as down:
                await client.unary(PATH, b"b", time_limit=5)
            assert down.value.code == Status.UNAVAILABLE
            second = GrpcioServer(port=port)
            try:
                for _ in range(20):  # the restarted server may take a moment to accept
                    try:
                        outcomes.append((await client.unary(PATH, b"c", time_limit=5)).decode())
                        break
                    except GrpcCallError as exc:
                        assert exc.code == Status.UNAVAILABLE
                        await asyncio.sleep(0.1)
            finally:
                second.stop()
        finally:
            await client.close()
        return outcomes

    assert run(body) == ["a", "c"]


def test_deadline_exceeded_resets_the_stream() -> None:
    release = threading.Event()

    def stuck(request: bytes, context: grpc.ServicerContext) -> bytes:
        release.wait(10)
        return request

    server = GrpcioServer(stuck)
    try:
        async def body() -> bytes:
            client = H2Client(f"127.0.0.1:{server.port}")
            try:
                start = time.monotonic()
                with pytest.raises(GrpcCallError) as info:
                    await client.unary(PATH, b"late", time_limit=0.3)
                assert time.monotonic() - start < 2
                assert info.value.code == Status.DEADLINE_EXCEEDED
                assert await asyncio.to_thread(server.cancelled.wait, 5), "the server did not see a cancel"
                release.set()
                return await client.unary(PATH, b"next", time_limit=5)  # same connection, still fine
            finally:
                await client.close()

        assert run(body) == b"next"
    finally:
        release.set()
        server.stop()


def test_tls_and_mutual_tls(certs: Certs) -> None:
    creds = grpc.ssl_server_credentials([(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
                                        root_certificates=certs.ca.read_bytes(), require_client_auth=True)
    server = GrpcioServer(credentials=creds)
    try:
        # client certificate inline, as PEM in the config
        tls = TLSClientConfig(ca_file=str(certs.ca), cert_pem=certs.client_cert.read_text(),
                              key_pem=certs.client_key.read_text(), server_name_override="localhost")
        ctx = client_ssl_context(tls)
        assert run(lambda: call_once(server.port, b"secret", ssl_context=ctx, server_hostname="localhost")) \
            == b"secret"
        # without a client certificate the handshake fails: UNAVAILABLE
        ctx = client_ssl_context(TLSClientConfig(ca_file=str(certs.ca)))
        assert error_of(server.port, ssl_context=ctx).code == Status.UNAVAILABLE
        # an unknown CA is refused; insecure_skip_verify accepts it
        ctx = client_ssl_context(TLSClientConfig(insecure_skip_verify=True, cert_file=str(certs.client_cert),
                                                 key_file=str(certs.client_key)))
        assert run(lambda: call_once(server.port, b"ok", ssl_context=ctx)) == b"ok"
    finally:
        server.stop()


def test_unknown_ca_fails_retryably(certs: Certs) -> None:
    creds = grpc.ssl_server_credentials([(certs.server_key.read_bytes(), certs.server_cert.read_bytes())])
    server = GrpcioServer(credentials=creds)
    try:
        error = error_of(server.port, ssl_context=client_ssl_context(TLSClientConfig()))
    finally:
        server.stop()
    assert error.code == Status.UNAVAILABLE
    assert "certificate" in error.message.lower()


def test_connection_refused_is_unavailable() -> None:
    from tests.harness import free_port

    assert error_of(free_port()).code == Status.UNAVAILABLE


# ---------------------------------------------------------------- against our own server


def test_against_h2grpc_server() -> None:
    async def handler(message: bytes, metadata: list[tuple[str, str]]) -> bytes:
        if message == b"refuse":
            raise GrpcError(Status.UNAVAILABLE, "busy", status_pb2.Status(code=14).SerializeToString())
        return message[::-1]

    async def body() -> None:
        server = H2GrpcServer({PATH: handler}, max_message=4 * MiB, limits=ServerLimits(max_concurrent_streams=2))
        port = await server.start("127.0.0.1", 0)
        client = H2Client(f"127.0.0.1:{port}", compression="gzip")
        try:
            got = await asyncio.gather(*(client.unary(PATH, b"abc%d" % i, time_limit=5) for i in range(10)))
            assert got == [(b"abc%d" % i)[::-1] for i in range(10)]
            with pytest.raises(GrpcCallError) as info:
                await client.unary(PATH, b"refuse", time_limit=5)
            assert (info.value.code, info.value.message) == (Status.UNAVAILABLE, "busy")
            details = dict(info.value.trailing)["grpc-status-details-bin"]
            assert details == status_pb2.Status(code=14).SerializeToString()
            # refused from its length prefix while the rest is still being sent
            big = H2Client(f"127.0.0.1:{port}")
            with pytest.raises(GrpcCallError) as info:
                await big.unary(PATH, bytes(8 * MiB), time_limit=5)
            assert info.value.code == Status.RESOURCE_EXHAUSTED
            assert await big.unary(PATH, b"again", time_limit=5) == b"niaga"
            # The same in pieces of 200 KiB (whole pieces fit one of this server's large frames): the
            # early refusal leaves the connection good for the next call.
            with pytest.raises(GrpcCallError) as info:
                await big.unary(PATH, [bytes(200 * 1024)] * 40, time_limit=5)
            assert info.value.code == Status.RESOURCE_EXHAUSTED
            pieces = [bytes([i]) * (200 * 1024) for i in range(6)]
            assert await big.unary(PATH, pieces, time_limit=5) == b"".join(pieces)[::-1]
            await big.close()
        finally:
            await client.close()
            await server.stop(1)

    run(body)


# ---------------------------------------------------------------- a scripted, misbehaving peer

_U32 = struct.Struct(">I")
Script = Callable[[int, int, asyncio.StreamWriter], None]  # (connection number, stream id, writer)


def _response(sid: int, *blocks: tuple[list[tuple[str, str]], bool], data: bytes = b"") -> bytes:
    enc = hpack.Encoder()
    out = b""
    for i, (headers, end) in enumerate(blocks):
        flags = h2.END_HEADERS | (h2.END_STREAM if end else 0)
        out += frame(h2.HEADERS, flags, sid, enc.encode(headers))
        if i == 0 and data:
            out += frame(h2.DATA, 0, sid, data)
    return out


OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


class ScriptedPeer:
    """Reads a client's frames; on each request's END_STREAM calls `script`. Records RST_STREAM codes."""

    def __init__(self, script: Script, greet: bytes | None = None) -> None:
        self.script = script
        self.greet = frame(h2.SETTINGS, 0, 0) if greet is None else greet
        self.connections = 0
        self.resets: list[int] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = self.connections
        try:
            await reader.readexactly(len(h2.PREFACE))
            writer.write(self.greet)
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags, sid = head[3], head[4], _U32.unpack(head[5:])[0]
                payload = await reader.readexactly(length)
                if kind == h2.RST_STREAM:
                    self.resets.append(_U32.unpack(payload)[0])
                if kind in (h2.HEADERS, h2.DATA) and flags & h2.END_STREAM:
                    self.script(n, sid, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def scripted(script: Script, greet: bytes | None = None, time_limit: float = 3,
             calls: int = 1) -> tuple[list[GrpcCallError | bytes], ScriptedPeer]:
    peer = ScriptedPeer(script, greet)

    async def body() -> list[GrpcCallError | bytes]:
        port = await peer.start()
        client = H2Client(f"127.0.0.1:{port}", connect_timeout=2)
        outcomes: list[GrpcCallError | bytes] = []
        try:
            for _ in range(calls):
                try:
                    outcomes.append(await client.unary(PATH, b"hi", time_limit=time_limit))
                except GrpcCallError as exc:
                    outcomes.append(exc)
        finally:
            await client.close()
            await peer.stop()
        return outcomes

    return run(body), peer


def _code(outcome: GrpcCallError | bytes) -> int:
    assert isinstance(outcome, GrpcCallError), outcome
    return outcome.code


OK_MESSAGE = b"\x00" + _U32.pack(2) + b"ok"


@pytest.mark.parametrize(("name", "script", "code"), [
    ("http 503 without grpc-status", lambda n, sid, w: w.write(_response(sid, ([(":status", "503")], True))),
     Status.UNAVAILABLE),
    ("http 404", lambda n, sid, w: w.write(_response(sid, ([(":status", "404")], True))), Status.UNIMPLEMENTED),
    ("bad grpc-status", lambda n, sid, w: w.write(_response(sid, ([*OK_HEADERS, ("grpc-status", "x")], True))),
     Status.UNAVAILABLE),
    ("no trailers", lambda n, sid, w: w.write(_response(sid, (OK_HEADERS, False), data=OK_MESSAGE)
                                              + frame(h2.DATA, h2.END_STREAM, sid)),
     Status.UNAVAILABLE),
    ("message shorter than its prefix", lambda n, sid, w: w.write(
        _response(sid, (OK_HEADERS, False), ([("grpc-status", "0")], True), data=OK_MESSAGE[:-1])),
     Status.UNAVAILABLE),
    ("refused stream",
     lambda n, sid, w: w.write(frame(h2.RST_STREAM, 0, sid, _U32.pack(h2.REFUSED_STREAM))),
     Status.UNAVAILABLE),
    ("cancelled stream", lambda n, sid, w: w.write(frame(h2.RST_STREAM, 0, sid, _U32.pack(8))),
     Status.CANCELLED),
    ("DATA on stream 0", lambda n, sid, w: w.write(frame(h2.DATA, 0, 0, b"x")), Status.UNAVAILABLE),
    ("garbage frame", lambda n, sid, w: w.write(b"\xff" * 64), Status.UNAVAILABLE),
    ("bad HPACK", lambda n, sid, w: w.write(frame(h2.HEADERS, 5, sid, b"\xff\xff\xff\xff")),
     Status.UNAVAILABLE),
    ("window overflow", lambda n, sid, w: w.write(frame(h2.WINDOW_UPDATE, 0, 0, _U32.pack(2**31 - 1))),
     Status.UNAVAILABLE),
    ("closed mid-call", lambda n, sid, w: w.close(), Status.UNAVAILABLE),
    ("GOAWAY before the call", lambda n, sid, w: w.write(frame(h2.GOAWAY, 0, 0, _U32.pack(0) + _U32.pack(0))),
     Status.UNAVAILABLE),
])
def test_misbehaving_peer_ends_in_a_clean_error(name: str, script: Script, code: int) -> None:
    outcomes, _ = scripted(script)
    assert _code(outcomes[0]) == code, outcomes[0]


def test_ok_response_with_trailers() -> None:
    def answer(n: int, sid: int, w: asyncio.StreamWriter) -> None:
        w.write(_response(sid, (OK_HEADERS, False), ([("grpc-status", "0")], True), data=OK_MESSAGE))

    outcomes, _ = scripted(answer)
    assert outcomes == [b"ok"]


def test_refused_stream_is_sent_again() -> None:
    # REFUSED_STREAM means the server never processed the stream (as grpc core does when its stream
    # slot frees a moment after we saw the previous call end): the client sends it again itself.
    def script(n: int, sid: int, w: asyncio.StreamWriter) -> None:
        if sid <= 3:  # the first two streams
            w.write(frame(h2.RST_STREAM, 0, sid, _U32.pack(h2.REFUSED_STREAM)))
        else:
            w.write(_response(sid, (OK_HEADERS, False), ([("grpc-status", "0")], True), data=OK_MESSAGE))

    outcomes, _ = scripted(script)
    assert outcomes == [b"ok"]


def test_goaway_resends_unprocessed_calls_at_once_on_a_new_connection() -> None:
    # Stream 1 is above GOAWAY's last stream id 0: never processed, so `unary` itself sends it again on
    # a new connection; no GrpcCallError reaches the exporter, whose retry would wait its backoff.
    def script(n: int, sid: int, w: asyncio.StreamWriter) -> None:
        if n == 1:
            w.write(frame(h2.GOAWAY, 0, 0, _U32.pack(0) + _U32.pack(0) + b"bye"))
        else:
            w.write(_response(sid, (OK_HEADERS, False), ([("grpc-status", "0")], True), data=OK_MESSAGE))

    outcomes, peer = scripted(script, calls=2)
    assert outcomes == [b"ok", b"ok"]
    assert peer.connections == 2


def test_goaway_at_or_above_a_call_fails_it_as_unavailable() -> None:
    # The call's stream is within the GOAWAY's last stream id: it may have been processed, so it is not
    # sent again here; the exporter's retry decides.
    def script(n: int, sid: int, w: asyncio.StreamWriter) -> None:
        if n == 1:
            w.write(frame(h2.GOAWAY, 0, 0, _U32.pack(sid) + _U32.pack(0) + b"bye"))
            w.close()
        else:
            w.write(_response(sid, (OK_HEADERS, False), ([("grpc-status", "0")], True), data=OK_MESSAGE))

    outcomes, peer = scripted(script, calls=2)
    assert _code(outcomes[0]) == Status.UNAVAILABLE
    assert outcomes[1] == b"ok"
    assert peer.connections == 2


def test_silent_peer_hits_the_deadline_and_gets_a_cancel() -> None:
    outcomes, peer = scripted(lambda n, sid, w: None, time_limit=0.3)
    assert _code(outcomes[0]) == Status.DEADLINE_EXCEEDED
    assert peer.resets == [h2.CANCEL]


@pytest.mark.parametrize("greet", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"", frame(h2.PING, 0, 0, bytes(8))])
def test_not_an_http2_server(greet: bytes) -> None:
    outcomes, _ = scripted(lambda n, sid, w: None, greet=greet)
    assert _code(outcomes[0]) in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED)


def test_pusher_maps_errors_to_consumer_errors() -> None:
    from gateway.component import Settings
    from gateway.exporters.otlp_grpc import Config, GrpcPusher
    from gateway.telemetry import Telemetry
    from pipelines.batch import Batch

    def script(n: int, sid: int, w: asyncio.StreamWriter) -> None:
        w.write(_response(sid, ([*OK_HEADERS, ("grpc-status", "14"), ("grpc-message", "down%20now")], True)))

    peer = ScriptedPeer(script)

    async def body() -> BaseException | None:
        port = await peer.start()
        pusher = GrpcPusher(Settings("otlp/t", Config(endpoint=f"http://127.0.0.1:{port}"), Telemetry(), None))  # type: ignore[arg-type]
        await pusher.start()
        try:
            await pusher.push(Batch("traces", b"", 0))
        except Exception as exc:
            return exc
        finally:
            await pusher.shutdown()
            await peer.stop()
        return None

    error = run(body)
    assert isinstance(error, RetryableError)
    assert str(error).startswith("gRPC UNAVAILABLE: down now")


def test_a_stop_cut_short_by_the_shutdown_deadline_still_closes_every_connection() -> None:
    """The service's deadline can be shorter than the server's grace: when it cancels `stop`, the
    connections are closed all the same, and a call waiting on one ends instead of hanging."""
    release, reached = asyncio.Event(), asyncio.Event()

    async def stuck(message: bytes, metadata: list[tuple[str, str]]) -> bytes:
        reached.set()
        await release.wait()
        return message

    async def body() -> None:
        server = H2GrpcServer({PATH: stuck}, max_message=1 << 20)
        port = await server.start("127.0.0.1", 0)
        client = H2Client(f"127.0.0.1:{port}")
        call = asyncio.ensure_future(client.unary(PATH, b"hold", time_limit=30))
        await reached.wait()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server.stop(grace=30), 0.2)
        assert all(c.transport is None or c.transport.is_closing() for c in server.connections)
        with pytest.raises(GrpcCallError):
            await asyncio.wait_for(call, 10)
        release.set()
        await client.close()

    asyncio.run(asyncio.wait_for(body(), 30))
