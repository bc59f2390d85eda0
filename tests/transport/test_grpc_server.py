"""`H2GrpcServer` on its own: a real grpcio client (codes, messages, details, compression, limits,
concurrency, metadata, TLS), then raw sockets speaking HTTP/2 frames by hand (framing edge cases,
flow control, stream limits, GOAWAY both ways, malformed input). The server runs on an event loop
in a thread; every test also checks that no exception escaped into that loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import json
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import hpack
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.transport import grpc_server, h2
from gateway.transport.grpc_server import GrpcError, H2GrpcServer, Metadata
from gateway.transport.grpc_status import Status
from gateway.transport.h2 import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    S_INITIAL_WINDOW_SIZE,
    SETTINGS,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    frame,
)
from gateway.transport.h2_lifecycle import ServerLimits

ECHO, FAIL, BOOM, SLOW, BIG, META, SIZE = (
    f"/test.Svc/{m}" for m in ("Echo", "Fail", "Boom", "Slow", "Big", "Meta", "Size"))
MAX_MESSAGE = 64 * 1024
TIMEOUT = 5.0
QUIET = 0.3  # how long "nothing arrives" is watched for


# ---------------------------------------------------------------- the server, on a loop in a thread


@dataclass
class LoopThread:
    loop: asyncio.AbstractEventLoop
    errors: list[dict[str, Any]] = field(default_factory=list)

    def run(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = asyncio.new_event_loop()
    lt = LoopThread(loop)
    # An exception escaping a protocol callback or a task lands here instead of crashing anything.
    loop.set_exception_handler(lambda _loop, context: lt.errors.append(context))
    thread = threading.Thread(target=loop.run_forever, name="h2grpc-test-loop", daemon=True)
    thread.start()
    yield lt
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    loop.close()


class App:
    """The handlers, and what they saw."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.seen: list[tuple[bytes, Metadata]] = []
        self.too_large: list[tuple[str, int | None]] = []
        self.started = threading.Semaphore(0)  # released once per Slow call that began
        self.release = asyncio.Event()
        self.fail_with = GrpcError(Status.FAILED_PRECONDITION, "no")

    def methods(self) -> dict[str, grpc_server.Handler]:
        return {ECHO: self.echo, FAIL: self.fail, BOOM: self.boom, SLOW: self.slow, BIG: self.big, META: self.meta,
                SIZE: self.size}

    async def echo(self, message: bytes, metadata: Metadata) -> bytes:
        self.seen.append((message, metadata))
        return message

    async def fail(self, message: bytes, metadata: Metadata) -> bytes:
        raise self.fail_with

    async def boom(self, message: bytes, metadata: Metadata) -> bytes:
        raise RuntimeError("a bug in a handler")

    async def slow(self, message: bytes, metadata: Metadata) -> bytes:
        self.started.release()
        await self.release.wait()
        return b"slow:" + message

    async def big(self, message: bytes, metadata: Metadata) -> bytes:
        return b"x" * int(message)

    async def meta(self, message: bytes, metadata: Metadata) -> bytes:
        return json.dumps(metadata).encode()

    async def size(self, message: bytes, metadata: Metadata) -> bytes:
        return str(len(message)).encode()

    def on_too_large(self, path: str, size: int | None) -> str:
        self.too_large.append((path, size))
        return f"too large: {path} {size}"

    def wait_started(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.started.acquire(timeout=TIMEOUT), "the Slow handler never started"

    def let_go(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)


@dataclass
class Served:
    server: H2GrpcServer
    port: int
    app: App
    lt: LoopThread
    conns: list[Conn] = field(default_factory=list)  # closed at the end of the test

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)


Serve = Callable[..., Served]


@pytest.fixture
def serve(loop_thread: LoopThread) -> Iterator[Serve]:
    started: list[Served] = []
    loop_thread.errors.clear()

    def start(**kwargs: Any) -> Served:
        app = App(loop_thread.loop)
        kwargs.setdefault("max_message", MAX_MESSAGE)
        kwargs.setdefault("on_too_large", app.on_too_large)
        server = H2GrpcServer(app.methods(), **kwargs)
        port = loop_thread.run(server.start("127.0.0.1", 0))
        served = Served(server, port, app, loop_thread)
        started.append(served)
        return served

    yield start
    for served in started:
        for c in served.conns:
            c.close()
        served.app.let_go()
        loop_thread.run(served.server.stop(0))
    assert not loop_thread.errors, f"exceptions escaped into the event loop: {loop_thread.errors}"


@pytest.fixture
def served(serve: Serve) -> Served:
    return serve()


# ---------------------------------------------------------------- a hand-driven HTTP/2 client


@dataclass
class Frame:
    kind: int
    flags: int
    sid: int
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)  # decoded, for HEADERS (+ CONTINUATION)


@dataclass
class Response:
    blocks: list[dict[str, str]] = field(default_factory=list)
    data: bytes = b""
    reset: int | None = None

    @property
    def trailers(self) -> dict[str, str]:
        return self.blocks[-1]

    @property
    def status(self) -> int:
        return int(self.trailers["grpc-status"])

    @property
    def message(self) -> bytes:
        assert self.data[:1] == b"\x00" and struct.unpack(">I", self.data[1:5])[0] == len(self.data) - 5
        return self.data[5:]


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def setting(key: int, value: int) -> bytes:
    return struct.pack(">HI", key, value)


def grpc_body(message: bytes, compressed: int = 0) -> bytes:
    return bytes((compressed,)) + u32(len(message)) + message


