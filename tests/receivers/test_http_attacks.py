"""Attacks on the OTLP/HTTP receiver of a real gateway subprocess, as `tests/transport/test_attacks.py`
does for the gRPC port: each abusive connection is answered (408, 431, 503) or closed after a bounded
amount of sending, the gateway's RSS grows by at most RSS_BOUND, and the OpenTelemetry SDK's OTLP/HTTP
exporter, on its own connection, then exports with every span delivered. Short timeouts in the config
(`read_header_timeout: 1s`, `read_timeout: 2s`, `idle_timeout: 2s`) keep the run short.
A table of the figures is printed at the end (`pytest -s`)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from tests.e2e.support import spans_request
from tests.harness import Ports, Sink, forward_config, running
from tests.transport.test_attacks import CLOSED, HEALTHY_SPANS, OPENED, Gateway, Raw, attack, print_table

HTTP_ENDINGS = {CLOSED: "closed", 408: "408", 431: "431", 503: "503"}
ROWS: list[str] = []
FLOOD = 1000  # connections opened at once
MAX_CONNECTIONS = 800  # the gateway's cap in this test: FLOOD - MAX_CONNECTIONS of them are refused
LIMITS = (f"read_header_timeout: 1s, read_timeout: 2s, write_timeout: 5s, idle_timeout: 2s, "
          f"max_connections: {MAX_CONNECTIONS}")
HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-protobuf\r\n"


class Counted(SpanExporter):
    """The SDK's exporter, counting the spans the gateway acknowledged."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.acked = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.acked += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclass
class HttpGateway(Gateway):
    def send_healthy(self, first: int) -> int:
        exporter = Counted(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{self.ports.http}/v1/traces", timeout=10))
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("healthy")
        for i in range(HEALTHY_SPANS):
            with tracer.start_as_current_span(f"healthy-{first + i}"):
                pass
        provider.shutdown()
        return exporter.acked


@pytest.fixture(scope="module")
def gateway() -> Iterator[HttpGateway]:
    ports = Ports.free()
    sink = Sink().start()
    try:
        with running(forward_config(ports, sink, http_options=LIMITS), ports) as gw:
            yield HttpGateway(gw, sink, ports)
    finally:
        sink.stop()
        print_table(ROWS)


class Conn(Raw):
    """A raw HTTP/1.1 connection: send until the server ends it (or a budget), then read its answer."""

    def __init__(self, port: int) -> None:
        super().__init__(port, preface=False)
        self.closed = False

    def receive(self) -> None:
        """Read what is there (the socket is readable); EOF or a reset marks it closed."""
        try:
            got = self.sock.recv(1 << 16)
        except OSError:
            got = b""
        self.inbox += got
        self.closed = not got

    def ending(self, timeout: float = 15.0) -> int:
        """The status the server answered before closing (CLOSED: closed without an answer)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not end the connection")
            self.receive()
        self.sock.close()
        return status(self.inbox)


def status(inbox: bytes) -> int:
    """The last status line's code in what the server sent (CLOSED: none)."""
    at = inbox.rfind(b"HTTP/1.")  # aiohttp answers a request it could not parse as HTTP/1.0
    return CLOSED if at < 0 else int(inbox[at + 9: at + 12])


def dribble(conns: list[Conn], byte: bytes, pace: float = 0.1, timeout: float = 15.0) -> list[int]:
    """One byte to each open connection every `pace` seconds until the server has ended them all."""
    deadline = time.monotonic() + timeout
    open_ = list(conns)
    while open_:
        assert time.monotonic() < deadline, f"{len(open_)} dribbling connections still open"
        for c in open_:
            c.send(byte)
        readable, _, _ = select.select([c.sock for c in open_], [], [], pace)
        for c in open_:
            if c.sock in readable:
                c.receive()
        open_ = [c for c in open_ if not c.closed]
    return [c.ending() for c in conns]


def test_slowloris_headers(gateway: HttpGateway) -> None:
    """read_header_timeout: headers dribbled a byte at a time never finish; each connection gets 408."""
    assert "read_header_timeout: 1s" in LIMITS  # the key this attack trips
    def run() -> list[int]:
        conns = [Conn(gateway.ports.http) for _ in range(200)]
        for c in conns:
            c.send(HEAD + b"X-Slow: ")
        return dribble(conns, b"a")
    attack(gateway, "slowloris: 200 conn. dribbling headers", run, {408}, HTTP_ENDINGS, ROWS)


def test_slow_body(gateway: HttpGateway) -> None:
    """read_timeout: a body declared at 100 kB arriving a byte at a time is answered 408, then closed."""
    assert "read_timeout: 2s" in LIMITS  # the key this attack trips
    def run() -> list[int]:
        conns = [Conn(gateway.ports.http) for _ in range(100)]
        for c in conns:
            c.send(HEAD + b"Content-Length: 100000\r\n\r\n")
        return dribble(conns, b"\x0a")
    attack(gateway, "slow body: 100 conn., 1 byte / 100 ms", run, {408}, HTTP_ENDINGS, ROWS)


def test_header_flood(gateway: HttpGateway) -> None:
    """4,000 headers, one 2 MiB header line, and endless headers: 431, within 1 MiB read each."""
    def run() -> list[int]:
        many = Conn(gateway.ports.http)
        # 4,000 headers in 36 kB, one loopback segment: read whole, so the close after the 431 is not a reset.
        many.send(HEAD + b"".join(b"h%d:v\r\n" % i for i in range(4000)) + b"Content-Length: 0\r\n\r\n")
        huge = Conn(gateway.ports.http)
        huge.flood(iter([HEAD + b"X-Big: "] + [b"v" * 65536] * 32), 2 << 20)
        endless = Conn(gateway.ports.http)
        endless.send(HEAD)
        endless.flood((b"".join(b"X-E-%d: v\r\n" % (j + i) for i in range(1000)) for j in range(0, 10**7, 1000)),
                      8 << 20)
        endings = [many.ending(), huge.ending(), endless.ending()]
        assert endings[0] == 431  # read whole before the answer; the others may be reset while still sending
        return endings
    attack(gateway, "header flood: 4,000 headers, 2 MiB line, endless", run, {431, CLOSED}, HTTP_ENDINGS, ROWS)
    for c in OPENED:
        assert c.sent <= 8 << 20


def test_connection_flood(gateway: HttpGateway) -> None:
    """max_connections: of FLOOD idle connections, those past the cap get 503 at once; the rest are
    closed by read_header_timeout (408), having sent nothing."""
    assert f"max_connections: {MAX_CONNECTIONS}" in LIMITS  # the key this attack trips
    def run() -> list[int]:
        conns = [Conn(gateway.ports.http) for _ in range(FLOOD)]
        endings = [c.ending() for c in conns]
        assert endings.count(503) == FLOOD - MAX_CONNECTIONS
        return endings
    attack(gateway, f"{FLOOD} idle connections (cap {MAX_CONNECTIONS})", run, {408, 503}, HTTP_ENDINGS, ROWS)


def test_idle_keep_alive_connections(gateway: HttpGateway) -> None:
    """idle_timeout: after a request is answered, a keep-alive connection left idle is closed."""
    assert "idle_timeout: 2s" in LIMITS  # the key this attack trips
    body = spans_request(1, name="keep-alive").SerializeToString()

    def run() -> list[int]:
        conns = [Conn(gateway.ports.http) for _ in range(100)]
        for c in conns:
            c.send(HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return [c.ending() for c in conns]
    attack(gateway, "100 keep-alive conn. left idle after a request", run, {200}, {200: "200, then closed"}, ROWS)
