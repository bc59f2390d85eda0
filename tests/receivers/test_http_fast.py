"""The OTLP/HTTP receiver's fast lane (`gateway/transport/http_fast.py`), in process on a real port with
raw sockets: the same bytes sent to a receiver with the lane and to one without it get the same answers
(apart from Date), the same metrics and the same request context; pipelined requests are answered in
order; what the lane does not take (split, chunked, malformed, CORS) is aiohttp's, on the same connection;
the guard's timeouts hold for the lane's requests."""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

from gateway.auth import AuthError, Identity
from gateway.receivers.ingest import Ingest
from gateway.receivers.otlp_config import CorsConfig, HttpConfig
from gateway.receivers.otlp_http import HttpServer
from gateway.telemetry import Telemetry
from gateway.transport import http_fast
from pipelines.batch import Batch, RequestContext
from pipelines.errors import RetryableError

DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def _spans(n: int = 2) -> bytes:
    request = ts.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = scope.spans.add(trace_id=b"\1" * 16, span_id=bytes([i + 1]) * 8, name=f"s{i}")
        span.start_time_unix_nano = 1
    return request.SerializeToString()


SPANS = _spans()
JSON_SPANS = (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"01010101010101010101010101010101",'
              b'"spanId":"0202020202020202","name":"j"}]}]}]}')


