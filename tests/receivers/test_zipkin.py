"""The `zipkin` receiver built in-process by its factory: the OpenTelemetry SDK's Zipkin exporters
(JSON and protobuf) as clients, its keys against their defaults, the answer held until the pipelines
hold the request, and hostile input answered 400 and counted, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.receivers import zipkin
from gateway.telemetry import Telemetry
from pipelines.batch import Batch
from pipelines.errors import PermanentError, RetryableError
from tests.e2e.support import Certs
from tests.harness import free_ports
from tests.interop import _zipkin


class Pipeline:
    """Stands for the pipelines: records each batch; may hold it on `gate` or refuse it with `error`."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.error: Exception | None = None

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.batches.append(batch)

    def spans(self) -> list[Any]:
        return [s for b in self.batches for rs in b.message().resource_spans for ss in rs.scope_spans
                for s in ss.spans]


@contextlib.asynccontextmanager
async def receiver(config: dict[str, Any], telemetry: Telemetry | None = None) -> AsyncIterator[Pipeline]:
    errors = Errors()
    cfg = decode(zipkin.Config, config, "receivers::zipkin", errors)
    assert cfg is not None and not errors, errors.lines
    pipeline = Pipeline()
    r = zipkin.FACTORY.create(Settings("zipkin", cfg, telemetry or Telemetry(), None),  # type: ignore[arg-type]
                              {"traces": pipeline})
    await r.start()
    try:
        yield pipeline
    finally:
        await r.shutdown()


def count(telemetry: Telemetry, name: str, **labels: str) -> float:
    """The sum of a counter's samples whose labels include `labels`."""
    return sum(sample.value for metric in telemetry.registry.collect() for sample in metric.samples
               if sample.name == name and labels.items() <= sample.labels.items())


async def post(url: str, body: bytes, headers: dict[str, str] | None = None,
               https: ssl.SSLContext | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})},
            ssl=https if https is not None else False) as resp:
        return resp.status, await resp.text()


def test_sdk_zipkin_json_and_protobuf_exporters_deliver_their_spans() -> None:
    from opentelemetry.exporter.zipkin.json import ZipkinExporter as JsonExporter
    from opentelemetry.sdk.trace.export import SpanExportResult
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/api/v2/spans"
    proto_exporter = _zipkin.sdk_proto_exporter().ZipkinExporter(endpoint=url)

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}"}) as pipeline:
            for exporter, tag in ((JsonExporter(endpoint=url), "json"), (proto_exporter, "proto")):
                result = await asyncio.to_thread(exporter.export, _zipkin.sdk_spans(tag))
                assert result is SpanExportResult.SUCCESS
            spans = pipeline.spans()
            assert sorted(s.name for s in spans) == sorted(["root", "child", "send"] * 2)
            services = {kv.value.string_value for b in pipeline.batches for rs in b.message().resource_spans
                        for kv in rs.resource.attributes if kv.key == "service.name"}
            assert services == {"sdk-json", "sdk-proto"}
            child = next(s for s in spans if s.name == "child")
            # the SDK writes the description as the `error` tag, which the Collector keeps as an attribute
            errors = [kv.value.string_value for kv in child.attributes if kv.key == "error"]
            assert child.status.code == 2 and errors == ["downstream failed"]

    asyncio.run(run())


def test_endpoint_and_parse_string_tags() -> None:
    plain, parsed = free_ports(2)
    body = b'[{"traceId":"0123456789abcdef0123456789abcdef","id":"0000000000000001","tags":{"n":"42","f":"1.5"}}]'

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{plain}"}) as p1, \
                receiver({"endpoint": f"127.0.0.1:{parsed}", "parse_string_tags": True}) as p2:
            assert (await post(f"http://127.0.0.1:{plain}/api/v2/spans", body))[0] == 202
            assert (await post(f"http://127.0.0.1:{parsed}/api/v2/spans", body))[0] == 202
            as_str = {kv.key: kv.value.WhichOneof("value") for kv in p1.spans()[0].attributes}
            as_typed = {kv.key: kv.value.WhichOneof("value") for kv in p2.spans()[0].attributes}
            assert as_str["n"] == as_str["f"] == "string_value"
            assert (as_typed["n"], as_typed["f"]) == ("int_value", "double_value")

    asyncio.run(run())


def test_max_request_body_size_refuses_a_larger_body_with_400_and_counts_it() -> None:
    (port,) = free_ports(1)
    telemetry = Telemetry()
    small = _zipkin.v2_json(1)

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}", "max_request_body_size": len(small) + 10},
                            telemetry) as pipeline:
            url = f"http://127.0.0.1:{port}/api/v2/spans"
            assert (await post(url, small))[0] == 202
            status, text = await post(url, small + b" " * 20)
            assert status == 400 and "max_request_body_size" in text
            # a gzip body inflating past the limit too
            status, _ = await post(url, gzip.compress(small + b" " * 100), {"Content-Encoding": "gzip"})
            assert status == 400
            assert len(pipeline.batches) == 1
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="too_large") == 2

    asyncio.run(run())