class Conn:
    """One HTTP/2 connection driven frame by frame over a blocking socket."""

    def __init__(self, port: int, *, settings: bytes = b"", preface: bool = True,
                 sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.pending: list[Frame] = []
        self.eof = False
        self.continuing: Frame | None = None
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def close(self) -> None:
        self.sock.close()

    def send(self, *chunks: bytes) -> None:
        self.sock.sendall(b"".join(chunks))

    def block(self, path: str = ECHO, *, method: str = "POST", content_type: str = "application/grpc",
              extra: list[tuple[str, str | bytes]] | None = None) -> bytes:
        headers: list[tuple[str, str | bytes]] = [
            (":method", method), (":scheme", "http"), (":path", path), (":authority", "test"),
            ("content-type", content_type), ("te", "trailers"), *(extra or [])]
        return bytes(self.encoder.encode(headers))

    def request(self, sid: int, message: bytes, path: str = ECHO, **kwargs: Any) -> bytes:
        return (frame(HEADERS, END_HEADERS, sid, self.block(path, **kwargs))
                + frame(DATA, END_STREAM, sid, grpc_body(message)))

    # -- reading
    def _read(self, deadline: float) -> Frame | None:
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    kind, flags, sid = self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    f = Frame(kind, flags, sid, self.buf[9: 9 + n])
                    self.buf = self.buf[9 + n:]
                    return f
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                raise
            except OSError:  # reset by the peer counts as closed
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def _next(self, deadline: float) -> Frame | None:
        """The next frame, header blocks decoded in arrival order (the HPACK table is per connection)."""
        while True:
            f = self._read(deadline)
            if f is None:
                return None
            if f.kind == HEADERS:
                block = f.payload
                if f.flags & PADDED:
                    block = block[1: len(block) - block[0]]
                if f.flags & PRIORITY_FLAG:
                    block = block[5:]
                f.payload = block
                if not f.flags & END_HEADERS:
                    self.continuing = f
                    continue
            elif f.kind == CONTINUATION:
                assert self.continuing is not None and self.continuing.sid == f.sid, "stray CONTINUATION"
                self.continuing.payload += f.payload
                if not f.flags & END_HEADERS:
                    continue
                f, self.continuing = self.continuing, None
            if f.kind == HEADERS:
                f.headers = dict(self.decoder.decode(f.payload))
            return f

    def next_frame(self, match: Callable[[Frame], bool] = lambda f: True, timeout: float = TIMEOUT) -> Frame:
        """The first frame (queued or new) that matches; others are kept for later."""
        for i, f in enumerate(self.pending):
            if match(f):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            got = self._next(deadline)
            if got is None:
                raise EOFError("connection closed")
            if match(got):
                return got
            self.pending.append(got)

    def nothing(self, match: Callable[[Frame], bool], timeout: float = QUIET) -> bool:
        """True when no matching frame arrives within `timeout`."""
        try:
            self.next_frame(match, timeout)
        except TimeoutError:
            return True
        return False

    def response(self, sid: int, timeout: float = TIMEOUT) -> Response:
        r = Response()
        while True:
            f = self.next_frame(lambda f: f.sid == sid and f.kind in (HEADERS, DATA, RST_STREAM), timeout)
            if f.kind == RST_STREAM:
                r.reset = struct.unpack(">I", f.payload)[0]
                return r
            if f.kind == HEADERS:
                r.blocks.append(f.headers)
            else:
                r.data += f.payload
            if f.flags & END_STREAM:
                return r

    def goaway(self, timeout: float = TIMEOUT) -> tuple[int, int]:
        """(last stream id, error code) of the server's GOAWAY."""
        f = self.next_frame(lambda f: f.kind == GOAWAY, timeout)
        return struct.unpack(">I", f.payload[:4])[0] & 0x7FFFFFFF, struct.unpack(">I", f.payload[4:8])[0]

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """Reads (keeping frames) until the server closes the connection; False on timeout."""
        try:
            self.next_frame(lambda f: False, timeout)
        except EOFError:
            return True
        except TimeoutError:
            return False
        raise AssertionError("unreachable")

    def alive(self) -> bool:
        payload = b"alive?!!"
        self.send(frame(PING, 0, 0, payload))
        try:
            f = self.next_frame(lambda f: f.kind == PING and f.flags & ACK == ACK, TIMEOUT)
        except EOFError:
            return False
        return f.payload == payload


@pytest.fixture
def conn(served: Served) -> Conn:
    return open_conn(served)


async def handlers_done(server: H2GrpcServer) -> None:
    tasks = [t for c in server.connections for t in c.tasks]
    if tasks:
        await asyncio.wait(tasks)
    await asyncio.sleep(0)  # the tasks' done callbacks


async def write_buffered(server: H2GrpcServer) -> int:
    return sum(c.transport.get_write_buffer_size() for c in server.connections if c.transport is not None)


def open_conn(served: Served, **kwargs: Any) -> Conn:
    c = Conn(served.port, **kwargs)
    served.conns.append(c)
    return c


def still_serves(served: Served) -> None:
    """A fresh connection gets a full answer."""
    c = Conn(served.port)
    try:
        c.send(c.request(1, b"still here"))
        r = c.response(1)
        assert r.status == 0 and r.message == b"still here"
    finally:
        c.close()


# ================================================================ (1) a real grpcio client


def unary(channel: grpc.Channel, path: str) -> Any:
    return channel.unary_unary(path)  # bytes in, bytes out


def test_grpc_ok_call(served: Served) -> None:
    with served.channel() as ch:
        response, call = unary(ch, ECHO).with_call(b"hello", timeout=TIMEOUT)
        assert response == b"hello"
        assert call.code() == grpc.StatusCode.OK
        assert unary(ch, ECHO)(b"", timeout=TIMEOUT) == b""  # an empty message is still one message


def test_grpc_error_code_message_and_details(served: Served) -> None:
    message = "naïve — 日本語 100% sure\nsecond line"
    details = b"\x00\x01\xfe\xffdetails"  # not a multiple of 3: base64 padding is stripped on the wire
    served.app.fail_with = GrpcError(Status.FAILED_PRECONDITION, message, details)
    with served.channel() as ch, pytest.raises(grpc.RpcError) as err:
        unary(ch, FAIL)(b"x", timeout=TIMEOUT)
    e: Any = err.value
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.details() == message
    assert dict(e.trailing_metadata())["grpc-status-details-bin"] == details


def test_grpc_handler_exception_is_unknown_and_server_keeps_serving(served: Served) -> None:
    with served.channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            unary(ch, BOOM)(b"x", timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
        assert "a bug" not in err.value.details()  # type: ignore[attr-defined]
        assert unary(ch, ECHO)(b"after", timeout=TIMEOUT) == b"after"


def test_grpc_gzip_request_arrives_decompressed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    real = grpc_server.decompress

    def spy(body: bytes, encoding: str, limit: int) -> bytes:
        used.append(encoding)
        return real(body, encoding, limit)

    monkeypatch.setattr(grpc_server, "decompress", spy)
    payload = b"compress me " * 2000
    with served.channel() as ch:
        assert unary(ch, ECHO)(payload, timeout=TIMEOUT, compression=grpc.Compression.Gzip) == payload
    assert used == ["gzip"]
    assert served.app.seen[-1][0] == payload


def test_grpc_unknown_method_is_unimplemented(served: Served) -> None:
    with served.channel() as ch, pytest.raises(grpc.RpcError) as err:
        unary(ch, "/test.Svc/Nope")(b"x", timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    assert "/test.Svc/Nope" in err.value.details()  # type: ignore[attr-defined]


def test_grpc_too_large_is_resource_exhausted_with_declared_size(served: Served) -> None:
    with served.channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            unary(ch, ECHO)(b"z" * (MAX_MESSAGE + 1), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert err.value.details() == f"too large: {ECHO} {MAX_MESSAGE + 1}"  # type: ignore[attr-defined]
        assert served.app.too_large == [(ECHO, MAX_MESSAGE + 1)]
        assert unary(ch, ECHO)(b"z" * MAX_MESSAGE, timeout=TIMEOUT) == b"z" * MAX_MESSAGE
    assert len(served.app.seen) == 1


def test_grpc_gzip_bomb_is_resource_exhausted_after_inflating(served: Served) -> None:
    with served.channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            unary(ch, ECHO)(bytes(MAX_MESSAGE * 4), timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert served.app.too_large == [(ECHO, None)]


def test_grpc_many_concurrent_calls_on_one_channel(served: Served) -> None:
    with served.channel() as ch:
        echo = unary(ch, ECHO)
        futures = [echo.future(b"call %d " % i * (i % 50 + 1), timeout=TIMEOUT) for i in range(300)]
        assert [f.result() for f in futures] == [b"call %d " % i * (i % 50 + 1) for i in range(300)]


def test_grpc_metadata_reaches_the_handler(served: Served) -> None:
    sent = [("x-tenant", "acme"), ("x-multi", "one"), ("x-multi", "two"), ("x-blob-bin", b"\x00\xff")]
    with served.channel() as ch:
        got = json.loads(unary(ch, META)(b"", metadata=sent, timeout=TIMEOUT))
    pairs = [tuple(p) for p in got]
    assert [p for p in pairs if p[0].startswith("x-")] == [("x-tenant", "acme"), ("x-multi", "one"),
                                                           ("x-multi", "two")]
    names = {p[0] for p in pairs}
    assert not names & {"te", "content-type", "grpc-accept-encoding", "grpc-timeout"}
    assert not any(n.startswith(":") or n.endswith("-bin") for n in names)


def test_grpc_large_response(served: Served) -> None:
    with served.channel() as ch:
        assert unary(ch, BIG)(b"3000000", timeout=TIMEOUT) == b"x" * 3_000_000


@pytest.mark.parametrize(("message", "details"), [
    ("詳細" * 4000, None),  # 4000 characters, 12 times that once percent-encoded
    ("m" * 3000 + "é" * 3000, b"retry info " * 300),  # together over the 8 KiB clients accept
    ("d" * 100, b"d" * 30000),  # details no client would take
    ("lone \udc80 surrogate", None),
])
def test_grpc_long_error_trailers_are_cut_to_what_clients_accept(
        served: Served, message: str, details: bytes | None) -> None:
    served.app.fail_with = GrpcError(Status.INVALID_ARGUMENT, message, details)
    with served.channel() as ch:
        for _ in range(20):  # grpc core refuses trailers between its soft and hard limits at random
            with pytest.raises(grpc.RpcError) as err:
                unary(ch, FAIL)(b"", timeout=TIMEOUT)
            e: Any = err.value
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
            got = e.details()
            assert got and message.encode(errors="replace").decode().startswith(got)
            trailing = dict(e.trailing_metadata())
            assert trailing.get("grpc-status-details-bin") == (details if details and len(details) < 5000 else None)
        assert unary(ch, ECHO)(b"same channel", timeout=TIMEOUT) == b"same channel"


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    client_cert: bytes
    client_key: bytes
    ca_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
              *extensions: x509.ExtensionType) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for ext in extensions:
            builder = builder.add_extension(ext, critical=isinstance(ext, x509.BasicConstraints))
        return builder.sign(signer, hashes.SHA256())

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = issue("h2grpc test CA", ca_key, name("h2grpc test CA"), ca_key,
               x509.BasicConstraints(ca=True, path_length=None))
    server = issue("server", server_key, ca.subject, ca_key, x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    client = issue("client", client_key, ca.subject, ca_key)
    d = tmp_path_factory.mktemp("pki")
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "server.pem").write_bytes(server.public_bytes(pem))
    (d / "server-key.pem").write_bytes(pem_key(server_key))
    return Pki(ca.public_bytes(pem), d / "server.pem", d / "server-key.pem", client.public_bytes(pem),
               pem_key(client_key), d / "ca.pem")


def server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca_file)
    return ctx


def test_tls_with_alpn_h2(serve: Serve, pki: Pki) -> None:
    served = serve(ssl_context=server_context(pki))
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca)
    with grpc.secure_channel(served.target, creds) as ch:
        assert unary(ch, ECHO)(b"over tls", timeout=TIMEOUT) == b"over tls"
        (connection,) = served.server.connections
        assert connection.transport is not None
        assert connection.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    # and by hand: ALPN offers h2 and HTTP/1.1, the server picks h2
    client = ssl.create_default_context(cadata=pki.ca.decode())
    client.set_alpn_protocols(["http/1.1", "h2"])
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
    with client.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        c = Conn(served.port, sock=tls)
        c.send(c.request(1, b"raw tls"))
        assert c.response(1).message == b"raw tls"


def test_mtls_refuses_a_client_without_a_certificate(serve: Serve, pki: Pki) -> None:
    served = serve(ssl_context=server_context(pki, require_client_cert=True))
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.ca)
    with grpc.secure_channel(served.target, anonymous) as ch, pytest.raises(grpc.RpcError) as err:
        unary(ch, ECHO)(b"who am I", timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert served.app.seen == []
    known = grpc.ssl_channel_credentials(root_certificates=pki.ca, private_key=pki.client_key,
                                         certificate_chain=pki.client_cert)
    with grpc.secure_channel(served.target, known) as ch:
        assert unary(ch, ECHO)(b"with a cert", timeout=TIMEOUT) == b"with a cert"


# ================================================================ (2) HTTP/2 by hand


def test_bad_preface_closes_the_connection(served: Served) -> None:
    for wrong in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", PREFACE[:-3] + b"XYZ" + frame(SETTINGS, 0, 0)):
        c = open_conn(served, preface=False)
        c.send(wrong)
        assert c.closed()
        assert all(f.kind in (SETTINGS, WINDOW_UPDATE) for f in c.pending)  # only our greeting
        c.close()
    still_serves(served)


def test_preface_may_arrive_in_pieces(served: Served) -> None:
    c = open_conn(served, preface=False)
    greeting = PREFACE + frame(SETTINGS, 0, 0)
    for i in range(len(greeting)):
        c.send(greeting[i: i + 1])
    assert c.alive()
    c.close()


def test_ping_is_acknowledged_with_its_payload(conn: Conn) -> None:
    conn.send(frame(PING, 0, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08"))
    f = conn.next_frame(lambda f: f.kind == PING)
    assert (f.flags, f.sid, f.payload) == (ACK, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    conn.send(frame(PING, ACK, 0, b"ignored!"))  # an ACK is not answered
    assert conn.nothing(lambda f: f.kind == PING)


def test_settings_are_acknowledged(served: Served) -> None:
    c = open_conn(served, preface=False)
    c.send(PREFACE + frame(SETTINGS, 0, 0, setting(S_INITIAL_WINDOW_SIZE, 1 << 20) + setting(0x99, 7)))
    greeting = c.next_frame(lambda f: f.kind == SETTINGS and not f.flags & ACK)
    assert len(greeting.payload) % 6 == 0
    ack = c.next_frame(lambda f: f.kind == SETTINGS and f.flags & ACK == ACK)
    assert ack.payload == b"" and ack.sid == 0
    c.close()


def test_malformed_settings_is_frame_size_error(conn: Conn) -> None:
    conn.send(frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x01"))
    assert conn.goaway()[1] == FRAME_SIZE_ERROR
    assert conn.closed()


def test_headers_split_over_continuation_frames(conn: Conn) -> None:
    block = conn.block(extra=[("x-long", "v" * 300)])
    a, b = len(block) // 3, 2 * len(block) // 3
    conn.send(frame(HEADERS, 0, 1, block[:a]), frame(CONTINUATION, 0, 1, block[a:b]),
              frame(CONTINUATION, END_HEADERS, 1, block[b:]), frame(DATA, END_STREAM, 1, grpc_body(b"cont")))
    r = conn.response(1)
    assert r.status == 0 and r.message == b"cont"
    assert r.blocks[0][":status"] == "200" and r.blocks[0]["content-type"] == "application/grpc"


def test_padded_data_and_padded_priority_headers(conn: Conn) -> None:
    block = conn.block()
    pad = 7
    headers = bytes((pad,)) + u32(0x80000000 | 0) + b"\x10" + block + b"\xee" * pad  # exclusive dep, weight 16
    body = grpc_body(b"padded")
    conn.send(frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, headers),
              frame(DATA, PADDED, 1, b"\x03" + body[:4] + b"\xaa" * 3),
              frame(PRIORITY, 0, 1, u32(0) + b"\x20"),
              frame(DATA, PADDED | END_STREAM, 1, b"\x00" + body[4:]))
    r = conn.response(1)
    assert r.status == 0 and r.message == b"padded"


def test_padding_longer_than_the_frame_is_protocol_error(conn: Conn) -> None:
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block()), frame(DATA, PADDED, 1, b"\x09abc"))
    assert conn.goaway() == (1, PROTOCOL_ERROR)
    assert conn.closed()


def test_headers_too_short_for_their_priority_is_frame_size_error(conn: Conn) -> None:
    conn.send(frame(HEADERS, END_HEADERS | PRIORITY_FLAG, 1, b"\x00\x00"))
    assert conn.goaway() == (0, FRAME_SIZE_ERROR)


def test_header_block_over_256_kib_is_refused_before_decoding(conn: Conn) -> None:
    # Table size updates alone: never a header, so no header-list limit would stop them in the decoder.
    piece = b"\x20" * 16384
    frames = [frame(HEADERS, 0, 1, piece)]
    frames += [frame(CONTINUATION, 0, 1, piece)] * (h2.MAX_HEADER_BLOCK // len(piece))
    conn.send(*frames)
    assert conn.goaway() == (0, PROTOCOL_ERROR)


def requests_on_one_connection(c: Conn) -> bytes:
    """Preface, settings and two requests: the second's headers come from the HPACK dynamic table."""
    return (PREFACE + frame(SETTINGS, 0, 0) + c.request(1, b"first" * 10)
            + c.request(3, b"second", extra=[("x-k", "v")]) + frame(PING, 0, 0, b"12345678"))


def check_two_responses(c: Conn) -> None:
    assert c.response(1).message == b"first" * 10
    assert c.response(3).message == b"second"
    assert c.next_frame(lambda f: f.kind == PING).payload == b"12345678"


def test_request_sent_byte_by_byte(served: Served) -> None:
    c = open_conn(served, preface=False)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in requests_on_one_connection(c):
        c.send(bytes((b,)))
    check_two_responses(c)
    c.close()


@pytest.fixture(scope="module")
def shared(loop_thread: LoopThread) -> Iterator[Served]:
    app = App(loop_thread.loop)
    server = H2GrpcServer(app.methods(), max_message=MAX_MESSAGE)
    served = Served(server, loop_thread.run(server.start("127.0.0.1", 0)), app, loop_thread)
    yield served
    loop_thread.run(server.stop(0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_request_in_arbitrary_tcp_chunks(shared: Served, cuts: list[int]) -> None:
    errors_before = len(shared.lt.errors)
    c = open_conn(shared, preface=False)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire = requests_on_one_connection(c)
    pos = 0
    for n in cuts:
        c.send(wire[pos: pos + n])
        pos += n
    c.send(wire[pos:])
    check_two_responses(c)
    c.close()
    assert len(shared.lt.errors) == errors_before


def test_rst_stream_mid_request_then_a_new_stream_works(served: Served, conn: Conn) -> None:
    body = grpc_body(b"abandoned")
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block()), frame(DATA, 0, 1, body[:8]),
              frame(RST_STREAM, 0, 1, u32(0x8)))  # CANCEL
    conn.send(frame(DATA, END_STREAM, 1, body[8:]))  # late DATA for the stream it reset: STREAM_CLOSED
    conn.send(conn.request(3, b"fresh"))
    r = conn.response(3)
    assert r.status == 0 and r.message == b"fresh"
    rst = conn.next_frame(lambda f: f.sid == 1)
    assert rst.kind == RST_STREAM and rst.payload == u32(STREAM_CLOSED)
    assert [m for m, _ in served.app.seen] == [b"fresh"]


def test_rst_stream_while_the_handler_runs_drops_the_response(served: Served, conn: Conn) -> None:
    conn.send(conn.request(1, b"gone", path=SLOW))
    served.app.wait_started()
    conn.send(frame(RST_STREAM, 0, 1, u32(0x8)))
    assert conn.alive()
    served.app.let_go()
    conn.send(conn.request(3, b"next", path=SLOW))
    assert conn.response(3).message == b"slow:next"
    assert conn.nothing(lambda f: f.sid == 1)


@pytest.mark.parametrize(("second", "code"), [(3, PROTOCOL_ERROR), (5, STREAM_CLOSED), (2, PROTOCOL_ERROR)])
def test_stream_id_not_increasing_or_even_is_protocol_error(conn: Conn, second: int, code: int) -> None:
    """A lower or even id is PROTOCOL_ERROR (5.1.1); the id of a stream closed both ways, STREAM_CLOSED (5.1)."""
    conn.send(conn.request(5, b"five"))
    assert conn.response(5).message == b"five"
    conn.send(conn.request(second, b"bad"))
    assert conn.goaway() == (5, code)
    assert conn.closed()


def test_continuation_on_the_wrong_stream_is_protocol_error(conn: Conn) -> None:
    block = conn.block()
    conn.send(frame(HEADERS, 0, 1, block[:5]), frame(CONTINUATION, END_HEADERS, 3, block[5:]))
    assert conn.goaway()[1] == PROTOCOL_ERROR
    assert conn.closed()


def test_other_frame_between_headers_and_continuation_is_protocol_error(conn: Conn) -> None:
    block = conn.block()
    conn.send(frame(HEADERS, 0, 1, block[:5]), frame(PING, 0, 0, b"8 bytes!"))
    assert conn.goaway()[1] == PROTOCOL_ERROR
    assert conn.closed()


def test_continuation_without_headers_is_protocol_error(conn: Conn) -> None:
    conn.send(frame(CONTINUATION, END_HEADERS, 1, conn.block()))
    assert conn.goaway()[1] == PROTOCOL_ERROR
    assert conn.closed()


def test_largest_frame_is_read_whole_and_skipped_and_a_larger_one_is_frame_size_error(conn: Conn) -> None:
    """We advertise SETTINGS_MAX_FRAME_SIZE 1 MiB: a frame of that length, of an unknown type, is read
    whole and ignored; one byte more is FRAME_SIZE_ERROR."""
    conn.send(b"\x10\x00\x00\x77\x00" + u32(0), bytes(0x100000))
    conn.send(conn.request(1, b"after the giant"))
    assert conn.response(1).message == b"after the giant"
    # The header alone says it is too long: the server answers and closes without reading a payload,
    # so sending the payload too would race that close (a reset under a loaded machine).
    conn.send(b"\x10\x00\x01\x77\x00" + u32(0))
    assert conn.goaway() == (1, FRAME_SIZE_ERROR)


@pytest.mark.parametrize("payload", [b"", b"\x00\x00\x01", b"\x00\x00\x00\x01\x00"])
def test_window_update_of_the_wrong_size_is_frame_size_error(conn: Conn, payload: bytes) -> None:
    conn.send(frame(WINDOW_UPDATE, 0, 0, payload), frame(PING, 0, 0, b"12345678"))
    assert conn.goaway()[1] == FRAME_SIZE_ERROR
    assert conn.closed()


def test_push_promise_from_a_client_is_protocol_error(conn: Conn) -> None:
    conn.send(frame(5, END_HEADERS, 1, u32(2) + conn.block()))
    assert conn.goaway()[1] == PROTOCOL_ERROR
    assert conn.closed()


def test_undecodable_header_block_is_compression_error(conn: Conn) -> None:
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff"))  # index out of range
    assert conn.goaway()[1] == 0x9
    assert conn.closed()


def test_empty_header_name_resets_the_stream_not_the_connection(conn: Conn) -> None:
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block(extra=[("", "nameless")])),
              frame(DATA, END_STREAM, 1, grpc_body(b"ok")))
    rst = conn.next_frame(lambda f: f.sid == 1)
    assert rst.kind == RST_STREAM and rst.payload == u32(PROTOCOL_ERROR)
    conn.send(conn.request(3, b"ok"))
    assert conn.response(3).message == b"ok"


@pytest.mark.parametrize(("method", "content_type", "status"), [
    ("GET", "application/grpc", "405"),
    ("PUT", "application/grpc", "405"),
    ("POST", "application/json", "415"),
    ("POST", "", "415"),
])
def test_not_a_grpc_call_gets_an_http_status(conn: Conn, method: str, content_type: str, status: str) -> None:
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, conn.block(method=method, content_type=content_type)))
    r = conn.response(1)
    assert r.blocks == [{":status": status, "content-type": "text/plain"}]
    assert r.data == grpc_server._NOT_GRPC
    assert conn.alive()


