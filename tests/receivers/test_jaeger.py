"""The `jaeger` receiver built in-process by its factory: every protocol on its endpoint, the
OpenTelemetry SDK's Jaeger Thrift exporter as a client (HTTP and the agent's UDP), the answer held
until the pipelines hold the request, the UDP keys (queue_size, workers, max_packet_size,
socket_buffer_size), and hostile input refused and counted, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.receivers import jaeger
from gateway.telemetry import Telemetry
from tests.harness import free_ports
from tests.interop import _jaeger
from tests.receivers.test_zipkin import Pipeline, count

THRIFT = {"Content-Type": "application/x-thrift"}


@contextlib.asynccontextmanager
async def receiver(config: dict[str, Any], telemetry: Telemetry | None = None) -> AsyncIterator[
        tuple[Pipeline, jaeger.JaegerReceiver]]:
    errors = Errors()
    cfg = decode(jaeger.Config, config, "receivers::jaeger", errors)
    assert cfg is not None and not errors, errors.lines
    pipeline = Pipeline()
    r = jaeger.FACTORY.create(Settings("jaeger", cfg, telemetry or Telemetry(), None),  # type: ignore[arg-type]
                              {"traces": pipeline})
    await r.start()
    try:
        yield pipeline, r
    finally:
        await r.shutdown()


async def post(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/api/traces", data=body, headers=headers or THRIFT) as resp:
        return resp.status, await resp.text()


def post_spans(port: int, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/jaeger.api_v2.CollectorService/PostSpans",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(body, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]


def send_udp(port: int, *packets: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for packet in packets:
            s.sendto(packet, ("127.0.0.1", port))


async def batches(pipeline: Pipeline, n: int) -> None:
    """Until the pipeline holds `n` batches (consume appends in the step that sets `arrived`)."""
    async with asyncio.timeout(5):
        while len(pipeline.batches) < n:
            pipeline.arrived.clear()
            await pipeline.arrived.wait()


def small_packet(protocol: str) -> bytes:
    """One span: under any max_packet_size a test sets; sent last to a single worker, it arrives
    after every packet before it was dealt with."""
    t = _jaeger.ttypes()
    span = t.Span(traceIdLow=1, traceIdHigh=0, spanId=1, parentSpanId=0, operationName="last", flags=1, startTime=1,
                  duration=1)
    return _jaeger.agent_packet(t.Batch(process=t.Process(serviceName="s"), spans=[span]), protocol)


def names(pipeline: Pipeline) -> set[str]:
    return {s.name for s in pipeline.spans()}


def test_protocols_grpc_thrift_http_thrift_compact_thrift_binary_each_listen_on_their_endpoint() -> None:
    grpc_port, http_port, compact, binary = free_ports(4)
    protocols = {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}, "thrift_http": {"endpoint": f"127.0.0.1:{http_port}"},
                 "thrift_compact": {"endpoint": f"127.0.0.1:{compact}"},
                 "thrift_binary": {"endpoint": f"127.0.0.1:{binary}"}}

    async def run() -> None:
        async with receiver({"protocols": protocols}) as (pipeline, _):
            assert (await post(http_port, _jaeger.thrift_http_body(_jaeger.thrift_batch(1, "via-http"))))[0] == 202
            assert await asyncio.to_thread(post_spans, grpc_port, _jaeger.proto_request(2, "via-grpc")) \
                == grpc.StatusCode.OK
            send_udp(compact, _jaeger.agent_packet(_jaeger.thrift_batch(3, "via-compact"), "compact"))
            send_udp(binary, _jaeger.agent_packet(_jaeger.thrift_batch(4, "via-binary"), "binary"))
            await batches(pipeline, 4)
            services = {kv.value.string_value for b in pipeline.batches for rs in b.message().resource_spans
                        for kv in rs.resource.attributes if kv.key == "service.name"}
            assert {"via-http", "via-grpc", "via-compact", "via-binary"} <= services

    asyncio.run(run())


@pytest.mark.filterwarnings("ignore:Call to deprecated method __init__:DeprecationWarning")
def test_sdk_jaeger_thrift_exporter_over_http_and_the_agents_udp() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    module = _jaeger.sdk_exporter()
    http_port, compact = free_ports(2)
    protocols = {"thrift_http": {"endpoint": f"127.0.0.1:{http_port}"},
                 "thrift_compact": {"endpoint": f"127.0.0.1:{compact}"}}

    def emit(exporter: Any, service: str) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("lib", "1.0")
        with tracer.start_as_current_span("root") as root:
            root.set_attribute("http.status_code", 503)
            with tracer.start_as_current_span("child") as child:
                child.add_event("retry", {"attempt": 2})
        provider.shutdown()

    async def run() -> None:
        async with receiver({"protocols": protocols}) as (pipeline, _):
            http = module.JaegerExporter(collector_endpoint=f"http://127.0.0.1:{http_port}/api/traces")
            await asyncio.to_thread(emit, http, "sdk-http")
            agent = module.JaegerExporter(agent_host_name="127.0.0.1", agent_port=compact)
            await asyncio.to_thread(emit, agent, "sdk-agent")
            await batches(pipeline, 4)  # a request per span, from each exporter
            spans = pipeline.spans()
            assert len(spans) == 4
            root = next(s for s in spans if s.name == "root")
            child = next(s for s in spans if s.name == "child")
            assert root.status.code == 2 and child.parent_span_id == root.span_id
            # the exporter names an event in a `message` field; the Collector reads only `event`
            (event,) = child.events
            assert event.name == "" and {kv.key: kv.value.string_value for kv in event.attributes}["message"] == "retry"

    asyncio.run(run())


def test_the_answer_waits_until_the_pipelines_hold_the_request() -> None:
    grpc_port, http_port = free_ports(2)
    protocols = {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}, "thrift_http": {"endpoint": f"127.0.0.1:{http_port}"}}

    async def run() -> None:
        async with receiver({"protocols": protocols}) as (pipeline, _):
            sends = (lambda: post(http_port, _jaeger.thrift_http_body(_jaeger.thrift_batch(1))),
                     lambda: asyncio.to_thread(post_spans, grpc_port, _jaeger.proto_request(2)))
            # Whenever an answer comes, the gate must be open: the pipeline held the request first.
            answered_gated: list[bool] = []
            for send in sends:
                gate = pipeline.gate = asyncio.Event()
                pipeline.arrived = asyncio.Event()
                answer = asyncio.ensure_future(send())
                answer.add_done_callback(lambda _, g=gate: answered_gated.append(not g.is_set()))  # type: ignore[misc]
                await pipeline.arrived.wait()  # the request is in the pipeline, held on the closed gate
                for _ in range(20):  # turns of the loop for an answer written too early to come in
                    await asyncio.sleep(0)
                assert not answer.done()
                gate.set()
                assert await answer in ((202, ""), grpc.StatusCode.OK)
            assert answered_gated == [False, False]

    asyncio.run(run())


def test_queue_size_and_workers_drop_what_the_queue_cannot_hold() -> None:
    (compact,) = free_ports(1)
    telemetry = Telemetry()
    config = {"protocols": {"thrift_compact": {"endpoint": f"127.0.0.1:{compact}", "queue_size": 1, "workers": 1}}}

    async def run() -> None:
        async with receiver(config, telemetry) as (pipeline, _):
            pipeline.gate = asyncio.Event()
            packet = _jaeger.agent_packet(_jaeger.thrift_batch(1), "compact")
            send_udp(compact, packet)
            await pipeline.arrived.wait()  # the one worker holds the first
            send_udp(compact, packet, packet, packet)  # one waits in the queue, two find it full
            for _ in range(500):  # until the event loop has read them all (the two refusals counted)
                if count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="queue_full") >= 2:
                    break
                await asyncio.sleep(0.01)
            pipeline.gate.set()
            await batches(pipeline, 2)
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="queue_full") == 2

    asyncio.run(run())


def test_max_packet_size_cuts_a_longer_packet_which_then_fails_to_decode() -> None:
    (binary,) = free_ports(1)
    telemetry = Telemetry()
    packet = _jaeger.agent_packet(_jaeger.thrift_batch(1), "binary")
    config = {"protocols": {"thrift_binary": {"endpoint": f"127.0.0.1:{binary}", "max_packet_size": len(packet) - 1,
                                              "workers": 1}}}

    async def run() -> None:
        async with receiver(config, telemetry) as (pipeline, _):
            send_udp(binary, packet, small_packet("binary"))
            await batches(pipeline, 1)
            assert [s.name for s in pipeline.spans()] == ["last"]
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", transport="udp_thrift_binary",
                     reason="invalid") == 1

    asyncio.run(run())


def test_socket_buffer_size_sets_the_receive_buffer() -> None:
    (compact,) = free_ports(1)

    async def run() -> None:
        for size in (0, 1 << 20):
            config = {"protocols": {"thrift_compact": {"endpoint": f"127.0.0.1:{compact}",
                                                       "socket_buffer_size": size}}}
            async with receiver(config) as (_, r):
                sock = r.servers[0]._transport.get_extra_info("socket")
                got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                assert (got >= 1 << 20) if size else (got < 1 << 20), (size, got)  # Linux doubles what is asked

    asyncio.run(run())


HOSTILE_HTTP: list[tuple[bytes, dict[str, str]]] = [
    (b"\x0c" * 100_000, THRIFT),
    (b"\x0c\x00\x01\x0f\x00\x02\x0c\x7f\xff\xff\xff", THRIFT),
    (b"\x0c\x00\x01\x0b\x00\x01\x7f\xff\xff\xff", THRIFT),
    (_jaeger.thrift_http_body(_jaeger.thrift_batch(1)), {"Content-Type": "text/plain"}),
    (b"\x1f\x8b garbage", {**THRIFT, "Content-Encoding": "gzip"}),
]


@pytest.mark.parametrize("body,headers", HOSTILE_HTTP, ids=range(len(HOSTILE_HTTP)))
def test_hostile_thrift_http_is_400_and_counted(body: bytes, headers: dict[str, str]) -> None:
    (port,) = free_ports(1)
    telemetry = Telemetry()

    async def run() -> None:
        async with receiver({"protocols": {"thrift_http": {"endpoint": f"127.0.0.1:{port}"}}}, telemetry) \
                as (pipeline, _):
            status, text = await post(port, body, headers)
            assert status == 400 and text.strip(), text
            assert not pipeline.batches
            assert (await post(port, _jaeger.thrift_http_body(_jaeger.thrift_batch(2))))[0] == 202
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="invalid") == 1

    asyncio.run(run())


def test_hostile_grpc_and_udp_are_refused_and_counted() -> None:
    grpc_port, compact = free_ports(2)
    telemetry = Telemetry()
    protocols = {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                 "thrift_compact": {"endpoint": f"127.0.0.1:{compact}", "workers": 1}}
    bad_grpc = [b"\x0a\x05\x0a\x03\x0a\x01\x01", b"\x0a\x80\x80\x80\x80\x10", b"\x0a\x04\x0a\x02\x08\x01"]
    bad_udp = [b"", b"\x82", b"\x82\x21\x01\x0femitZipkinBatch\x00", b"\x82\x21\x01\x03foo\x00",
               b"\x82\x21\x01\x09emitBatch" + b"\x1c" * 5000]

    async def run() -> None:
        async with receiver({"protocols": protocols}, telemetry) as (pipeline, _):
            for body in bad_grpc:
                assert await asyncio.to_thread(post_spans, grpc_port, body) == grpc.StatusCode.INTERNAL
            send_udp(compact, *bad_udp, small_packet("compact"))
            await batches(pipeline, 1)
            assert [s.name for s in pipeline.spans()] == ["last"]
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", transport="udp_thrift_compact") \
            == len(bad_udp)
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", transport="grpc") == len(bad_grpc)

    asyncio.run(run())
