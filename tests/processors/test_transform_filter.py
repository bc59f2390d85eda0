"""The `transform` and `filter` processors on real OTLP requests (pure: no I/O): every config key
changes what comes out, errors follow `error_mode`, and validation names the entry at fault."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.config.decode import Errors, decode
from pipelines.batch import Batch
from pipelines.errors import RetryableError
from pipelines.ottl_processors import filter as flt
from pipelines.ottl_processors import transform as tf


def traces() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for service in ("checkout", "health-svc"):
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add(key="service.name")
        kv.value.string_value = service
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        for name in ("GET /api", "GET /health", "POST /pay"):
            span = ss.spans.add(name=name, kind=2, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)))
            a = span.attributes.add(key="http.status")
            a.value.int_value = 500 if name == "POST /pay" else 200
            b = span.attributes.add(key="s")
            b.value.string_value = "x"
            span.events.add(name="retry" if name == "POST /pay" else "log")
    return req


def batch(req: Any, signal: str = "traces") -> Batch:
    return Batch(signal, req.SerializeToString(), 6)  # type: ignore[arg-type]


def config(cls: type, raw: dict[str, Any]) -> Any:
    errors = Errors()
    cfg = decode(cls, raw, "processors::x", errors)
    assert not errors, errors.lines
    return cfg


def spans(out: Batch | None) -> list[tuple[str, str, dict[str, Any]]]:
    if out is None:
        return []
    got = []
    for rs in out.message().resource_spans:
        service = rs.resource.attributes[0].value.string_value
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value")
                         for kv in span.attributes}
                got.append((service, span.name, attrs))
    return got


# ---------------------------------------------------------------- transform

def test_trace_statements_flat_form_infers_the_span_context_and_runs_in_order() -> None:
    cfg = config(tf.Config, {"trace_statements": [
        'set(span.attributes["route"], span.name)',
        'set(span.name, "redacted") where span.attributes["http.status"] >= 500',
        'delete_key(span.attributes, "s")',
    ]})
    out = tf.TransformProcessor(cfg, "traces").process(batch(traces()))
    got = spans(out)
    assert ("checkout", "redacted", {"http.status": 500, "route": "POST /pay"}) in got
    assert ("checkout", "GET /api", {"http.status": 200, "route": "GET /api"}) in got
    assert len(got) == 6


def test_advanced_form_context_conditions_and_resource_statements() -> None:
    cfg = config(tf.Config, {"trace_statements": [
        {"context": "resource", "statements": ['set(attributes["tier"], "gold")'],
         "conditions": ['attributes["service.name"] == "checkout"']},
        {"context": "span", "statements": ['set(attributes["svc"], resource.attributes["tier"])']},
    ]})
    out = tf.TransformProcessor(cfg, "traces").process(batch(traces()))
    tiers = {(svc, attrs.get("svc")) for svc, _, attrs in spans(out)}
    # A missing resource attribute is nil, and setting nil stores an empty value (as the Collector does).
    assert tiers == {("checkout", "gold"), ("health-svc", "")}


def test_error_mode_ignore_skips_a_failing_statement_and_propagate_refuses() -> None:
    statements = ['set(span.attributes["n"], span.attributes["s"] + 1)', 'set(span.attributes["after"], true)']
    reports: list[str] = []
    cfg = config(tf.Config, {"error_mode": "ignore", "trace_statements": statements})
    out = tf.TransformProcessor(cfg, "traces", reports.append).process(batch(traces()))
    assert all(attrs.get("after") is True and "n" not in attrs for _, _, attrs in spans(out))
    assert len(reports) == 6 and "failed to execute statement" in reports[0]
    silent: list[str] = []
    cfg = config(tf.Config, {"error_mode": "silent", "trace_statements": statements})
    tf.TransformProcessor(cfg, "traces", silent.append).process(batch(traces()))
    assert silent == []
    cfg = config(tf.Config, {"trace_statements": statements})  # ignore is the default (as at v0.161)
    assert tf.TransformProcessor(cfg, "traces").process(batch(traces())) is not None
    cfg = config(tf.Config, {"error_mode": "propagate", "trace_statements": statements})
    with pytest.raises(RetryableError, match=r"must be int64|unsupported type"):
        tf.TransformProcessor(cfg, "traces").process(batch(traces()))
    # A group's own error_mode wins over the processor's.
    cfg = config(tf.Config, {"error_mode": "propagate", "trace_statements": [
        {"context": "span", "error_mode": "ignore", "statements": statements}]})
    assert tf.TransformProcessor(cfg, "traces").process(batch(traces())) is not None


def test_metric_and_log_statements() -> None:
    mreq = ExportMetricsServiceRequest()
    metric = mreq.resource_metrics.add().scope_metrics.add().metrics.add(name="http.requests")
    dp = metric.sum.data_points.add(as_int=5)
    kv = dp.attributes.add(key="route")
    kv.value.string_value = "/a"
    cfg = config(tf.Config, {"metric_statements": [
        'set(metric.name, "requests")', 'set(datapoint.attributes["route"], "/b") where datapoint.value_int == 5']})
    out = tf.TransformProcessor(cfg, "metrics").process(Batch("metrics", mreq.SerializeToString(), 1))
    assert out is not None
    m = out.message().resource_metrics[0].scope_metrics[0].metrics[0]
    assert m.name == "requests" and m.sum.data_points[0].attributes[0].value.string_value == "/b"
    lreq = ExportLogsServiceRequest()
    rec = lreq.resource_logs.add().scope_logs.add().log_records.add(severity_number=17)
    rec.body.string_value = "disk full"
    cfg = config(tf.Config, {"log_statements": ['set(log.severity_text, "ERROR") where log.severity_number >= 17']})
    out = tf.TransformProcessor(cfg, "logs").process(Batch("logs", lreq.SerializeToString(), 1))
    assert out is not None and out.message().resource_logs[0].scope_logs[0].log_records[0].severity_text == "ERROR"


@pytest.mark.parametrize(("raw", "message"), [
    ({"trace_statements": ['set(span.name, "a")', 'replace_patern(span.name, "a", "b")']},
     'processors::x: trace_statements[1]: unknown function "replace_patern" at col 1'),
    ({"trace_statements": ['set(span.name, "a")', {"statements": ['set(span.name, "b")']}]},
     "configuring multiple configuration styles is not supported"),
    ({"trace_statements": [{"context": "span", "statements": ['set(name, 1)', 'set(nope, 1)']}]},
     'trace_statements[0]::statements[1]: set: unsupported path "nope" in the "span" context: the span context '
     'has no field "nope" at col 5'),
    ({"trace_statements": ['set(attributes["a"], 1)']}, 'path "attributes["a"]" names no context'),
    ({"log_statements": ['set(span.name, "x")']}, 'the "span" context is not available here'),
    ({"trace_statements": [{"context": "span", "conditions": ["name =="], "statements": ['set(name, "x")']}]},
     "trace_statements[0]::conditions[0]: unexpected end of input"),
    ({"trace_statements": [{"context": "span", "statements": ['set(name, "x")'], "shared_cache": True}]},
     "shared_cache: not supported by this gateway"),
])
def test_validation_names_the_entry(raw: dict[str, Any], message: str) -> None:
    errors = Errors()
    decode(tf.Config, raw, "processors::x", errors)
    assert any(message in line for line in errors.lines), errors.lines


# ---------------------------------------------------------------- filter

def test_filter_span_block_drops_spans_and_empty_scopes_and_resources() -> None:
    cfg = config(flt.Config, {"traces": {"span": ['name == "GET /health"', 'attributes["http.status"] == 500']}})
    out = flt.FilterProcessor(cfg, "traces").process(batch(traces()))
    assert {(s, n) for s, n, _ in spans(out)} == {("checkout", "GET /api"), ("health-svc", "GET /api")}
    assert out is not None and out.items == 2
    cfg = config(flt.Config, {"traces": {"span": ['name != ""']}})
    assert flt.FilterProcessor(cfg, "traces").process(batch(traces())) is None


def test_filter_resource_and_spanevent_blocks() -> None:
    cfg = config(flt.Config, {"traces": {"resource": ['attributes["service.name"] == "health-svc"'],
                                         "spanevent": ['name == "retry"']}})
    out = flt.FilterProcessor(cfg, "traces").process(batch(traces()))
    assert out is not None
    msg = out.message()
    assert len(msg.resource_spans) == 1
    events = [e.name for ss in msg.resource_spans[0].scope_spans for s in ss.spans for e in s.events]
    assert events == ["log", "log"]


def test_filter_trace_conditions_infer_each_conditions_context() -> None:
    cfg = config(flt.Config, {"trace_conditions": [
        'resource.attributes["service.name"] == "health-svc"', 'span.name == "POST /pay"',
        'spanevent.name == "log" and span.name == "GET /api"']})
    out = flt.FilterProcessor(cfg, "traces").process(batch(traces()))
    assert out is not None
    msg = out.message()
    assert [s.name for s in msg.resource_spans[0].scope_spans[0].spans] == ["GET /api", "GET /health"]
    assert [len(s.events) for s in msg.resource_spans[0].scope_spans[0].spans] == [0, 1]
    cfg = config(flt.Config, {"trace_conditions": [{"context": "span", "conditions": ['name == "GET /api"']}]})
    assert len(spans(flt.FilterProcessor(cfg, "traces").process(batch(traces())))) == 4


def test_filter_error_mode() -> None:
    cond = ['attributes["s"] + 1 == 2']
    reports: list[str] = []
    cfg = config(flt.Config, {"error_mode": "ignore", "traces": {"span": cond}})
    out = flt.FilterProcessor(cfg, "traces", reports.append).process(batch(traces()))
    assert len(spans(out)) == 6 and len(reports) == 6
    cfg = config(flt.Config, {"traces": {"span": cond}})  # ignore is the default (as at v0.161)
    assert len(spans(flt.FilterProcessor(cfg, "traces").process(batch(traces())))) == 6
    cfg = config(flt.Config, {"error_mode": "propagate", "traces": {"span": cond}})
    with pytest.raises(RetryableError, match="failed to execute condition"):
        flt.FilterProcessor(cfg, "traces").process(batch(traces()))
    cfg = config(flt.Config, {"error_mode": "propagate", "trace_conditions": [
        {"error_mode": "silent", "conditions": ['span.attributes["s"] + 1 == 2']}]})
    assert len(spans(flt.FilterProcessor(cfg, "traces", reports.append).process(batch(traces())))) == 6
    assert len(reports) == 6


def test_filter_metrics_and_logs() -> None:
    mreq = ExportMetricsServiceRequest()
    sm = mreq.resource_metrics.add().scope_metrics.add()
    for name, values in (("keep", (1, 2)), ("drop.me", (3,)), ("points", (5, 50))):
        m = sm.metrics.add(name=name)
        for v in values:
            m.gauge.data_points.add(as_int=v)
    cfg = config(flt.Config, {"metrics": {"metric": ['name == "drop.me"'], "datapoint": ["value_int > 10"]}})
    out = flt.FilterProcessor(cfg, "metrics").process(Batch("metrics", mreq.SerializeToString(), 5))
    assert out is not None
    got = {m.name: [p.as_int for p in m.gauge.data_points] for m in out.message().resource_metrics[0]
           .scope_metrics[0].metrics}
    assert got == {"keep": [1, 2], "points": [5]}
    cfg = config(flt.Config, {"metric_conditions": ['datapoint.value_int < 3']})
    out = flt.FilterProcessor(cfg, "metrics").process(Batch("metrics", mreq.SerializeToString(), 5))
    assert out is not None and out.items == 3
    lreq = ExportLogsServiceRequest()
    sl = lreq.resource_logs.add().scope_logs.add()
    for sev in (5, 9, 17):
        sl.log_records.add(severity_number=sev)  # type: ignore[arg-type]
    for raw in ({"logs": {"log_record": ["severity_number < SEVERITY_NUMBER_INFO"]}},
                {"log_conditions": ["log.severity_number < SEVERITY_NUMBER_INFO"]}):
        out = flt.FilterProcessor(config(flt.Config, raw), "logs").process(
            Batch("logs", lreq.SerializeToString(), 3))
        assert out is not None
        assert [r.severity_number for r in out.message().resource_logs[0].scope_logs[0].log_records] == [9, 17]


@pytest.mark.parametrize(("raw", "message"), [
    ({"traces": {"span": ['name == "a"', "nope == 1"]}}, 'traces::span[1]: unsupported path "nope"'),
    ({"spans": {"include": {"match_type": "strict", "services": ["a"]}}}, "spans: not supported by this gateway"),
    ({"metrics": {"include": {"match_type": "strict"}}}, "metrics::include: not supported by this gateway"),
    ({"logs": {"exclude": {"match_type": "strict"}}}, "logs::exclude: not supported by this gateway"),
    ({"trace_conditions": ["name == 1"]}, 'trace_conditions[0]: path "name" names no context'),
    ({"trace_conditions": ["log.body == 1"]}, 'the "log" context is not available here'),
])
def test_filter_validation_names_the_entry(raw: dict[str, Any], message: str) -> None:
    errors = Errors()
    decode(flt.Config, raw, "processors::x", errors)
    assert any(message in line for line in errors.lines), errors.lines


def test_filter_resource_conditions_of_metrics_and_logs() -> None:
    mreq = ExportMetricsServiceRequest()
    lreq = ExportLogsServiceRequest()
    for service in ("a", "b"):
        rm = mreq.resource_metrics.add()
        rm.resource.attributes.add(key="service.name").value.string_value = service
        rm.scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
        rl = lreq.resource_logs.add()
        rl.resource.attributes.add(key="service.name").value.string_value = service
        rl.scope_logs.add().log_records.add()
    cfg = config(flt.Config, {"metrics": {"resource": ['attributes["service.name"] == "a"']}})
    out = flt.FilterProcessor(cfg, "metrics").process(Batch("metrics", mreq.SerializeToString(), 2))
    assert out is not None and [r.resource.attributes[0].value.string_value
                                for r in out.message().resource_metrics] == ["b"]
    cfg = config(flt.Config, {"logs": {"resource": ['attributes["service.name"] == "b"']}})
    out = flt.FilterProcessor(cfg, "logs").process(Batch("logs", lreq.SerializeToString(), 2))
    assert out is not None and [r.resource.attributes[0].value.string_value
                                for r in out.message().resource_logs] == ["a"]