def test_content_type_with_a_suffix_is_grpc(conn: Conn) -> None:
    conn.send(conn.request(1, b"proto", content_type="application/grpc+proto"))
    assert conn.response(1).message == b"proto"


@pytest.mark.parametrize("empty", ["headers only", "empty DATA"])
def test_zero_length_body_is_internal(conn: Conn, empty: str) -> None:
    if empty == "headers only":
        conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, conn.block()))
    else:
        conn.send(frame(HEADERS, END_HEADERS, 1, conn.block()), frame(DATA, END_STREAM, 1))
    r = conn.response(1)
    assert r.status == 13 and len(r.blocks) == 1 and r.data == b""  # trailers only
    assert "none" in r.trailers["grpc-message"]


@pytest.mark.parametrize("body", [
    b"\x00\x00\x00\x00\x10short",  # 16 declared, 5 sent
    b"\x00\x00\x00",  # not even a whole prefix
    grpc_body(b"one") + grpc_body(b"two"),  # a second message on a unary call
])
def test_message_not_matching_its_prefix_is_internal(served: Served, conn: Conn, body: bytes) -> None:
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block()), frame(DATA, END_STREAM, 1, body))
    r = conn.response(1)
    assert r.status == 13
    assert served.app.seen == []
    assert conn.alive()


