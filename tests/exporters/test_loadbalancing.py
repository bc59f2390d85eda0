"""The `loadbalancing` exporter in-process against gRPC backends: the ring spreads evenly, every routing
key keeps what it names on one endpoint, an endpoint that stops answering loses nothing (its parts and
what is queued go to the new owners) and is back in the ring once it answers, and the `dns` resolver
follows a name's addresses (from a DNS server of the test's own)."""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.exporters import loadbalancing
from gateway.telemetry import Telemetry
from pipelines.batch import Batch
from pipelines.errors import RetryableError
from pipelines.loadbalancing import Ring, partition
from tests.e2e.support import StrictGrpcSink
from tests.extensions.test_file_storage_keys import _Host, storage
from tests.transport.test_grpc_channel import DnsServer


def test_ring_spreads_100000_trace_ids_evenly_over_5_endpoints() -> None:
    ring = Ring([f"tier2-{i}.example:4317" for i in range(5)])
    rng = random.Random(15)
    counts = collections.Counter(ring.owner(rng.randbytes(16)) for _ in range(100_000))
    assert len(counts) == 5
    ratio = max(counts.values()) / min(counts.values())
    assert ratio <= 1.2, (ratio, counts)
    print(f"busiest / least: {ratio:.3f} ({sorted(counts.values())})")


def test_an_endpoint_leaving_moves_only_its_own_traces() -> None:
    five = Ring([f"e{i}:4317" for i in range(5)])
    four = Ring([f"e{i}:4317" for i in range(4)])
    ids = [random.Random(i).randbytes(16) for i in range(5000)]
    moved = [t for t in ids if five.owner(t) != four.owner(t)]
    assert all(five.owner(t) == "e4:4317" for t in moved)
    assert collections.Counter(four.owner(t) for t in moved).keys() == set(four.endpoints)


def _request(traces: int, spans: int, tag: str, services: int = 1, seed: int = 1) -> bytes:
    """`traces` traces of `spans` spans each, spread over `services` resources; each span named
    `{tag}:{trace}:{span}`, with an attribute `tenant` of the trace's number modulo 3."""
    rng = random.Random(seed)
    req = trace_service_pb2.ExportTraceServiceRequest()
    scopes = []
    for s in range(services):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value=f"svc-{s}"))
        scopes.append(rs.scope_spans.add())
    for t in range(traces):
        tid = rng.randbytes(16)
        for i in range(spans):
            span = scopes[(t + i) % services].spans.add(trace_id=tid, span_id=rng.randbytes(8), name=f"{tag}:{t}:{i}")
            span.attributes.add(key="tenant", value=common_pb2.AnyValue(string_value=str(t % 3)))
    return req.SerializeToString()


def _service_of(data: bytes) -> dict[str, str]:
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
    return {sp.name: rs.resource.attributes[0].value.string_value
            for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans}


@pytest.mark.parametrize("key", ["traceID", "service", "resource", "attributes"])
def test_each_routing_key_keeps_what_it_names_on_one_endpoint(key: str) -> None:
    ring = Ring(["a:1", "b:1", "c:1"])
    data = _request(60, 4, "k", services=6)
    attrs = ("tenant",) if key == "attributes" else ()
    parts = partition(data, 240, ring, key, attrs)  # type: ignore[arg-type]
    assert sum(p.items for p in parts) == 240 and len(parts) > 1
    where: dict[str, set[str]] = collections.defaultdict(set)
    for p in parts:
        for name, service in _service_of(p.data).items():
            trace = name.split(":")[1]
            group = {"traceID": trace, "service": service, "resource": service,
                     "attributes": str(int(trace) % 3)}[key]
            where[group].add(p.endpoint)
    assert all(len(endpoints) == 1 for endpoints in where.values()), where


# ---------------------------------------------------------------- in-process, against backends


def _exporter(config: dict[str, Any], host: Any = None) -> tuple[Any, Telemetry]:
    errors = Errors()
    cfg = decode(loadbalancing.Config, config, "exporters::loadbalancing", errors)
    assert not errors, errors.lines
    telemetry = Telemetry()
    return loadbalancing.create(Settings("loadbalancing", cfg, telemetry, host)), telemetry


def _static(backends: list[StrictGrpcSink], **extra: Any) -> dict[str, Any]:
    hostnames = [f"127.0.0.{i + 1}:{b.port}" for i, b in enumerate(backends)]
    otlp = {"tls": {"insecure": True}, "retry_on_failure": {"initial_interval": "50ms", "max_interval": "200ms"}}
    return {"resolver": {"static": {"hostnames": hostnames}}, "protocol": {"otlp": otlp}, **extra}


