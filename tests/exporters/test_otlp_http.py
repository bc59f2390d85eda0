"""The `otlphttp` exporter against real HTTP(S) backends: endpoint + /v1/traces, traces_endpoint,
metrics_endpoint, logs_endpoint, gzip by default, JSON encoding, headers, TLS with ca_file, status
classification, timeout."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import time
import zlib
from collections.abc import Iterator

import pytest
import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gateway.exporters import otlp_http
from pipelines.batch import Batch
from pipelines.errors import RetryableError
from tests.e2e.support import Certs, RecordingHttpSink, spans_request
from tests.exporters.exporting import export, make
from tests.harness import Fault, Sink
from tests.processors.build import log_request, metric_request


@pytest.fixture
def http_sink() -> Iterator[RecordingHttpSink]:
    sink = RecordingHttpSink()
    yield sink
    sink.stop()


@pytest.fixture
def https_sink(certs: Certs) -> Iterator[RecordingHttpSink]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    sink = RecordingHttpSink(ctx)
    yield sink
    sink.stop()


def _spans(body: bytes) -> list[str]:
    msg = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    return [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_endpoint_gets_v1_traces_gzip_by_default(http_sink: RecordingHttpSink) -> None:
    error, sent, _ = export(otlp_http, {"endpoint": f"http://127.0.0.1:{http_sink.port}/base/",
                                        "headers": {"X-Honeycomb-Team": "k"}}, 2, cid="otlphttp")
    assert error is None
    assert sent == 2
    hit = http_sink.hits[0]
    assert hit.path == "/base/v1/traces"
    assert hit.headers["content-type"] == "application/x-protobuf"
    assert hit.headers["content-encoding"] == "gzip"
    assert hit.headers["x-honeycomb-team"] == "k"
    assert _spans(gzip.decompress(hit.body)) == ["span-0", "span-1"]


def test_a_large_batch_is_compressed_off_the_loop_and_arrives_whole(http_sink: RecordingHttpSink) -> None:
    error, sent, _ = export(otlp_http, {"endpoint": f"http://127.0.0.1:{http_sink.port}"}, 300, pad=2048,
                            cid="otlphttp")
    assert error is None and sent == 300
    body = gzip.decompress(http_sink.hits[0].body)
    assert len(body) > 512 * 1024
    assert _spans(body) == [f"span-{i}" for i in range(300)]


def test_traces_endpoint_is_used_as_is(http_sink: RecordingHttpSink) -> None:
    cfg = {"endpoint": "http://127.0.0.1:1", "traces_endpoint": f"http://127.0.0.1:{http_sink.port}/custom/path",
           "compression": "none"}
    assert export(otlp_http, cfg, cid="otlphttp")[0] is None
    hit = http_sink.hits[0]
    assert hit.path == "/custom/path"
    assert "content-encoding" not in hit.headers
    assert _spans(hit.body) == ["span-0", "span-1", "span-2"]


def test_zstd_compression(http_sink: RecordingHttpSink) -> None:
    cfg = {"endpoint": f"http://127.0.0.1:{http_sink.port}", "compression": "zstd"}
    assert export(otlp_http, cfg, cid="otlphttp")[0] is None
    hit = http_sink.hits[0]
    assert hit.headers["content-encoding"] == "zstd"
    assert _spans(zstandard.ZstdDecompressor().decompress(hit.body)) == ["span-0", "span-1", "span-2"]


def test_tls_with_ca_file(https_sink: RecordingHttpSink, certs: Certs) -> None:
    cfg = {"endpoint": f"https://127.0.0.1:{https_sink.port}", "tls": {"ca_file": str(certs.ca)}}
    error, sent, _ = export(otlp_http, cfg, cid="otlphttp")
    assert error is None
    assert sent == 3
    assert https_sink.hits[0].path == "/v1/traces"


def test_tls_with_an_unknown_ca_fails(https_sink: RecordingHttpSink) -> None:
    error, sent, failed = export(otlp_http, {"endpoint": f"https://127.0.0.1:{https_sink.port}"}, cid="otlphttp")
    assert isinstance(error, RetryableError)
    assert (sent, failed) == (0, 3)
    assert https_sink.hits == []


def test_insecure_skip_verify(https_sink: RecordingHttpSink) -> None:
    cfg = {"endpoint": f"https://127.0.0.1:{https_sink.port}", "tls": {"insecure_skip_verify": True}}
    assert export(otlp_http, cfg, cid="otlphttp")[0] is None
    assert len(https_sink.hits) == 1


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (401, False), (429, True), (503, True)])
def test_status_classification(status: int, retryable: bool) -> None:
    sink = Sink().start()
    try:
        sink.fail_next(Fault(1, http_status=status, retry_after="7"))
        error, sent, failed = export(otlp_http, {"endpoint": f"http://127.0.0.1:{sink.http_port}"}, cid="otlphttp")
        assert isinstance(error, RetryableError) is retryable
        assert error is not None and str(error).startswith(f"HTTP {status}")
        if retryable:
            assert isinstance(error, RetryableError) and error.delay == 7.0
        assert (sent, failed) == (0, 3)
    finally:
        sink.stop()


def test_timeout_bounds_a_slow_backend() -> None:
    sink = Sink().start()
    try:
        sink.fail_next(Fault(1, delay=5))
        start = time.monotonic()
        error, _, _ = export(otlp_http, {"endpoint": f"http://127.0.0.1:{sink.http_port}", "timeout": "300ms"},
                             cid="otlphttp")
        assert time.monotonic() - start < 4
        assert isinstance(error, RetryableError)
    finally:
        sink.stop()


@pytest.mark.parametrize("compression", ["gzip", "deflate", "zstd", "none"])
def test_body_of_queued_requests_is_compressed_from_the_pieces(compression: str) -> None:
    inflate = {"gzip": gzip.decompress, "deflate": zlib.decompress, "zstd": zstandard.ZstdDecompressor().decompress,
               "none": bytes}[compression]
    exporter, _ = make(otlp_http, {"endpoint": "http://127.0.0.1:1", "compression": compression}, "otlphttp")
    parts = [spans_request(2, name=f"r{i}").SerializeToString() for i in range(3)]
    body = exporter.pusher.body(Batch.concat("traces", parts, 6))
    assert inflate(body) == b"".join(parts)
    assert [n[:2] for n in _spans(inflate(body))] == ["r0", "r0", "r1", "r1", "r2", "r2"]


def _signals() -> list[Batch]:
    return [Batch("traces", spans_request(1).SerializeToString(), 1),
            Batch("metrics", metric_request([{}]).SerializeToString(), 1),
            Batch("logs", log_request([{}]).SerializeToString(), 1)]


def _push_each_signal(config: dict[str, object]) -> None:
    exporter, _ = make(otlp_http, config, "otlphttp")

    async def run() -> None:
        await exporter.start()
        try:
            for batch in _signals():
                await exporter.consume(batch)
        finally:
            await exporter.shutdown()

    asyncio.run(run())


def test_metrics_endpoint_and_logs_endpoint_are_used_as_is(http_sink: RecordingHttpSink) -> None:
    base = f"http://127.0.0.1:{http_sink.port}"
    _push_each_signal({"endpoint": base, "compression": "none"})
    assert [h.path for h in http_sink.hits] == ["/v1/traces", "/v1/metrics", "/v1/logs"]
    _push_each_signal({"endpoint": base, "compression": "none", "metrics_endpoint": f"{base}/m/in",
                       "logs_endpoint": f"{base}/l/in"})
    assert [h.path for h in http_sink.hits[3:]] == ["/v1/traces", "/m/in", "/l/in"]


def test_encoding_json_sends_otlp_json(http_sink: RecordingHttpSink) -> None:
    cfg = {"endpoint": f"http://127.0.0.1:{http_sink.port}", "compression": "none"}
    assert export(otlp_http, cfg, 2, cid="otlphttp")[0] is None
    assert http_sink.hits[0].headers["content-type"] == "application/x-protobuf"  # the default, proto
    assert export(otlp_http, {**cfg, "encoding": "json"}, 2, cid="otlphttp")[0] is None
    hit = http_sink.hits[1]
    assert hit.headers["content-type"] == "application/json"
    spans = json.loads(hit.body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["name"] for s in spans] == ["span-0", "span-1"]