@pytest.mark.parametrize("encoding", ["snappy", None, "identity"])
def test_compressed_flag_with_an_unsupported_encoding_is_unimplemented(conn: Conn, encoding: str | None) -> None:
    extra: list[tuple[str, str | bytes]] = [] if encoding is None else [("grpc-encoding", encoding)]
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block(extra=extra)),
              frame(DATA, END_STREAM, 1, grpc_body(b"compressed?", compressed=1)))
    r = conn.response(1)
    assert r.status == 12
    assert "grpc-encoding" in r.trailers["grpc-message"]


def test_corrupt_gzip_is_internal_and_valid_deflate_works(conn: Conn) -> None:
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block(extra=[("grpc-encoding", "gzip")])),
              frame(DATA, END_STREAM, 1, grpc_body(b"\x1f\x8bnot gzip at all", compressed=1)))
    assert conn.response(1).status == 13
    body = gzip.compress(b"gz" * 100)
    conn.send(frame(HEADERS, END_HEADERS, 3, conn.block(extra=[("grpc-encoding", "gzip")])),
              frame(DATA, END_STREAM, 3, grpc_body(body, compressed=1)))
    assert conn.response(3).message == b"gz" * 100


def test_too_large_is_refused_as_soon_as_the_prefix_arrives(served: Served, conn: Conn) -> None:
    declared = MAX_MESSAGE * 10
    conn.send(frame(HEADERS, END_HEADERS, 1, conn.block()), frame(DATA, 0, 1, b"\x00" + u32(declared) + b"xx"))
    r = conn.response(1)  # no END_STREAM from us yet
    assert r.status == 8 and r.trailers["grpc-message"] == f"too large: {ECHO} {declared}"
    assert conn.next_frame(lambda f: f.kind == RST_STREAM and f.sid == 1).payload == u32(NO_ERROR)
    assert served.app.too_large == [(ECHO, declared)]
    conn.send(frame(DATA, END_STREAM, 1, b"y" * 1000))  # the rest, already in flight: dropped
    conn.send(conn.request(3, b"next"))
    assert conn.response(3).message == b"next"


