"""The gRPC channel (`gateway.transport.grpc_channel`) and the `otlp` exporter over it: keepalive PINGs
find a black-holed connection, `round_robin` spreads calls over every address a `dns:` target resolves
to (from a DNS server of the test's own on loopback) and follows the answer as it changes."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.exporters import otlp_grpc
from gateway.transport.grpc_channel import H2Client
from gateway.transport.resolve import Target, parse_target
from pipelines.batch import Batch
from tests.delivery.proxy import Proxy
from tests.e2e.support import StrictGrpcSink, spans_request
from tests.exporters.exporting import make

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class DnsServer(asyncio.DatagramProtocol):
    """Answers A queries for one name with `addresses` (AAAA: none; other names: NXDOMAIN); `queried`
    is set on each A query and cleared by whoever waits for the next."""

    def __init__(self, name: str, addresses: list[str]) -> None:
        self.name = name
        self.addresses = addresses
        self.queried = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
            pos += 1 + data[pos]
        qtype = struct.unpack_from(">H", data, pos + 1)[0]
        question = data[12:pos + 5]
        known = ".".join(labels) == self.name
        answers = [a for a in self.addresses if qtype == 1] if known else []
        head = data[:2] + struct.pack(">HHHHH", 0x8180 if known else 0x8183, 1, len(answers), 0, 0)
        records = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + bytes(map(int, a.split(".")))
                           for a in answers)
        assert self.transport is not None
        self.transport.sendto(head + question + records, addr)
        if qtype == 1:
            self.queried.set()

    async def next_query(self) -> None:
        self.queried.clear()
        await self.queried.wait()


@pytest.fixture
def sinks() -> Iterator[list[StrictGrpcSink]]:
    """Four backends on one port, at 127.0.0.1 to 127.0.0.4 (as a headless Service's pods)."""
    first = StrictGrpcSink()
    started = [first]
    try:
        started += [StrictGrpcSink(port=first.port, host=f"127.0.0.{i}") for i in (2, 3, 4)]
        yield started
    finally:
        for s in started:
            s.stop()


@contextlib.asynccontextmanager
async def resolved_by(dns: DnsServer, port: int, **kwargs: Any) -> AsyncIterator[H2Client]:
    """A client of `backend.test:port` that asks `dns` for the addresses."""
    dns_port = await dns.start()
    client = H2Client(f"dns://127.0.0.1:{dns_port}/{dns.name}:{port}", **kwargs)
    try:
        yield client
    finally:
        await client.close()
        assert dns.transport is not None
        dns.transport.close()


def _request(n: int = 1) -> bytes:
    return spans_request(n).SerializeToString()


def test_targets() -> None:
    assert parse_target("collector:4317", 443) == Target("collector", 4317, "collector:4317")
    assert parse_target("collector", 443) == Target("collector", 443, "collector")
    assert parse_target("dns:///svc.ns:4317", 443) == Target("svc.ns", 4317, "svc.ns:4317", dns=True)
    assert parse_target("dns://127.0.0.1:5353/svc:4317", 443) == Target(
        "svc", 4317, "svc:4317", dns=True, server=("127.0.0.1", 5353))
    assert parse_target("dns:[::1]:4317", 80).host == "::1"
    for bad in ("dns://127.0.0.1", "host:port", "[::1"):
        with pytest.raises(ValueError):
            parse_target(bad, 443)


def test_round_robin_spreads_over_every_address_and_follows_dns(sinks: list[StrictGrpcSink]) -> None:
    async def body() -> None:
        dns = DnsServer("backend.test", ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
        async with resolved_by(dns, sinks[0].port, resolve_interval=0.05) as client:
            for _ in range(30):
                await client.unary(EXPORT, _request())
            counts = [s.total() for s in sinks]
            assert sum(counts) == 30 and counts[3] == 0
            assert all(c > 0 for c in counts[:3]), counts

            dns.addresses = ["127.0.0.4"]
            await dns.next_query()
            await dns.next_query()  # a resolution starts with A: the one before is in use by now
            for _ in range(10):
                await client.unary(EXPORT, _request())
            assert [s.total() for s in sinks] == [*counts[:3], 10]

    asyncio.run(asyncio.wait_for(body(), 30))


def test_pick_first_stays_on_the_first_address(sinks: list[StrictGrpcSink]) -> None:
    async def body() -> None:
        dns = DnsServer("backend.test", ["127.0.0.2", "127.0.0.3"])
        async with resolved_by(dns, sinks[0].port, balancer="pick_first") as client:
            for _ in range(10):
                await client.unary(EXPORT, _request())
            assert [s.total() for s in sinks] == [0, 10, 0, 0]

    asyncio.run(asyncio.wait_for(body(), 30))


def test_dns_scheme_without_a_server_uses_the_system_resolver(sinks: list[StrictGrpcSink]) -> None:
    async def body() -> None:
        client = H2Client(f"dns:///localhost:{sinks[0].port}")  # ::1 as well, maybe: nothing listens there
        try:
            for _ in range(3):
                await client.unary(EXPORT, _request())
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert sinks[0].total() == 3


def test_keepalive_finds_a_black_holed_connection_and_nothing_is_lost(monkeypatch: pytest.MonkeyPatch,
                                                                      sinks: list[StrictGrpcSink]) -> None:
    monkeypatch.setattr(otlp_grpc, "MIN_KEEPALIVE_TIME", 0.0)
    sink = sinks[0]
    proxy = Proxy(sink.port).up()
    ka_time, ka_timeout = 0.3, 0.3
    exporter, telemetry = make(otlp_grpc, {
        "endpoint": f"127.0.0.1:{proxy.port}", "tls": {"insecure": True}, "timeout": "30s",
        "keepalive": {"time": f"{ka_time}s", "timeout": f"{ka_timeout}s"},
        "retry_on_failure": {"enabled": True, "initial_interval": "1ms", "max_interval": "1ms"}})

    async def body() -> float:
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(3), 3))
            proxy.blackhole()  # the connection stays open, and nothing goes through it any more
            start = time.monotonic()
            await exporter.consume(Batch("traces", _request(4), 4))
            return time.monotonic() - start
        finally:
            await exporter.shutdown()

    try:
        took = asyncio.run(asyncio.wait_for(body(), 30))
    finally:
        proxy.down()
    # Found dead within time + timeout of its last answer (not the 30s call timeout), sent again on a
    # new connection, and received once.
    assert took < ka_time + ka_timeout + 1.0, took
    assert proxy.accepted == 2
    assert sink.span_counts == [3, 4]
    sent = telemetry.registry.get_sample_value("otelcol_exporter_sent_spans_total", {"exporter": "otlp"})
    assert sent == 7


