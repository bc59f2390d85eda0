"""The load generator: closed-loop senders (a fixed number of requests in flight) over gRPC or
OTLP/HTTP, replaying a pool of pre-serialized requests. It runs in its own process, so its CPU is
never mixed with the gateway's, and measures each request's round trip (the gateway acknowledges a
request once its pipelines hold it, so that is the time a request spends in the gateway plus
loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bench.payload import PayloadSpec, build_pool, spans_per_trace, stream

TRACES_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
Transport = Literal["grpc", "http", "http-json"]


@dataclass(frozen=True)
class LoadSpec:
    target: str  # host:port
    transport: Transport = "grpc"
    concurrency: int = 32
    connections: int = 8
    duration: float = 10.0
    payload: PayloadSpec = field(default_factory=PayloadSpec)


@dataclass
class LoadResult:
    ok_requests: int = 0
    ok_spans: int = 0
    failed_requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    spans_per_trace: float = 1.0  # in the payload's pool

    def error(self, what: str) -> None:
        self.failed_requests += 1
        self.errors[what] = self.errors.get(what, 0) + 1

    def ok(self, latency: float, spans: int) -> None:
        self.latencies.append(latency)
        self.ok_requests += 1
        self.ok_spans += spans


class Tally(Protocol):
    def ok(self, latency: float, spans: int) -> None: ...

    def error(self, what: str) -> None: ...


async def export(call: Any, body: bytes, spans: int, tally: Tally) -> None:
    """One OTLP/gRPC Export on `call` (a grpcio aio unary-unary callable), counted in `tally` with its
    round trip, or as a refusal by status code."""
    import grpc

    t0 = time.perf_counter()
    try:
        await call(body, timeout=30)
    except grpc.aio.AioRpcError as exc:
        tally.error(exc.code().name)
        return
    tally.ok(time.perf_counter() - t0, spans)


async def _grpc(spec: LoadSpec, requests: Iterator[bytes], spans: int, res: LoadResult) -> None:
    import grpc

    channels = [grpc.aio.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(spec.connections)]
    calls = [ch.unary_unary(TRACES_PATH, None, None) for ch in channels]
    for ch in channels:
        await ch.channel_ready()
    end = time.perf_counter() + spec.duration
    res.started = time.time()

    async def sender(call: Any) -> None:
        while time.perf_counter() < end:
            await export(call, next(requests), spans, res)

    t = time.perf_counter()
    await asyncio.gather(*(sender(calls[i % len(calls)]) for i in range(spec.concurrency)))
    res.elapsed = time.perf_counter() - t
    for ch in channels:
        await ch.close(None)


async def _http(spec: LoadSpec, requests: Iterator[bytes], spans: int, res: LoadResult) -> None:
    import aiohttp

    url = f"http://{spec.target}/v1/traces"
    headers = {"Content-Type": "application/json" if spec.transport == "http-json" else "application/x-protobuf"}
    # HTTP/1.1 has one request in flight per connection: a connection per sender, or the senders
    # would queue for a connection inside the client and the latency would measure that queue.
    connector = aiohttp.TCPConnector(limit=max(spec.connections, spec.concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.perf_counter() + spec.duration
        res.started = time.time()

        async def sender() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=next(requests), headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            res.error(f"HTTP {resp.status}")
                            continue
                except aiohttp.ClientError as exc:
                    res.error(type(exc).__name__)
                    continue
                res.ok(time.perf_counter() - t0, spans)

        t = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(spec.concurrency)))
        res.elapsed = time.perf_counter() - t


def as_json(pool: list[bytes]) -> list[bytes]:
    """The pool's requests in OTLP/JSON (hex ids, enums as numbers), as SDKs' JSON exporters send them."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pipelines import otlp_json

    return [otlp_json.encode(ExportTraceServiceRequest.FromString(body), integer_enums=True) for body in pool]


def run(spec: LoadSpec) -> LoadResult:
    """Send for `spec.duration` seconds; the pool is built before the clock starts."""
    pool = build_pool(spec.payload)
    if spec.transport == "http-json":
        pool = as_json(pool)  # encoded before the clock starts, like the protobuf pool
    requests = stream(spec.payload, pool)
    res = LoadResult(spans_per_trace=spans_per_trace(spec.payload, pool))
    send = _grpc if spec.transport == "grpc" else _http
    asyncio.run(send(spec, requests, spec.payload.spans_per_request, res))
    return res


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