def _traces_by_backend(backends: list[StrictGrpcSink]) -> dict[str, list[int]]:
    """trace (its `tag:number`) -> the backends that received any of its spans, once per span."""
    out: dict[str, list[int]] = collections.defaultdict(list)
    for i, b in enumerate(backends):
        for name in b.names:
            tag, trace, _ = name.split(":")
            out[f"{tag}:{trace}"].append(i)
    return out


def test_routing_key_traceid_sends_each_trace_to_one_endpoint_and_every_endpoint_gets_some(
        backends: list[StrictGrpcSink]) -> None:
    exporter, telemetry = _exporter({
        "resolver": {"static": {"hostnames": [f"127.0.0.{i}:{backends[0].port}" for i in (1, 2, 3)]}},
        "protocol": {"otlp": {"tls": {"insecure": True}, "headers": {"x-tier": "one"}}},
        "routing_key": "traceID",
    })

    async def body() -> None:
        await exporter.start()
        try:
            for r in range(10):
                await exporter.consume(Batch("traces", _request(20, 5, f"r{r}", seed=r), 100))
            await exporter.drain(10)
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    where = _traces_by_backend(backends)
    assert len(where) == 200 and all(len(v) == 5 and len(set(v)) == 1 for v in where.values())
    assert all(b.total() > 0 for b in backends)
    assert all(m.get("x-tier") == "one" for b in backends for m in b.metadata)
    assert telemetry.registry.get_sample_value("otelcol_exporter_sent_spans_total",
                                               {"exporter": "loadbalancing"}) == 1000


def test_routing_key_attributes_groups_by_the_routing_attributes(backends: list[StrictGrpcSink]) -> None:
    """`tenant` (a span attribute) takes three values: each value's spans all reach one endpoint."""
    exporter, _ = _exporter(_static(backends, routing_key="attributes", routing_attributes=["tenant"],
                                    sending_queue={"enabled": False}))

    async def body() -> None:
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(60, 2, "a", services=3), 120))
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    tenants: dict[int, set[int]] = collections.defaultdict(set)
    for i, b in enumerate(backends):
        for name in b.names:
            tenants[int(name.split(":")[1]) % 3].add(i)
    assert sum(b.total() for b in backends) == 120
    assert len(tenants) == 3 and all(len(v) == 1 for v in tenants.values())


def test_retry_on_failure_at_the_top_sends_again_what_no_endpoint_took() -> None:
    """The only endpoint is down and `protocol::otlp` does not retry: with the top-level
    `retry_on_failure` the request is sent again once the endpoint is up; without, it is counted failed."""
    probe = StrictGrpcSink()
    port = probe.port  # nothing listens there until the backend starts below
    probe.stop()

    def config(top_retry: bool) -> dict[str, Any]:
        return {"resolver": {"static": {"hostnames": [f"127.0.0.1:{port}"]}},
                "protocol": {"otlp": {"tls": {"insecure": True}, "retry_on_failure": {"enabled": False}}},
                "retry_on_failure": {"enabled": top_retry, "initial_interval": "100ms", "max_interval": "200ms"},
                "sending_queue": {"enabled": False}}

    started: list[StrictGrpcSink] = []

    async def body() -> None:
        failing, telemetry = _exporter(config(False))
        await failing.start()
        with pytest.raises(RetryableError):
            await failing.consume(Batch("traces", _request(2, 2, "lost"), 4))
        await failing.shutdown()
        assert telemetry.registry.get_sample_value("otelcol_exporter_send_failed_spans_total",
                                                   {"exporter": "loadbalancing"}) == 4
        retrying, _ = _exporter(config(True))
        await retrying.start()
        asyncio.get_running_loop().call_later(0.5, lambda: started.append(StrictGrpcSink(port=port)))
        try:
            await retrying.consume(Batch("traces", _request(3, 2, "kept"), 6))
        finally:
            await retrying.shutdown()

    try:
        asyncio.run(asyncio.wait_for(body(), 30))
        assert [s.total() for s in started] == [6]
    finally:
        for s in started:
            s.stop()