def test_max_concurrent_streams_refuses_the_extra_stream(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_concurrent_streams=1))
    c = open_conn(served)
    greeting = c.next_frame(lambda f: f.kind == SETTINGS and not f.flags & ACK)
    assert setting(0x3, 1) in [greeting.payload[i: i + 6] for i in range(0, len(greeting.payload), 6)]
    c.send(c.request(1, b"first", path=SLOW))
    served.app.wait_started()
    c.send(c.request(3, b"second", path=SLOW))
    r3 = c.response(3)
    assert r3.reset == REFUSED_STREAM and r3.blocks == []
    served.app.let_go()
    assert c.response(1).message == b"slow:first"
    c.send(c.request(5, b"third"))  # a slot is free again
    assert c.response(5).message == b"third"
    c.close()


def test_reset_streams_still_count_while_their_handlers_run(serve: Serve) -> None:
    """Rapid reset: a stream the client resets still holds its slot until its handler returns,
    so RST_STREAM cannot be used to run unbounded handlers on one connection."""
    served = serve(limits=ServerLimits(max_concurrent_streams=2))
    c = open_conn(served)
    for sid in (1, 3):
        c.send(c.request(sid, b"r", path=SLOW), frame(RST_STREAM, 0, sid, u32(0x8)))
    served.app.wait_started(2)
    c.send(c.request(5, b"r", path=SLOW))
    assert c.response(5).reset == REFUSED_STREAM
    served.app.let_go()
    served.lt.run(handlers_done(served.server))
    c.send(c.request(7, b"again"))  # the slots are free again
    assert c.response(7).message == b"again"
    c.close()


