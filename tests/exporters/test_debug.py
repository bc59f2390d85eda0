"""The `debug` exporter's three verbosities, in the Collector's text layouts (exporter/debugexporter:
the zap summary line, `normal`'s one line per resource/scope/span, `detailed`'s otlptext)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from gateway.component import Settings
from gateway.exporters import debug
from gateway.telemetry import Telemetry
from pipelines.batch import Batch


def _kv(key: str, **value: object) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))  # type: ignore[arg-type]


def _request() -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.21.0")
    rs.resource.attributes.extend([_kv("service.name", string_value="checkout")])
    ss = rs.scope_spans.add()
    ss.scope.name = "io.opentelemetry.http"
    ss.scope.version = "1.2.3"
    span = ss.spans.add(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(0x11, 0x19)), parent_span_id=bytes(range(0x21, 0x29)),
        name="GET /cart", kind=trace_pb2.Span.SPAN_KIND_SERVER, trace_state="ot=th:0",
        start_time_unix_nano=1581452772_000000321, end_time_unix_nano=1581452773_000000000,
    )
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    span.status.message = "boom"
    span.attributes.extend([
        _kv("http.status_code", int_value=500), _kv("ratio", double_value=0.5), _kv("ok", bool_value=False),
        _kv("tags", array_value=common_pb2.ArrayValue(values=[common_pb2.AnyValue(string_value="a"),
                                                              common_pb2.AnyValue(int_value=1)])),
    ])
    ev = span.events.add(name="exception", time_unix_nano=1581452772_500000000, dropped_attributes_count=1)
    ev.attributes.extend([_kv("exception.type", string_value="KeyError")])
    link = span.links.add(trace_id=bytes(16), span_id=bytes(8), dropped_attributes_count=2)
    link.attributes.extend([_kv("why", string_value="retry")])
    ss.spans.add(trace_id=bytes([0xAA] * 16), span_id=bytes([0xBB] * 8), name="db",
                 start_time_unix_nano=1581452772_000000000, end_time_unix_nano=1581452772_100000000)
    return req


def _render(verbosity: str) -> str:
    stream = io.StringIO()
    cfg = debug.Config(verbosity=verbosity, use_internal_logger=False)  # type: ignore[arg-type]
    pusher = debug.DebugPusher(Settings("debug/test", cfg, Telemetry(), None), stream)
    asyncio.run(pusher.push(Batch("traces", _request().SerializeToString(), 2)))
    return stream.getvalue()


SUMMARY = ('info\tTracesExporter\t{"kind": "exporter", "data_type": "traces", "name": "debug/test", '
           '"resource spans": 1, "spans": 2}\n')


def test_basic_is_one_summary_line() -> None:
    out = _render("basic")
    assert out == SUMMARY
    assert json.loads(out.split("\t")[2]) == {"kind": "exporter", "data_type": "traces", "name": "debug/test",
                                              "resource spans": 1, "spans": 2}


def test_normal_is_a_line_per_resource_scope_and_span() -> None:
    assert _render("normal") == SUMMARY + (
        "ResourceTraces #0 [https://opentelemetry.io/schemas/1.21.0] service.name=checkout\n"
        "ScopeTraces #0 io.opentelemetry.http@1.2.3\n"
        "GET /cart 0102030405060708090a0b0c0d0e0f10 1112131415161718"
        ' http.status_code=500 ratio=0.5 ok=false tags=["a",1]\n'
        "db aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbb\n"
    )


def test_detailed_follows_otlptext() -> None:
    # `·` marks a trailing space the Collector prints after an empty value.
    assert _render("detailed") == SUMMARY + """\
ResourceSpans #0
Resource SchemaURL: https://opentelemetry.io/schemas/1.21.0
Resource attributes:
     -> service.name: Str(checkout)
ScopeSpans #0
ScopeSpans SchemaURL:·
InstrumentationScope io.opentelemetry.http 1.2.3
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 2122232425262728
    ID             : 1112131415161718
    Name           : GET /cart
    Kind           : Server
    TraceState     : ot=th:0
    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC
    End time       : 2020-02-11 20:26:13 +0000 UTC
    Status code    : Error
    Status message : boom
Attributes:
     -> http.status_code: Int(500)
     -> ratio: Double(0.5)
     -> ok: Bool(false)
     -> tags: Slice(["a",1])
Events:
SpanEvent #0
     -> Name: exception
     -> Timestamp: 2020-02-11 20:26:12.5 +0000 UTC
     -> DroppedAttributesCount: 1
     -> Attributes::
          -> exception.type: Str(KeyError)