async def _until(predicate: Any, what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_endpoint_that_stops_answering_loses_nothing_and_comes_back(backends: list[StrictGrpcSink]) -> None:
    """Backend 2 is stopped while requests are queued and in flight: every span arrives once, its traces
    at the two others; restarted on its port, it is back in the ring and gets traces again."""
    exporter, telemetry = _exporter(_static(backends, sending_queue={"num_consumers": 4}))
    port = backends[0].port

    async def body() -> None:
        await exporter.start()
        try:
            for r in range(20):
                await exporter.consume(Batch("traces", _request(10, 3, f"r{r}", seed=r), 30))
                if r == 5:
                    backends[2].stop()
            await _until(lambda: sum(b.total() for b in backends) >= 600, "600 spans")
            assert exporter.pusher.ring.endpoints == (f"127.0.0.1:{port}", f"127.0.0.2:{port}")
            backends[2] = StrictGrpcSink(port=port, host="127.0.0.3")
            await _until(lambda: len(exporter.pusher.ring) == 3, "the restarted endpoint back in the ring")
            await exporter.consume(Batch("traces", _request(30, 2, "after", seed=99), 60))
            await exporter.drain(10)
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 60))
    where = _traces_by_backend(backends)
    before = {t: v for t, v in where.items() if not t.startswith("after")}
    assert len(before) == 200 and sum(len(v) for v in before.values()) == 600  # each span exactly once
    assert all(len(set(v)) == 1 for t, v in where.items() if t.startswith("after"))
    assert telemetry.registry.get_sample_value("otelcol_exporter_send_failed_spans_total",
                                               {"exporter": "loadbalancing"}) in (None, 0.0)
    assert backends[2].total() > 0  # the restarted endpoint is back in the ring


def test_a_busy_or_slow_endpoint_stays_in_the_ring_and_keeps_its_traces(backends: list[StrictGrpcSink]) -> None:
    """Statuses a live server answers with when busy or slow (UNAVAILABLE without RetryInfo, as the
    Collector's memory limiter and our receivers answer; DEADLINE_EXCEEDED, ABORTED, CANCELLED,
    DATA_LOSS), fewer than EJECT_AFTER in a row: each part is asked again on the same endpoint, so every
    trace reaches the endpoint that owns it under the full ring, once."""
    code = grpc.StatusCode
    backends[0].failures = [code.UNAVAILABLE, code.DEADLINE_EXCEEDED]
    backends[1].failures = [code.ABORTED, code.CANCELLED]
    backends[2].failures = [code.DATA_LOSS, code.UNAVAILABLE]
    config = _static(backends, sending_queue={"num_consumers": 1})
    exporter, telemetry = _exporter(config)
    ring = Ring(config["resolver"]["static"]["hostnames"])
    requests = [_request(10, 3, f"r{r}", seed=r) for r in range(10)]
    owned: dict[str, list[str]] = collections.defaultdict(list)
    for data in requests:
        for part in partition(data, 30, ring):
            owned[part.endpoint] += _service_of(part.data)

    async def body() -> None:
        await exporter.start()
        try:
            for data in requests:
                await exporter.consume(Batch("traces", data, 30))
            await exporter.drain(10)
            assert len(exporter.pusher.ring) == 3
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert not any(b.failures for b in backends)  # every failure was answered
    assert [sorted(b.names) for b in backends] == [sorted(owned[e]) for e in ring.endpoints]
    assert telemetry.registry.get_sample_value("otelcol_exporter_send_failed_spans_total",
                                               {"exporter": "loadbalancing"}) in (None, 0.0)


def test_an_endpoint_out_of_the_ring_is_back_once_it_answers_even_busy(backends: list[StrictGrpcSink]) -> None:
    """Backend 2 cannot be reached: out of the ring. Restarted answering UNAVAILABLE (no RetryInfo) to
    every call, it is alive: the probe puts it back; once it takes data it gets its traces again."""
    exporter, _ = _exporter(_static(backends))
    port = backends[0].port
    backends[2].stop()

    async def body() -> None:
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(30, 2, "down", seed=1), 60))
            await _until(lambda: len(exporter.pusher.ring) == 2, "the stopped endpoint out of the ring")
            busy = StrictGrpcSink(port=port, host="127.0.0.3")
            busy.failures = [grpc.StatusCode.UNAVAILABLE] * 1000
            backends[2] = busy
            await _until(lambda: len(exporter.pusher.ring) == 3, "the busy endpoint back in the ring")
            busy.failures.clear()
            await exporter.consume(Batch("traces", _request(30, 2, "up", seed=2), 60))
            await exporter.drain(10)
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert sum(b.total() for b in backends) == 120 and backends[2].total() > 0


