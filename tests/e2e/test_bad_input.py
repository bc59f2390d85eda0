"""Every bad input the OTLP receiver can get, over HTTP and gRPC: the exact status, a message naming
the problem, nothing of it reaching the backend, the refusal counted at /metrics, and the gateway
still serving the next good request. Also the good variants: encodings, OTLP/JSON spellings."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import zstandard
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.e2e.support import grpc_export, http_request, spans_request
from tests.harness import GatewayProcess, Ports, Sink, wait_until

BODY_LIMIT = 1024 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
WHERE = "resource_spans[0].scope_spans[0] span 'bad-0'"


class Env:
    def __init__(self, gw: GatewayProcess, sink: Sink, ports: Ports) -> None:
        self.gw = gw
        self.sink = sink
        self.ports = ports
        self.sent = 0

    def failed(self, transport: str, reason: str) -> float:
        return self.gw.metric("otelcol_gateway_receiver_failed_requests_total", transport=transport, reason=reason)

    def still_serves(self, transport: str = "http") -> None:
        """A good request is accepted and arrives; the refused one before it did not arrive."""
        before = self.sink.span_count()
        tag = f"good-{self.sent}"
        body = spans_request(2, name=tag).SerializeToString()
        if transport == "http":
            assert http_request(self.ports.http, body, headers=PROTOBUF).status == 200
        else:
            assert grpc_export(self.ports.grpc, body)[0] == grpc.StatusCode.OK
        self.sent += 1
        spans = self.sink.wait_spans(before + 2)
        assert [s.name for _, _, s in spans[before:]] == [f"{tag}-0", f"{tag}-1"], "only the good request arrived"


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    sink = Sink().start()
    ports = Ports.free()
    # No batch processor, no sending queue: what the receiver accepts reaches the sink before the response.
    config = f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}", max_recv_msg_size_mib: 1}}
      http: {{endpoint: "127.0.0.1:{ports.http}", max_request_body_size: {BODY_LIMIT}}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{sink.grpc_port}", tls: {{insecure: true}}, sending_queue: {{enabled: false}}}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""
    gw = GatewayProcess(config, ports=ports).start()
    try:
        yield Env(gw, sink, ports)
        assert gw.alive(), gw.stderr()
        assert gw.stop() == 0
        assert "Traceback" not in gw.stderr()
    finally:
        gw.kill()
        sink.stop()


def _status(answer: Any) -> Any:
    if answer.content_type == "application/json":
        return json.loads(answer.body)
    return status_pb2.Status.FromString(answer.body)


def _json_status(answer: Any) -> dict[str, Any]:
    assert answer.content_type == "application/json"
    data: dict[str, Any] = json.loads(answer.body)
    return data


# ---------------------------------------------------------------- HTTP refusals


def test_http_bad_protobuf_is_400(env: Env) -> None:
    before = env.failed("http", "invalid")
    answer = http_request(env.ports.http, b"\x0a\xff\xff\xff\x0f", headers=PROTOBUF)
    assert answer.status == 400
    assert answer.content_type == "application/x-protobuf"
    status = status_pb2.Status.FromString(answer.body)
    assert status.code == 3
    assert status.message.startswith("cannot decode OTLP traces protobuf")
    assert env.failed("http", "invalid") == before + 1
    env.still_serves()


def test_http_bad_json_is_400(env: Env) -> None:
    answer = http_request(env.ports.http, b'{"resourceSpans": [', headers=JSON)
    assert answer.status == 400
    status = _json_status(answer)
    assert status["code"] == 3
    assert status["message"].startswith("cannot decode OTLP/JSON")
    answer = http_request(env.ports.http, b'["not", "an", "object"]', headers=JSON)
    assert (answer.status, _json_status(answer)["message"]) == (
        400, "cannot decode OTLP/JSON: the body must be a JSON object")
    env.still_serves()


def test_http_deeply_nested_json_is_400(env: Env) -> None:
    before = env.failed("http", "invalid")
    value = b'{"arrayValue":{"values":[' * 2000 + b"]}}" * 2000
    body = b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":' + value + b"}]}}]}"
    for nested in (body, b"[" * 100_000):
        answer = http_request(env.ports.http, nested, headers=JSON)
        assert (answer.status, _json_status(answer)) == (
            400, {"code": 3, "message": "cannot decode OTLP/JSON: nested too deeply"})
    assert env.failed("http", "invalid") == before + 2
    env.still_serves()


@pytest.mark.parametrize(
    ("trace_id", "span_id", "message"),
    [
        (b"\x01" * 15, b"\x02" * 8, f"invalid trace_id at {WHERE}: 15 bytes, want 16"),
        (b"", b"\x02" * 8, f"invalid trace_id at {WHERE}: 0 bytes, want 16"),
        (b"\x01" * 16, b"\x02" * 7, f"invalid span_id at {WHERE}: 7 bytes, want 8"),
    ],
)
def test_http_bad_ids_are_400(env: Env, trace_id: bytes, span_id: bytes, message: str) -> None:
    body = spans_request(1, name="bad", trace_id=trace_id, span_id=span_id).SerializeToString()
    answer = http_request(env.ports.http, body, headers=PROTOBUF)
    assert answer.status == 400
    assert status_pb2.Status.FromString(answer.body).message == message
    env.still_serves()


def test_http_bad_ids_in_json_are_400(env: Env) -> None:
    def doc(trace_id: str, span_id: str) -> bytes:
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": trace_id, "spanId": span_id, "name": "j"}]}]}]}).encode()

    answer = http_request(env.ports.http, doc("0102", "0102030405060708"), headers=JSON)
    assert (answer.status, _json_status(answer)["message"]) == (
        400, "invalid trace_id at resource_spans[0].scope_spans[0] span 'j': 2 bytes, want 16")
    answer = http_request(env.ports.http, doc("01" * 16, "0102030405060708aa"), headers=JSON)
    assert (answer.status, _json_status(answer)["message"]) == (
        400, "invalid span_id at resource_spans[0].scope_spans[0] span 'j': 9 bytes, want 8")
    answer = http_request(env.ports.http, doc("zz" * 16, "0102030405060708"), headers=JSON)
    assert (answer.status, _json_status(answer)["message"]) == (400, f"invalid traceId {'zz' * 16!r}: want hex digits")
    env.still_serves()


def test_http_unknown_content_type_is_415(env: Env) -> None:
    before = env.failed("http", "unsupported")
    answer = http_request(env.ports.http, b"hello", headers={"Content-Type": "text/plain"})
    assert answer.status == 415
    assert _json_status(answer)["message"] == (
        "unsupported Content-Type 'text/plain' (want application/x-protobuf or application/json)")
    assert env.failed("http", "unsupported") == before + 1
    env.still_serves()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_http_other_methods_are_405(env: Env, method: str) -> None:
    before = env.failed("http", "method_not_allowed")
    answer = http_request(env.ports.http, b"", method=method)
    assert answer.status == 405
    assert answer.headers.get("allow") == "POST"
    assert env.failed("http", "method_not_allowed") == before + 1
    env.still_serves()


def test_http_unknown_path_is_404(env: Env) -> None:
    before = env.failed("http", "not_found")
    body = spans_request(1).SerializeToString()
    assert http_request(env.ports.http, body, path="/v1/trace", headers=PROTOBUF).status == 404
    assert http_request(env.ports.http, body, path="/", headers=PROTOBUF).status == 404
    assert env.failed("http", "not_found") == before + 2
    env.still_serves()


def test_http_body_over_the_limit_is_413(env: Env) -> None:
    before = env.failed("http", "too_large")
    body = spans_request(1, attr_bytes=BODY_LIMIT).SerializeToString()
    answer = http_request(env.ports.http, body, headers=PROTOBUF)
    assert answer.status == 413
    assert status_pb2.Status.FromString(answer.body).message == (
        f"request body larger than max_request_body_size ({BODY_LIMIT} bytes)")
    assert env.failed("http", "too_large") == before + 1
    env.still_serves()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_http_compressed_bomb_is_413_without_inflating(env: Env, encoding: str) -> None:
    # 16 MiB of one byte: a request body of a few KiB, under the limit until inflated. That inflating
    # stops at the limit is shown with tracemalloc in tests/receivers/test_decompress.py.
    raw = spans_request(1, attr_bytes=16 * 1024 * 1024).SerializeToString()
    body = {"gzip": gzip.compress, "deflate": zlib.compress,
            "zstd": zstandard.ZstdCompressor().compress}[encoding](raw)
    assert len(body) < BODY_LIMIT
    before = env.failed("http", "too_large")
    answer = http_request(env.ports.http, body, headers={**PROTOBUF, "Content-Encoding": encoding})
    assert answer.status == 413
    assert env.failed("http", "too_large") == before + 1
    env.still_serves()


def test_http_corrupt_or_unknown_encoding_is_400(env: Env) -> None:
    body = spans_request(1).SerializeToString()
    answer = http_request(env.ports.http, b"not gzip at all", headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert answer.status == 400
    assert status_pb2.Status.FromString(answer.body).message.startswith("invalid gzip body")
    answer = http_request(env.ports.http, body, headers={**PROTOBUF, "Content-Encoding": "br"})
    assert answer.status == 400
    assert status_pb2.Status.FromString(answer.body).message == (
        "unsupported Content-Encoding 'br' (want gzip, deflate or zstd)")
    env.still_serves()


# ---------------------------------------------------------------- gRPC refusals


def test_grpc_bad_protobuf_is_invalid_argument(env: Env) -> None:
    before = env.failed("grpc", "invalid")
    code, details = grpc_export(env.ports.grpc, b"\x0a\xff\xff\xff\x0f")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("cannot decode OTLP traces protobuf")
    assert env.failed("grpc", "invalid") == before + 1
    env.still_serves("grpc")


@pytest.mark.parametrize(("trace_id", "span_id", "what"),
                         [(b"\x01" * 17, b"\x02" * 8, "trace_id"), (b"\x01" * 16, b"", "span_id")])
def test_grpc_bad_ids_are_invalid_argument(env: Env, trace_id: bytes, span_id: bytes, what: str) -> None:
    body = spans_request(1, name="bad", trace_id=trace_id, span_id=span_id).SerializeToString()
    code, details = grpc_export(env.ports.grpc, body)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"invalid {what} at resource_spans[0].scope_spans[0] span 'bad-0'")
    env.still_serves("grpc")


@pytest.mark.parametrize("size_mib", [1.5, 3])
def test_grpc_over_max_recv_msg_size_is_resource_exhausted(env: Env, size_mib: float) -> None:
    before = env.failed("grpc", "too_large")
    body = spans_request(1, attr_bytes=int(size_mib * 1024 * 1024)).SerializeToString()
    code, details = grpc_export(env.ports.grpc, body)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Refused (and counted) from the message's length prefix, before the rest of it is read.
    assert details == f"received message larger than max_recv_msg_size_mib ({len(body)} vs. {1024 * 1024})"
    assert env.failed("grpc", "too_large") == before + 1
    env.still_serves("grpc")


def test_grpc_unknown_method_is_unimplemented(env: Env) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{env.ports.grpc}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
                                   request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    env.still_serves("grpc")


def test_refused_requests_never_count_as_accepted_or_refused_spans(env: Env) -> None:
    # Run after the refusals above (module order): only the good requests were accepted.
    accepted = env.gw.metric("otelcol_receiver_accepted_spans_total")
    assert accepted == env.sink.span_count()
    assert env.gw.metric("otelcol_receiver_refused_spans_total") == 0


# ---------------------------------------------------------------- good variants


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "zstd", "identity"])
def test_http_compressed_bodies_are_accepted(env: Env, encoding: str) -> None:
    raw = spans_request(3, name=f"enc-{encoding}").SerializeToString()
    if encoding == "deflate-raw":
        # Some clients send deflate without the zlib wrapper.
        c = zlib.compressobj(wbits=-15)
        body = c.compress(raw) + c.flush()
    else:
        body = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstandard.ZstdCompressor().compress,
                "identity": lambda d: d}[encoding](raw)
    before = env.sink.span_count()
    answer = http_request(env.ports.http, body,
                          headers={**PROTOBUF, "Content-Encoding": encoding.replace("-raw", "")})
    assert answer.status == 200, answer.body
    names = [s.name for _, _, s in env.sink.wait_spans(before + 3)[before:]]
    assert names == [f"enc-{encoding}-{i}" for i in range(3)]


def test_http_response_is_in_the_request_encoding(env: Env) -> None:
    body = spans_request(1, name="resp")
    answer = http_request(env.ports.http, body.SerializeToString(), headers=PROTOBUF)
    assert (answer.status, answer.content_type) == (200, "application/x-protobuf")
    assert trace_service_pb2.ExportTraceServiceResponse.FromString(answer.body) == (
        trace_service_pb2.ExportTraceServiceResponse())
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "01" * 16, "spanId": "02" * 8, "name": "resp-json"}]}]}]}
    answer = http_request(env.ports.http, json.dumps(doc).encode(),
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert json.loads(answer.body) == {}


def test_otlp_json_spellings(env: Env) -> None:
    """lowerCamelCase and snake_case keys, enums as ints or names, 64-bit ints as strings or numbers."""
    camel = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "camel"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "eee19b7ec3c1b173", "name": "camel", "kind": 2,
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
            "attributes": [{"key": "n", "value": {"intValue": "9007199254740993"}},
                           {"key": "m", "value": {"intValue": 42}}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        }]}],
    }]}
    snake = {"resource_spans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "snake"}}]},
        "scope_spans": [{"spans": [{
            "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b175",
            "name": "snake", "kind": "SPAN_KIND_CLIENT",
            "start_time_unix_nano": 1544712660000000000, "end_time_unix_nano": "1544712661000000000",
            "status": {"code": 1},
        }]}],
    }]}
    before = env.sink.span_count()
    for doc in (camel, snake):
        answer = http_request(env.ports.http, json.dumps(doc).encode(), headers=JSON)
        assert answer.status == 200, answer.body
    # Wait on the names, not on a count: under load a retried export may deliver an earlier span again.
    wait_until(lambda: {"camel", "snake"} <= {s.name for _, _, s in env.sink.spans()[before:]}, 15, "both spans")
    got = {s.name: (r, s) for r, _, s in env.sink.spans()[before:]}
    res, c = got["camel"]
    assert res.attributes[0].value.string_value == "camel"
    assert c.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert (c.span_id.hex(), c.parent_span_id.hex()) == ("eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (c.kind, c.start_time_unix_nano, c.end_time_unix_nano) == (2, 1544712660000000000, 1544712661000000000)
    assert [a.value.int_value for a in c.attributes] == [9007199254740993, 42]
    assert (c.status.code, c.status.message) == (2, "boom")
    res, s = got["snake"]
    assert res.attributes[0].value.string_value == "snake"
    assert (s.span_id.hex(), s.kind, s.status.code) == ("eee19b7ec3c1b175", 3, 1)
    assert (s.start_time_unix_nano, s.end_time_unix_nano) == (1544712660000000000, 1544712661000000000)


def test_empty_request_is_accepted_and_sends_nothing(env: Env) -> None:
    before = env.sink.span_count()
    requests = len(env.sink.requests())
    assert http_request(env.ports.http, b"", headers=PROTOBUF).status == 200
    assert http_request(env.ports.http, b"{}", headers=JSON).status == 200
    assert grpc_export(env.ports.grpc, b"")[0] == grpc.StatusCode.OK
    env.still_serves()
    wait_until(lambda: env.sink.span_count() == before + 2)
    assert len(env.sink.requests()) == requests + 1