Links:
SpanLink #0
     -> Trace ID: 00000000000000000000000000000000
     -> ID: 0000000000000000
     -> TraceState:·
     -> DroppedAttributesCount: 2
     -> Attributes::
          -> why: Str(retry)
Span #1
    Trace ID       : aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    Parent ID      :·
    ID             : bbbbbbbbbbbbbbbb
    Name           : db
    Kind           : Unspecified
    Start time     : 2020-02-11 20:26:12 +0000 UTC
    End time       : 2020-02-11 20:26:12.1 +0000 UTC
    Status code    : Unset
    Status message :·
""".replace("·", " ")


@pytest.mark.parametrize(("value", "text"), [
    (common_pb2.AnyValue(double_value=3.0), "Double(3)"),
    (common_pb2.AnyValue(double_value=1e-7), "Double(0.0000001)"),
    (common_pb2.AnyValue(double_value=1e21), "Double(1000000000000000000000)"),
    (common_pb2.AnyValue(bytes_value=b"\x00\xff"), "Bytes(AP8=)"),
    (common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(
        values=[_kv("b", int_value=1), _kv("a", string_value="x")])), 'Map({"a":"x","b":1})'),
    (common_pb2.AnyValue(), "Empty()"),
])
def test_values(value: common_pb2.AnyValue, text: str) -> None:
    assert debug.any_value(value) == text


def test_loglevel_debug_of_the_old_logging_exporter_means_detailed() -> None:
    assert debug.Config(loglevel="debug").level() == "detailed"
    assert debug.Config().level() == "basic"


def test_use_internal_logger_writes_through_the_gateway_log_not_stdout(caplog: pytest.LogCaptureFixture,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pusher = debug.DebugPusher(Settings("debug/test", debug.Config(), Telemetry(), None))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="gateway.exporter.debug"):
        asyncio.run(pusher.push(Batch("traces", _request().SerializeToString(), 2)))
    assert [r.getMessage() for r in caplog.records] == [SUMMARY.removeprefix("info\t").rstrip("\n")]
    assert capsys.readouterr().out == ""
    # use_internal_logger: false writes to stdout, and nothing to the log.
    caplog.clear()
    raw = debug.DebugPusher(Settings("debug/test", debug.Config(use_internal_logger=False), Telemetry(),
                                     None))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="gateway.exporter.debug"):
        asyncio.run(raw.push(Batch("traces", _request().SerializeToString(), 2)))
    assert capsys.readouterr().out == SUMMARY
    assert not caplog.records


def test_sampling_initial_and_thereafter_follow_zaps_sampler() -> None:
    now = [100.0]
    stream = io.StringIO()
    cfg = debug.Config(use_internal_logger=False, sampling_initial=2, sampling_thereafter=3)
    pusher = debug.DebugPusher(Settings("debug/test", cfg, Telemetry(), None), stream,  # type: ignore[arg-type]
                               clock=lambda: now[0])

    async def push(n: int) -> None:
        for _ in range(n):
            await pusher.push(Batch("traces", _request().SerializeToString(), 2))

    asyncio.run(push(10))  # within one second: 1st, 2nd, then the 5th and 8th
    assert stream.getvalue().count("TracesExporter") == 4
    now[0] += 1.0  # a new tick starts counting again
    asyncio.run(push(2))
    assert stream.getvalue().count("TracesExporter") == 6
    # The defaults (2, 1) sample nothing away.
    every = io.StringIO()
    default = debug.DebugPusher(Settings("debug/test", debug.Config(use_internal_logger=False), Telemetry(),
                                         None), every, clock=lambda: 5.0)  # type: ignore[arg-type]
    for _ in range(7):
        asyncio.run(default.push(Batch("traces", _request().SerializeToString(), 2)))
    assert every.getvalue().count("TracesExporter") == 7


def test_verbosity_and_the_old_loglevel_choose_what_the_pusher_writes() -> None:
    def written(**keys: str) -> str:
        stream = io.StringIO()
        cfg = debug.Config(use_internal_logger=False, **keys)  # type: ignore[arg-type]
        pusher = debug.DebugPusher(Settings("debug/test", cfg, Telemetry(), None), stream)  # type: ignore[arg-type]
        asyncio.run(pusher.push(Batch("traces", _request().SerializeToString(), 2)))
        return stream.getvalue()

    assert written() == SUMMARY  # the default verbosity, basic
    assert written(verbosity="normal").startswith(SUMMARY + "ResourceTraces #0")
    detailed = written(verbosity="detailed")
    assert detailed.startswith(SUMMARY + "ResourceSpans #0") and "Span #1" in detailed
    # The logging exporter's `loglevel: debug` is detailed; its other levels leave the verbosity be.
    assert written(loglevel="debug") == detailed
    assert written(loglevel="info") == SUMMARY