def test_response_waits_for_the_peers_stream_window(served: Served) -> None:
    c = open_conn(served, settings=setting(S_INITIAL_WINDOW_SIZE, 0))
    c.send(c.request(1, b"blocked"))
    assert c.nothing(lambda f: f.sid == 1 and f.kind == DATA)
    c.send(frame(WINDOW_UPDATE, 0, 1, u32(4)))  # room for 4 of the 5 + 7 bytes
    assert c.next_frame(lambda f: f.sid == 1 and f.kind == DATA).payload == b"\x00" + u32(7)[:3]
    assert c.nothing(lambda f: f.sid == 1 and f.kind in (DATA, HEADERS) and f.flags & END_STREAM != 0)
    c.send(frame(WINDOW_UPDATE, 0, 1, u32(8)))
    r = c.response(1)
    assert r.status == 0 and r.data == u32(7)[3:] + b"blocked"
    c.close()


def test_settings_raising_the_window_releases_a_waiting_response(served: Served) -> None:
    c = open_conn(served, settings=setting(S_INITIAL_WINDOW_SIZE, 0))
    c.send(c.request(1, b"blocked"))
    assert c.nothing(lambda f: f.sid == 1 and f.kind == DATA)
    c.send(frame(SETTINGS, 0, 0, setting(S_INITIAL_WINDOW_SIZE, 65535)))
    assert c.response(1).message == b"blocked"
    c.close()