def test_with_every_endpoint_down_requests_are_refused_and_queued_data_waits(backends: list[StrictGrpcSink]) -> None:
    """Both endpoints cannot be reached and `protocol::otlp` does not retry: the request already queued
    (acknowledged) is not given up but waits in the queue; new requests are refused with a retryable
    answer and counted. One endpoint back: the queued request is delivered, exactly once."""
    port = backends[0].port
    for b in backends:
        b.stop()
    exporter, telemetry = _exporter({
        "resolver": {"static": {"hostnames": [f"127.0.0.1:{port}", f"127.0.0.2:{port}"]}},
        "protocol": {"otlp": {"tls": {"insecure": True}, "retry_on_failure": {"enabled": False}}},
        "sending_queue": {"num_consumers": 2},
    })

    def metric(name: str) -> float | None:
        return telemetry.registry.get_sample_value(name, {"exporter": "loadbalancing"})

    async def body() -> None:
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(20, 2, "queued", seed=1), 40))
            await _until(lambda: len(exporter.pusher.ring) == 0, "every endpoint out of the ring")
            with pytest.raises(RetryableError, match="no endpoint in the ring"):
                await exporter.consume(Batch("traces", _request(5, 2, "refused", seed=2), 10))
            assert metric("otelcol_exporter_enqueue_failed_spans_total") == 10
            backends[1] = StrictGrpcSink(port=port, host="127.0.0.2")
            await _until(lambda: backends[1].total() >= 40, "the queued spans at the endpoint back")
            await exporter.drain(10)
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert sorted(backends[1].names) == sorted(_service_of(_request(20, 2, "queued", seed=1)))
    assert metric("otelcol_exporter_send_failed_spans_total") in (None, 0.0)
    assert metric("otelcol_exporter_sent_spans_total") == 40


def test_with_every_endpoint_down_a_persistent_queue_keeps_the_data_for_the_next_start(
        backends: list[StrictGrpcSink], tmp_path: Path) -> None:
    """No endpoint in the ring at shutdown: the drain stops at once (not at its deadline) and the
    queued request stays on disk; the next start, with an endpoint up, delivers it once."""
    port = backends[0].port
    backends[0].stop()
    config = {"resolver": {"static": {"hostnames": [f"127.0.0.1:{port}"]}},
              "protocol": {"otlp": {"tls": {"insecure": True}}},
              "sending_queue": {"storage": "file_storage"}}
    data = _request(20, 2, "kept", seed=1)

    async def run(up: bool) -> None:
        ext = storage({"directory": str(tmp_path)})
        await ext.start()
        exporter, _ = _exporter(config, _Host(ext))
        await exporter.start()
        try:
            if up:
                await _until(lambda: backends[0].total() >= 40, "the kept spans delivered")
            else:
                await exporter.consume(Batch("traces", data, 40))
                await _until(lambda: len(exporter.pusher.ring) == 0, "the endpoint out of the ring")
            await exporter.drain(60)  # the body's own bound (30s) is shorter: the drain must stop by itself
        finally:
            await exporter.shutdown()
            await ext.shutdown()

    asyncio.run(asyncio.wait_for(run(up=False), 30))
    backends[0] = StrictGrpcSink(port=port)
    asyncio.run(asyncio.wait_for(run(up=True), 30))
    assert sorted(backends[0].names) == sorted(_service_of(data))


def test_dns_resolver_follows_the_addresses_of_a_name(backends: list[StrictGrpcSink]) -> None:
    port = backends[0].port

    async def body() -> None:
        dns = DnsServer("tier2.test", ["127.0.0.1", "127.0.0.2"])
        dns_port = await dns.start()
        exporter, _ = _exporter({
            "resolver": {"dns": {"hostname": "tier2.test", "port": str(port), "interval": "50ms",
                                 "server": f"127.0.0.1:{dns_port}"}},
            "protocol": {"otlp": {"tls": {"insecure": True}}},
            "sending_queue": {"enabled": False},
        })
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(40, 2, "one", seed=1), 80))
            first = [b.total() for b in backends]
            assert first[0] > 0 and first[1] > 0 and first[2] == 0 and sum(first) == 80
            dns.addresses = ["127.0.0.3"]
            await _until(lambda: exporter.pusher.ring.endpoints == (f"127.0.0.3:{port}",), "the new address")
            await exporter.consume(Batch("traces", _request(10, 2, "two", seed=2), 20))
        finally:
            await exporter.shutdown()
            assert dns.transport is not None
            dns.transport.close()
        assert [b.total() for b in backends] == [*first[:2], 20]

    asyncio.run(asyncio.wait_for(body(), 30))


def test_dns_timeout_bounds_each_resolution() -> None:
    """A DNS server that never answers: with `timeout: 100ms` the first resolution gives up at once and
    the exporter starts with an empty ring (the name may resolve later)."""

    async def body() -> float:
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        server = f"127.0.0.1:{silent.get_extra_info('sockname')[1]}"
        exporter, _ = _exporter({"resolver": {"dns": {"hostname": "tier2.test", "timeout": "100ms",
                                                      "interval": "1h", "server": server}}})
        began = loop.time()
        await exporter.start()
        took = loop.time() - began
        assert len(exporter.pusher.ring) == 0
        await exporter.shutdown()
        silent.close()
        return took

    assert asyncio.run(asyncio.wait_for(body(), 10)) < 1.0