def test_tls_serves_https(certs: Certs) -> None:
    (port,) = free_ports(1)
    client = ssl.create_default_context(cafile=str(certs.ca))

    async def run() -> None:
        tls = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
        async with receiver({"endpoint": f"127.0.0.1:{port}", "tls": tls}) as pipeline:
            status, _ = await post(f"https://127.0.0.1:{port}/api/v2/spans", _zipkin.v2_json(1), https=client)
            assert status == 202 and pipeline.spans()
            with pytest.raises(aiohttp.ClientError):
                await post(f"http://127.0.0.1:{port}/api/v2/spans", _zipkin.v2_json(1))

    asyncio.run(run())


def test_the_answer_waits_until_the_pipelines_hold_the_request() -> None:
    (port,) = free_ports(1)

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}"}) as pipeline:
            pipeline.gate = asyncio.Event()
            answer = asyncio.create_task(post(f"http://127.0.0.1:{port}/api/v2/spans", _zipkin.v2_json(1)))
            await pipeline.arrived.wait()
            assert not answer.done()
            pipeline.gate.set()
            assert (await answer)[0] == 202

    asyncio.run(run())


def test_refusals_by_the_pipelines_are_500_for_now_and_400_for_good() -> None:
    (port,) = free_ports(1)
    telemetry = Telemetry()

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}"}, telemetry) as pipeline:
            url = f"http://127.0.0.1:{port}/api/v2/spans"
            pipeline.error = RetryableError("queue full", 2.0)
            assert (await post(url, _zipkin.v2_json(1)))[0] == 500
            pipeline.error = PermanentError("no")
            assert (await post(url, _zipkin.v2_json(1)))[0] == 400
        refused = count(telemetry, "otelcol_receiver_refused_spans_total", transport="http_v2_json")
        assert refused == 2 * len(_zipkin.v2_spans(1))

    asyncio.run(run())


HOSTILE: list[tuple[str, bytes, dict[str, str]]] = [
    ("/api/v2/spans", b"[" * 100_000, {}),
    ("/api/v2/spans", b'[{"traceId":"' + b"f" * 100_000 + b'","id":"1"}]', {}),
    ("/api/v2/spans", b'[{"traceId":"01","id":"1","timestamp":1e400}]', {}),
    ("/api/v2/spans", b'[{"traceId":"01","id":"1","tags":{"a":1}}]', {}),
    ("/api/v2/spans", b'[{"traceId":"01","id":"1","localEndpoint":{"ipv4":"999.1.1.1"}}]', {}),
    ("/api/v2/spans", b'[{"traceId":"01","id":"1","annotations":[{"timestamp":1,"value":"e|[1]|0"}]}]', {}),
    ("/api/v2/spans", b'[{"traceId":"01","id":"1","annotations":[{"timestamp":1,"value":"e|{}|x"}]}]', {}),
    ("/api/v2/spans", _zipkin.v2_protobuf(1)[:-3], {"Content-Type": "application/x-protobuf"}),
    ("/api/v2/spans", b"\x0a\x80\x80\x80\x80\x10", {"Content-Type": "application/x-protobuf"}),
    ("/api/v2/spans", b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}),
    ("/api/v1/spans", b'[{"traceId":"0000000000000000","id":"0000000000000001"}]', {}),
    ("/api/v1/spans", b'[{"traceId":"0000000000000001","id":"0000000000000001","timestamp":"x"}]', {}),
    ("/api/v1/spans", b"\x80\x01\x00\x01", {"Content-Type": "application/x-thrift"}),
    ("/", b"", {}),
]


@pytest.mark.parametrize("path,body,headers", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_400_with_a_message_and_counted(path: str, body: bytes, headers: dict[str, str]) -> None:
    (port,) = free_ports(1)
    telemetry = Telemetry()

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}"}, telemetry) as pipeline:
            status, text = await post(f"http://127.0.0.1:{port}{path}", body, headers)
            assert status == 400 and text.strip(), text
            assert not pipeline.batches
            assert (await post(f"http://127.0.0.1:{port}/api/v2/spans", _zipkin.v2_json(1)))[0] == 202
        assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="invalid") == 1

    asyncio.run(run())



def test_undecodable_text_and_a_big_body_are_answered_not_crashed() -> None:
    """A lone surrogate in JSON (valid JSON, not text a protobuf string can hold) is a 400 counted as
    invalid, not a 500; a body past the inline size is decoded in a thread and still arrives whole."""
    lone = b'[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331","name":"\\ud800"}]'
    big = ("[" + ",".join(f'{{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"{i + 1:016x}","name":"s{i}"}}'
                          for i in range(5000)) + "]").encode()
    assert len(big) > zipkin._DECODE_INLINE
    (port,) = free_ports(1)
    telemetry = Telemetry()

    async def run() -> None:
        async with receiver({"endpoint": f"127.0.0.1:{port}"}, telemetry) as pipeline:
            status, text = await post(f"http://127.0.0.1:{port}/api/v2/spans", lone)
            assert status == 400 and "cannot decode" in text
            status, _ = await post(f"http://127.0.0.1:{port}/api/v2/spans", big)
            assert status == 202
            assert len(pipeline.spans()) == 5000

    asyncio.run(run())
    assert count(telemetry, "otelcol_gateway_receiver_failed_requests_total", reason="invalid") == 1