def test_response_waits_for_the_peers_connection_window(served: Served) -> None:
    c = open_conn(served)
    size = 16000
    # the connection send window starts at 65535: four responses fit, the fifth gets what is left
    c.send(*(c.request(sid, str(size).encode(), path=BIG) for sid in (1, 3, 5, 7)))
    for sid in (1, 3, 5, 7):
        assert len(c.response(sid).message) == size
    c.send(c.request(9, str(size).encode(), path=BIG))
    left = 65535 - 4 * (size + 5)
    assert len(c.next_frame(lambda f: f.sid == 9 and f.kind == DATA).payload) == left
    assert c.nothing(lambda f: f.sid == 9 and f.kind == DATA)
    c.send(frame(WINDOW_UPDATE, 0, 9, u32(1 << 20)))  # the stream window alone is not enough
    assert c.nothing(lambda f: f.sid == 9 and f.kind == DATA)
    c.send(frame(WINDOW_UPDATE, 0, 0, u32(size)))
    r = c.response(9)
    assert r.status == 0 and len(r.data) == size + 5 - left
    c.close()


def test_large_response_goes_out_as_the_window_opens(served: Served) -> None:
    """A response larger than the peer's windows is sent in pieces as they open, each DATA frame
    within the peer's default SETTINGS_MAX_FRAME_SIZE (16384)."""
    size = 200_000
    c = open_conn(served)
    c.send(c.request(1, str(size).encode(), path=BIG))
    got = b""
    while len(got) < 65535:
        f = c.next_frame(lambda f: f.sid == 1 and f.kind == DATA)
        assert len(f.payload) <= 16384
        got += f.payload
    assert len(got) == 65535  # exactly the initial window, no more
    assert c.nothing(lambda f: f.sid == 1 and f.kind == DATA)
    c.send(frame(WINDOW_UPDATE, 0, 0, u32(1 << 20)), frame(WINDOW_UPDATE, 0, 1, u32(1 << 20)))
    r = c.response(1)
    assert len(got + r.data) == size + 5 and r.status == 0
    c.close()


def test_connection_receive_window_is_replenished(serve: Serve) -> None:
    """A client that keeps to the connection window (64 MiB) uploads 72 MiB without stalling: the
    server tops the window up once half of it has been used."""
    served = serve(max_message=32 * 1024 * 1024, limits=ServerLimits(max_concurrent_streams=1))
    c = open_conn(served)
    initial = c.next_frame(lambda f: f.kind == WINDOW_UPDATE and f.sid == 0)
    window = 65535 + struct.unpack(">I", initial.payload)[0]
    assert window == grpc_server.CONN_WINDOW == served.server.conn_window
    body = grpc_body(bytes(24 * 1024 * 1024))
    sent = 0
    updates: list[int] = []
    for sid in (1, 3, 5):
        c.send(frame(HEADERS, END_HEADERS, sid, c.block(SIZE)))
        for i in range(0, len(body), 1 << 20):
            chunk = body[i: i + (1 << 20)]
            while window - sent < len(chunk):  # would stall here if the server never topped it up
                f = c.next_frame(lambda f: f.kind == WINDOW_UPDATE and f.sid == 0)
                updates.append(struct.unpack(">I", f.payload)[0])
                window += updates[-1]
            last = i + len(chunk) >= len(body)
            c.send(*(frame(DATA, END_STREAM if last and j + 16384 >= len(chunk) else 0, sid, chunk[j: j + 16384])
                     for j in range(0, len(chunk), 16384)))
            sent += len(chunk)
        # the window comes back as the handler takes the message, not as its bytes arrive
        assert c.response(sid).message == str(len(body) - 5).encode()
    assert updates and all(u >= grpc_server.CONN_WINDOW_THRESHOLD for u in updates)
    c.close()


def test_grpc_client_uploads_more_than_the_connection_window(serve: Serve) -> None:
    served = serve(max_message=32 * 1024 * 1024)
    message = b"u" * (30 * 1024 * 1024)
    with served.channel() as ch:
        size = unary(ch, SIZE)
        for _ in range(3):  # 90 MiB through a 64 MiB connection window
            assert size(message, timeout=TIMEOUT * 2) == str(len(message)).encode()