@pytest.mark.parametrize("permit", [True, False])
def test_permit_without_stream_pings_an_idle_connection_or_waits_for_a_call(
        monkeypatch: pytest.MonkeyPatch, sinks: list[StrictGrpcSink], permit: bool) -> None:
    """grpc-go's rule: with no call in flight a connection is pinged only under permit_without_stream;
    otherwise keepalive sleeps until the next call (and pings then, if the connection was quiet)."""
    from gateway.transport import grpc_client

    monkeypatch.setattr(otlp_grpc, "MIN_KEEPALIVE_TIME", 0.0)
    events: list[str] = []
    turned: asyncio.Event | None = None
    keepalive, ping = grpc_client._Connection._keepalive, grpc_client._Connection._ping

    def counted_ping(conn: Any) -> None:
        events.append("ping")
        ping(conn)

    def watched(conn: Any) -> None:
        keepalive(conn)
        if conn.dormant:
            events.append("dormant")
        if turned is not None and (events.count("ping") >= 2 if permit else "dormant" in events):
            turned.set()

    monkeypatch.setattr(grpc_client._Connection, "_ping", counted_ping)
    monkeypatch.setattr(grpc_client._Connection, "_keepalive", watched)
    exporter, _ = make(otlp_grpc, {
        "endpoint": f"127.0.0.1:{sinks[0].port}", "tls": {"insecure": True},
        "keepalive": {"time": "50ms", "timeout": "2s", "permit_without_stream": permit}})

    async def body() -> None:
        nonlocal turned
        turned = asyncio.Event()
        await exporter.start()
        try:
            await exporter.consume(Batch("traces", _request(2), 2))
            await turned.wait()  # idle from here on: two pings, or keepalive gone dormant (it stays so)
        finally:
            await exporter.shutdown()

    asyncio.run(asyncio.wait_for(body(), 30))
    if permit:
        assert events.count("ping") >= 2 and "dormant" not in events
    else:
        assert "ping" not in events and events.count("dormant") >= 1
    assert sinks[0].span_counts == [2]


@pytest.mark.parametrize(("balancer_name", "want"), [("round_robin", [2, 2, 2, 0]), ("pick_first", [0, 6, 0, 0])])
def test_the_otlp_exporters_balancer_name_spreads_or_sticks(sinks: list[StrictGrpcSink], balancer_name: str,
                                                             want: list[int]) -> None:
    dns = DnsServer("backend.test", ["127.0.0.2", "127.0.0.1", "127.0.0.3"] if balancer_name == "round_robin"
                    else ["127.0.0.2", "127.0.0.3"])

    async def body() -> None:
        dns_port = await dns.start()
        exporter, _ = make(otlp_grpc, {"endpoint": f"dns://127.0.0.1:{dns_port}/backend.test:{sinks[0].port}",
                                       "tls": {"insecure": True}, "balancer_name": balancer_name})
        await exporter.start()
        try:
            for _ in range(6):
                await exporter.consume(Batch("traces", _request(), 1))
        finally:
            await exporter.shutdown()
            assert dns.transport is not None
            dns.transport.close()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert [s.total() for s in sinks] == want