def post(body: bytes = SPANS, ctype: bytes = b"application/x-protobuf", path: bytes = b"/v1/traces",
         extra: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: gw\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


class Sink:
    """The pipelines: records each batch's context; `busy` refuses as a full queue or the memory limiter;
    `delays` holds each request that long (in order)."""

    def __init__(self) -> None:
        self.contexts: list[RequestContext] = []
        self.busy = False
        self.delays: list[float] = []
        # Set as a consume ends: whoever awaits it resumes after the rest of that request's task step (its
        # answer written, or not), since the step runs on to its next await before any other task.
        self.consumed = asyncio.Event()

    async def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        try:
            if self.delays:
                await asyncio.sleep(self.delays.pop(0))
            if self.busy:
                raise RetryableError("the queue is full", delay=2.4)
            self.contexts.append(batch.context)
        finally:
            self.consumed.set()


class Bearer:
    async def identify(self, headers: Mapping[str, str]) -> Identity:
        if headers.get("authorization") != "Bearer good":
            raise AuthError("missing or wrong bearer token")
        return Identity(tenant="acme")


@asynccontextmanager
async def receiver(fast: bool, auth: bool = False, **options: Any) -> AsyncIterator[tuple[int, Sink, Telemetry]]:
    sink, telemetry = Sink(), Telemetry()
    config = HttpConfig(endpoint="127.0.0.1:0", **options)
    ingests = {signal: Ingest("otlp", "http", signal, sink, telemetry, Bearer() if auth else None,  # type: ignore[arg-type]
                              include_metadata=True) for signal in ("traces", "logs")}
    server = HttpServer(config, ingests, False, fast=fast)  # type: ignore[arg-type]
    await server.start()
    try:
        assert server.port is not None
        yield server.port, sink, telemetry
    finally:
        await server.shutdown()


async def read_answers(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    """`n` answers, each its head (Date blanked) and body; fewer if the connection ends first."""
    answers: list[bytes] = []
    async with asyncio.timeout(5):
        while len(answers) < n:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = re.search(rb"Content-Length: (\d+)", head)  # none in a 100 Continue
            body = await reader.readexactly(int(length[1]) if length else 0)
            answers.append(DATE.sub(b"\r\nDate: -\r\n", head) + body)
    return answers


async def exchange(port: int, writes: list[bytes], n: int, pause: float = 0) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in writes:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await read_answers(reader, n)
    finally:
        writer.close()


def served_fast(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the answers the fast lane writes."""
    statuses: list[int] = []
    encode = http_fast.encode

    def counted(answer: http_fast.Answer) -> bytes:
        statuses.append(answer.status)
        return encode(answer)

    monkeypatch.setattr(http_fast, "encode", counted)
    return statuses


def metrics(telemetry: Telemetry) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value for m in telemetry.registry.collect()
            for s in m.samples if s.name.startswith("otelcol_receiver") and not s.name.endswith("_created")}


CASES: dict[str, tuple[list[bytes], int]] = {
    "protobuf": ([post()], 1),
    "json": ([post(JSON_SPANS, b"application/json")], 1),
    "json with charset": ([post(JSON_SPANS, b"Application/JSON; charset=utf-8")], 1),
    "logs path": ([post(b"", path=b"/v1/logs")], 1),
    "invalid protobuf": ([post(b"\xff\xff")], 1),
    "invalid json": ([post(b"{", b"application/json")], 1),
    "gzip": ([post(gzip.compress(SPANS), extra=b"Content-Encoding: gzip\r\n")], 1),
    "bad gzip": ([post(b"not gzip", extra=b"Content-Encoding: gzip\r\n")], 1),
    "unknown encoding": ([post(SPANS, extra=b"Content-Encoding: br\r\n")], 1),
    "metadata": ([post(extra=b"X-Tenant: a\r\nX-Other:  spaced \t\r\n")], 1),
    "repeated header": ([post(extra=b"X-Tenant: a\r\nX-Tenant: b\r\n")], 1),
    "keep-alive named": ([post(extra=b"Connection: keep-alive\r\n")], 1),
    "text/plain": ([post(ctype=b"text/plain")], 1),
    "not found": ([post(path=b"/v1/nope")], 1),
    "query string": ([post(path=b"/v1/traces?x=1")], 1),
    "GET": ([b"GET /v1/traces HTTP/1.1\r\nHost: gw\r\n\r\n"], 1),
    "HTTP/1.0": ([post().replace(b"HTTP/1.1", b"HTTP/1.0", 1)], 1),
    "close": ([post(extra=b"Connection: close\r\n")], 1),
    "expect": ([post(extra=b"Expect: 100-continue\r\n")], 2),
    "chunked": ([b"POST /v1/traces HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-protobuf\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(SPANS):x}\r\n".encode() + SPANS + b"\r\n0\r\n\r\n"], 1),
    "no host": ([post().replace(b"Host: gw\r\n", b"")], 1),
    "two content types": ([post(extra=b"Content-Type: application/json\r\n")], 1),
    "NUL in a value": ([post(extra=b"X-A: a\x00b\r\n")], 1),
    "space before colon": ([post(extra=b"X-A : b\r\n")], 1),
    "folded line": ([post(extra=b"X-A: b\r\n c\r\n")], 1),
    "bare LF": ([post().replace(b"Host: gw\r\n", b"Host: gw\n")], 1),
    "bad length": ([post().replace(b"Content-Length: ", b"Content-Length: +")], 1),
    "garbage": ([b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"], 1),
    "body too large": ([post(b"x" * 2000)], 1),
    "gzip too large": ([post(gzip.compress(b"\0" * 5000), extra=b"Content-Encoding: gzip\r\n")], 1),
    "pipelined": ([post() + post(b"\xff") + post(JSON_SPANS, b"application/json") + post(path=b"/v1/nope")
                   + post(extra=b"X-N: 5\r\n")], 5),
    "fast then chunked then fast": ([post() + b"POST /v1/traces HTTP/1.1\r\nHost: gw\r\nContent-Type: "
                                     b"application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     + f"{len(SPANS):x}\r\n".encode() + SPANS + b"\r\n0\r\n\r\n" + post()], 3),
    "slow then fast, pipelined": ([post(path=b"/v1/nope") + post() + post()], 3),
}


async def _both(writes: list[bytes], n: int, pause: float = 0, **options: Any) -> tuple[Any, Any]:
    runs = []
    for fast in (True, False):
        async with receiver(fast, **options) as (port, sink, telemetry):
            answers = await exchange(port, writes, n, pause)
            runs.append((answers, [(c.tenant, dict(c.metadata)) for c in sink.contexts], metrics(telemetry)))
    return runs[0], runs[1]


@pytest.mark.parametrize("case", CASES)
def test_the_lane_answers_as_aiohttp_does(case: str) -> None:
    writes, n = CASES[case]
    fast, slow = asyncio.run(_both(writes, n, max_request_body_size=1024))
    assert fast == slow
    assert len(fast[0]) == n


def test_the_lane_takes_the_common_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)
    writes = [post() + post(JSON_SPANS, b"application/json") + post(gzip.compress(SPANS),
              extra=b"Content-Encoding: gzip\r\n") + post(b"\xff") + post(extra=b"Connection: keep-alive\r\n")]
    fast, slow = asyncio.run(_both(writes, 5))
    assert fast == slow
    assert served == [200, 200, 200, 400, 200]


@pytest.mark.parametrize("token", [b"", b"Authorization: Bearer bad\r\n", b"Authorization: Bearer good\r\n"])
def test_authentication_is_the_same(token: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)
    fast, slow = asyncio.run(_both([post(extra=token) * 2], 2, auth=True))
    assert fast == slow
    assert served == ([200, 200] if b"good" in token else [401, 401])
    assert fast[1] == ([("acme", {"host": ("gw",), "content-type": ("application/x-protobuf",),
                                  "content-length": (str(len(SPANS)),), "authorization": ("Bearer good",)})] * 2
                       if b"good" in token else [])


def test_back_pressure_is_a_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)

    async def run(fast: bool) -> list[bytes]:
        async with receiver(fast) as (port, sink, _):
            sink.busy = True
            return await exchange(port, [post(), post(JSON_SPANS, b"application/json")], 2)

    fast, slow = asyncio.run(run(True)), asyncio.run(run(False))
    assert fast == slow
    assert served == [503, 503]
    assert all(b"\r\nRetry-After: 2\r\n" in answer for answer in fast)


def test_response_headers_and_cors(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)
    writes = [post() + post(b"\xff") + post(extra=b"Origin: https://a.example\r\n")]
    options = {"response_headers": {"X-Gw": "1"}, "cors": CorsConfig(allowed_origins=("https://a.example",))}
    fast, slow = asyncio.run(_both(writes, 3, **options))
    assert fast == slow
    assert served == [200, 400]  # the browser's request is the middleware's
    assert b"Vary: Origin" in fast[0][0] and b"Access-Control-Allow-Origin" in fast[0][2]


def test_pipelined_answers_keep_their_order_when_the_first_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)

    async def run(fast: bool) -> list[bytes]:
        async with receiver(fast) as (port, sink, _):
            sink.delays = [0.3, 0, 0]
            return await exchange(port, [post(extra=b"X-N: 1\r\n") + post(b"\xff") + post(extra=b"X-N: 3\r\n")], 3)

    fast, slow = asyncio.run(run(True)), asyncio.run(run(False))
    assert fast == slow
    assert [a.split(b" ")[1] for a in fast] == [b"200", b"400", b"200"]
    assert served == [200, 400, 200]


def test_a_request_split_in_small_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)
    raw = post()
    writes = [raw[i:i + 7] for i in range(0, len(raw), 7)] + [post()]
    fast, slow = asyncio.run(_both(writes, 2, pause=0.005))
    assert fast == slow
    assert served == [200]  # the split one was aiohttp's; the lane takes the next one


@pytest.mark.parametrize("first", [b"", post()])
def test_a_partial_head_still_meets_the_header_timeout(first: bytes) -> None:
    async def run() -> tuple[list[bytes], bytes]:
        async with receiver(True, read_header_timeout=0.3) as (port, _, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(first + post()[:30])
            answers = await read_answers(reader, 1 if first else 0)
            rest = await asyncio.wait_for(reader.read(), 3)
            writer.close()
            return answers, rest

    answers, rest = asyncio.run(run())
    assert len(answers) == (1 if first else 0)
    assert rest.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_write_timeout_ends_a_late_answer_of_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_fast(monkeypatch)

    async def run() -> bytes:
        async with receiver(True, write_timeout=0.2) as (port, sink, _):
            sink.delays = [0.6]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post())
            got = await asyncio.wait_for(reader.read(), 3)
            writer.close()
            await asyncio.wait_for(sink.consumed.wait(), 5)  # the request ended; its answer had nowhere to go
            return got

    assert asyncio.run(run()) == b""
    assert served == []


def test_idle_timeout_waits_for_the_lane_then_counts_from_its_answer() -> None:
    async def run() -> tuple[list[bytes], float]:
        async with receiver(True, idle_timeout=0.3) as (port, sink, _):
            sink.delays = [0.6]  # longer than idle_timeout: the connection must not close meanwhile
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post())
            answers = await read_answers(reader, 1)
            loop = asyncio.get_running_loop()
            answered = loop.time()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            return answers, loop.time() - answered

    answers, idle = asyncio.run(run())
    assert answers[0].startswith(b"HTTP/1.1 200 OK")
    assert 0.2 < idle < 1.5


def test_jaeger_thrift_http_has_no_fast_lane() -> None:
    from gateway.receivers.jaeger import _ThriftHttp

    server = _ThriftHttp.__new__(_ThriftHttp)
    assert server._fast_lane() is None