def test_stop_lets_an_in_flight_call_finish(served: Served) -> None:
    c = open_conn(served)
    c.send(c.request(1, b"in flight", path=SLOW))
    served.app.wait_started()
    stopping = served.lt.submit(served.server.stop(TIMEOUT))
    assert c.goaway() == (1, NO_ERROR)
    c.send(c.request(3, b"too late"))
    assert c.response(3).reset == REFUSED_STREAM
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT).close()
    assert not stopping.done()
    served.app.let_go()
    r = c.response(1)
    assert r.status == 0 and r.message == b"slow:in flight"
    assert c.closed()
    stopping.result(TIMEOUT)


def test_stop_closes_idle_connections_at_once(served: Served) -> None:
    c = open_conn(served)
    assert c.alive()
    served.lt.run(served.server.stop(TIMEOUT), timeout=1.0)  # nothing in flight: no waiting for the grace
    assert c.goaway() == (0, NO_ERROR)
    assert c.closed()


def test_client_goaway_closes_once_streams_are_done(served: Served) -> None:
    c = open_conn(served)
    c.send(c.request(1, b"last", path=SLOW))
    served.app.wait_started()
    c.send(frame(GOAWAY, 0, 0, u32(0) + u32(NO_ERROR)))
    assert c.alive()  # still open: a stream is in flight
    served.app.let_go()
    assert c.response(1).message == b"slow:last"
    assert c.closed()


def test_client_goaway_with_a_request_in_the_same_write(served: Served) -> None:
    c = open_conn(served)
    c.send(c.request(1, b"x", path="/test.Svc/Nope"), frame(GOAWAY, 0, 0, u32(0) + u32(NO_ERROR)))
    assert c.response(1).status == 12  # answered before the close
    assert c.closed()


def test_client_goaway_when_idle_closes(conn: Conn) -> None:
    assert conn.alive()
    conn.send(frame(GOAWAY, 0, 0, u32(0) + u32(NO_ERROR)))
    assert conn.closed()


def test_misbehaving_connections_do_not_disturb_others(served: Served) -> None:
    with served.channel() as ch:
        echo = unary(ch, ECHO)
        assert echo(b"before", timeout=TIMEOUT) == b"before"
        stuck = open_conn(served)  # half a frame, then silence
        stuck_request = stuck.request(1, b"unstuck")
        stuck.send(stuck_request[:6])
        broken = open_conn(served)
        broken.send(frame(HEADERS, END_HEADERS, 2, broken.block()))  # even stream id
        slow = open_conn(served)
        slow.send(slow.request(1, b"held", path=SLOW))
        served.app.wait_started()
        futures = [echo.future(b"during %d" % i, timeout=TIMEOUT) for i in range(50)]
        assert broken.goaway()[1] == PROTOCOL_ERROR and broken.closed()
        assert [f.result() for f in futures] == [b"during %d" % i for i in range(50)]
        still_serves(served)
        served.app.let_go()
        assert slow.response(1).message == b"slow:held"
        stuck.send(stuck_request[6:])
        assert stuck.response(1).message == b"unstuck"
        for c in (stuck, broken, slow):
            c.close()


def test_a_client_that_never_reads_is_not_buffered_without_limit(serve: Serve) -> None:
    """A PING flood from a client that reads nothing: once its own output backs up, the server stops
    reading from that client instead of queueing ACKs without bound; other clients are served."""
    # pings allowed: the buffering is what is tested (the PING policy has its own tests)
    served = serve(limits=ServerLimits(min_ping_interval=0, permit_without_stream=True))
    c = open_conn(served)
    c.sock.setblocking(False)
    pings = frame(PING, 0, 0, b"flooding") * 4096  # 68 KiB, as many ACKs to send back
    sent, cap = 0, 64 * 1024 * 1024
    deadline = time.monotonic() + 2 * TIMEOUT
    while sent < cap and time.monotonic() < deadline:
        if not select.select([], [c.sock], [], QUIET)[1]:
            break  # the server stopped reading
        with contextlib.suppress(BlockingIOError):
            sent += c.sock.send(pings)
    assert sent < cap
    assert served.lt.run(write_buffered(served.server)) < 1024 * 1024
    still_serves(served)
    c.close()


# ---------------------------------------------------------------- fuzzing the frame layer

_names = st.sampled_from([":method", ":path", ":scheme", "content-type", "grpc-encoding", "te", "x-k", "x-b-bin", ""])
_values = st.sampled_from(["POST", "GET", ECHO, SIZE, "/nope", "application/grpc", "gzip", "snappy", "", "\x7f"])
_header_lists = st.lists(st.tuples(_names, _values), max_size=6)
_payloads = st.one_of(
    st.binary(max_size=24),
    st.builds(grpc_body, st.binary(max_size=12), st.integers(0, 2)),
    st.builds(lambda n: b"\x00" + u32(n), st.integers(0, 2**32 - 1)),
    st.builds(lambda k, v: setting(k, v), st.integers(0, 8), st.integers(0, 2**32 - 1)),
)
_frames = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 255), st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
                             st.one_of(_payloads, _header_lists)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=_frames)
def test_arbitrary_frames_never_escape_the_connection(shared: Served, frames: list[tuple[int, int, int, Any]]) -> None:
    errors_before = len(shared.lt.errors)
    c = open_conn(shared)
    wire = b""
    for kind, flags, sid, payload in frames:
        if isinstance(payload, list):  # a header block, encoded in order (the HPACK table is per connection)
            payload = bytes(c.encoder.encode(payload))
        wire += frame(kind, flags, sid, payload)
    c.send(wire)
    # whatever the server made of those frames, it then either answers a PING or has said GOAWAY
    # and closed; never an exception in the server
    c.send(frame(PING, 0, 0, b"fuzzing!"))
    try:
        f = c.next_frame(lambda f: (f.kind == PING and f.payload == b"fuzzing!" and f.flags & ACK == ACK)
                         or f.kind == GOAWAY)
        if f.kind == GOAWAY:
            assert c.closed()
    except EOFError:
        pass
    c.close()
    assert shared.lt.errors[errors_before:] == []
