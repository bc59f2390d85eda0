"""The input of the OTTL differential test: deterministic OTLP requests (seeded), the same bytes sent
to the reference Collector and to the gateway for every corpus case.

Traces: three resources (the third holds only health checks, so a filter can empty it), several
scopes, 42 spans in traces of a root and its children, names of every kind (unicode, emoji, empty,
regex specials, very long, health checks), every span kind and status, attributes of every AnyValue
type (string, int with negatives and the int64 bounds, double, bool, bytes, arrays, nested kvlists,
empty strings, empty values), events with attributes, links, trace_state values. A second, small
request carries the edge shapes (a resource without attributes, a scope without spans, a span with
nothing set but its ids, a resource whose scope has no spans). Logs and metrics: one request each,
with the same variety.

Everything is built from `random.Random(SEED)`: the same run after run, machine after machine.
"""

from __future__ import annotations

import random
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pipelines.processors import anyvalue

SEED = 20261206
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
BASE_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z

Value = None | bool | int | float | str | bytes | list[Any] | dict[str, Any]


def set_value(v: AnyValue, raw: Value) -> None:
    """Fill an AnyValue from a Python value as pdata's `FromRaw` types it (`anyvalue.from_raw`); None
    leaves it empty (ValueTypeEmpty)."""
    v.CopyFrom(anyvalue.from_raw(raw))


def put_attrs(attrs: Any, values: dict[str, Value]) -> None:
    """Append key/values to a repeated KeyValue field, in the dict's order."""
    for key, raw in values.items():
        kv = attrs.add()
        kv.key = key
        set_value(kv.value, raw)


# ---------------------------------------------------------------- traces

SPAN_NAMES = [
    "GET /api/users/123", "POST /api/orders", "GET /health", "GET /healthz", "/readyz", "",
    "SELECT users", "日本語のスパン", "deploy 🚀 rocket", "UPPER lower MiXeD", "a.b*c+(d)[e]{f}|g^h$i\\j?",
    "user/42/list/7", "password=hunter2 token=abc123", "kube_pod_status_ready", "  padded name  ",
    "x" * 300, "GET /api/users/456", "process-payment", "ünïcödé-ñame", "HealthCheck",
]

SPAN_ATTR_POOL: dict[str, Value] = {
    "http.method": "GET",
    "http.status_code": 404,
    "http.url": "https://user:pw@example.com:8080/path/file.gif?q=1&r=two#frag",
    "http.target": "/user/123/list/456",
    "duration_ms": 12.5,
    "ratio": -0.25,
    "ok": True,
    "neg": -7,
    "zero": 0,
    "big": INT64_MAX,
    "small": INT64_MIN,
    "empty": "",
    "nil": None,
    "raw": b"\x00\x01\xfe\xff",
    "tags": ["prod", "staging", "prod"],
    "nums": [3, 1, 2],
    "floats": [2.5, -1.0, 10.25],
    "mixed": [1, "a", True, 2.5],
    "empty_list": [],
    "empty_map": {},
    "nested": {"a": {"b": {"c": "deep"}}, "x": 1, "list": [1, 2], "s": "top"},
    "json": '{"user":{"id":7,"name":"ann"},"tags":["x","y"],"ok":true,"n":1.5}',
    "kv": "a=1 b=2 c=three",
    "pairs": "k1:v1,k2:v2",
    "b64": "aGVsbG8gd29ybGQ=",
    "card": "4539578763621486",
    "bad_card": "1234567812345678",
    "when": "2023-02-04 12:34:56",
    "epoch": 1675514096,
    "unicode": "héllo wörld ✓ 🚀",
    "ws": "  padded  ",
    "user.password": "hunter2",
    "auth.token": "abc123",
    "things": [{"name": "foo", "value": 2}, {"name": "bar", "value": 5}],
    "log.line": "GIT_SHA=abc123 ver=1.2",
    "long": "lorem ipsum dolor sit amet " * 80,
    "upper": "MiXeD Case Ünï",
    "path": "/var/log/app/server.log",
    "str_int": "42",
    "str_float": "3.75",
    "str_bool": "true",
    "hex": "0a1b2c",
}

# Attributes every span has, so that every case sees each type at least on some spans.
ALWAYS = ("http.method", "http.status_code", "ok", "empty", "nested", "tags")

SERVICES: list[dict[str, Value]] = [
    {"service.name": "checkout", "deployment.environment": "prod", "host.name": "node-1",
     "res.int": 42, "res.list": ["a", "b"], "res.map": {"k": "v", "n": 2}, "password.hash": "secret",
     "cloud.region": "eu-west-1"},
    {"service.name": "payments-ünïcode", "deployment.environment": "staging", "tenant": "acme",
     "res.int": -1, "host.name": "node-2 🚀"},
    {"service.name": "healthcheck-svc", "deployment.environment": "prod", "drop.me": True},
]

SCOPES: list[list[tuple[str, str, dict[str, Value]]]] = [
    [("io.opentelemetry.http", "1.2.3", {"scope.attr": "x", "scope.n": 1}), ("db", "", {})],
    [("grpc", "0.9", {"lib": "grpc-go"}), ("", "", {})],
    [("health", "1.0", {})],
]

KINDS = [0, 1, 2, 3, 4, 5]
TRACE_STATES = ["", "vendor=x", "ot=th:8;rv:abcdef01234567,foo=bar", "a=1,b=2,c=3", "congo=t61rcWkgMzE"]


def _span_attrs(rng: random.Random, i: int) -> dict[str, Value]:
    keys = list(ALWAYS)
    others = [k for k in SPAN_ATTR_POOL if k not in ALWAYS]
    keys += rng.sample(others, k=8 + i % 5)
    # Every pool key appears on at least one span: span i always carries the i-th of the others.
    keys.append(others[i % len(others)])
    attrs = {k: SPAN_ATTR_POOL[k] for k in dict.fromkeys(keys)}
    attrs["http.status_code"] = [200, 404, 500, 201, 503][i % 5]
    attrs["http.method"] = ["GET", "POST", "PUT", "DELETE"][i % 4]
    attrs["ok"] = i % 3 != 0
    attrs["span.index"] = i
    return attrs


def make_traces() -> ExportTraceServiceRequest:
    """The main traces request: 3 resources, 5 scopes, 42 spans (9 traces, roots and children)."""
    rng = random.Random(SEED)
    req = ExportTraceServiceRequest()
    layout = [[5, 4], [7, 6], [20]]  # spans per scope; the health resource has one scope
    i = 0
    for r, scopes in enumerate(layout):
        rs = req.resource_spans.add()
        put_attrs(rs.resource.attributes, SERVICES[r])
        rs.schema_url = "https://opentelemetry.io/schemas/1.21.0" if r == 0 else ""
        for s, count in enumerate(scopes):
            name, version, sattrs = SCOPES[r][s]
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = name, version
            put_attrs(ss.scope.attributes, sattrs)
            root: bytes = b""
            trace_id = b""
            for n in range(count):
                span = ss.spans.add()
                if n % 4 == 0:  # a new trace every four spans: a root, then its children
                    trace_id, root = rng.randbytes(16), b""
                span.trace_id = trace_id
                span.span_id = rng.randbytes(8)
                span.parent_span_id = root
                root = root or span.span_id
                if r == 2:
                    span.name = ["GET /health", "GET /healthz", "/readyz", "HealthCheck"][n % 4]
                else:
                    span.name = SPAN_NAMES[i % len(SPAN_NAMES)]
                span.kind = KINDS[i % len(KINDS)]  # type: ignore[assignment]
                span.start_time_unix_nano = BASE_NS + i * 1_000_003
                span.end_time_unix_nano = span.start_time_unix_nano + 250_000 * (i + 1)
                span.trace_state = TRACE_STATES[i % len(TRACE_STATES)]
                span.status.code = (i // 2) % 3  # type: ignore[assignment]
                if span.status.code == 2:
                    span.status.message = ["boom", "", "timeout ⏱"][i % 3]
                elif span.status.code == 1 and i % 5 == 0:
                    span.status.message = "ignored when OK"
                span.dropped_attributes_count = 3 if i % 7 == 0 else 0
                span.flags = 0x100 | (1 if i % 2 else 0)
                put_attrs(span.attributes, _span_attrs(rng, i))
                for e in range(i % 3):
                    ev = span.events.add()
                    ev.name = ["exception", "retry", ""][(i + e) % 3]
                    ev.time_unix_nano = span.start_time_unix_nano + 1000 * (e + 1)
                    put_attrs(ev.attributes, {"exception.type": "IOError", "exception.message": "boom ✗",
                                              "attempt": e + 1, "event.secret": "s3cr3t"} if e == 0 else
                              {"attempt": e + 1, "note": ""})
                if i % 4 == 1:
                    link = span.links.add()
                    link.trace_id, link.span_id = rng.randbytes(16), rng.randbytes(8)
                    link.trace_state = "linked=1"
                    put_attrs(link.attributes, {"link.kind": "follows", "n": i})
                i += 1
    return req


def make_traces_edges() -> ExportTraceServiceRequest:
    """The small second request: shapes at the edges of the data model."""
    rng = random.Random(SEED + 1)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()  # no resource attributes at all
    ss = rs.scope_spans.add()  # no scope name or version
    bare = ss.spans.add()  # nothing but ids
    bare.trace_id, bare.span_id = rng.randbytes(16), rng.randbytes(8)
    child = ss.spans.add()
    child.trace_id, child.span_id, child.parent_span_id = bare.trace_id, rng.randbytes(8), bare.span_id
    child.name = "GET /api/users/789"
    child.kind = 2  # type: ignore[assignment]
    child.start_time_unix_nano, child.end_time_unix_nano = BASE_NS, BASE_NS  # zero duration
    put_attrs(child.attributes, {"http.method": "GET", "http.status_code": 200, "ok": False,
                                 "empty": "", "nested": {}, "tags": [], "big": INT64_MAX})
    rs.scope_spans.add()  # a scope with no spans
    rs2 = req.resource_spans.add()
    put_attrs(rs2.resource.attributes, {"service.name": "checkout", "deployment.environment": "dev"})
    ss2 = rs2.scope_spans.add()
    ss2.scope.name = "io.opentelemetry.http"
    last = ss2.spans.add()
    last.trace_id, last.span_id = rng.randbytes(16), rng.randbytes(8)
    last.name = "POST /api/orders"
    last.kind = 3  # type: ignore[assignment]
    last.status.code = 2  # type: ignore[assignment]
    last.status.message = "upstream failed"
    last.start_time_unix_nano, last.end_time_unix_nano = BASE_NS + 5, BASE_NS + 1_000_000_005
    put_attrs(last.attributes, {"http.method": "POST", "http.status_code": 502, "ok": True, "empty": "",
                                "nested": {"a": {"b": {"c": "other"}}}, "tags": ["canary"]})
    rs3 = req.resource_spans.add()  # a resource whose only scope has no spans
    put_attrs(rs3.resource.attributes, {"service.name": "idle", "res.int": 0})
    rs3.scope_spans.add().scope.name = "idle-scope"
    return req


# ---------------------------------------------------------------- logs

LOG_BODIES: list[Value] = [
    "user login succeeded for ann",
    '{"level":"warn","msg":"disk almost full","pct":91.5,"tags":["disk","infra"]}',
    {"event": "checkout", "amount": 12.5, "items": ["a", "b"], "meta": {"ip": "10.0.0.1"}},
    42,
    "",
    None,
    b"\x01\x02",
    "GET /api/users/123 200 12ms",
    "ERROR password=hunter2 failed",
    "日本語のログ 🚀",
    "k1=v1 k2=v2",
    ["x", 1],
]

SEVERITIES = [(9, "INFO"), (13, "WARN"), (17, "ERROR"), (5, "DEBUG"), (0, ""), (21, "FATAL"), (10, "info2")]


def make_logs() -> ExportLogsServiceRequest:
    rng = random.Random(SEED + 2)
    req = ExportLogsServiceRequest()
    n = 0
    for r, service in enumerate(["checkout", "payments-ünïcode"]):
        rl = req.resource_logs.add()
        put_attrs(rl.resource.attributes, {"service.name": service, "deployment.environment": "prod",
                                           "res.int": r})
        for s in range(2):
            sl = rl.scope_logs.add()
            sl.scope.name, sl.scope.version = (["app", "1.0"], ["audit", ""])[s]
            for _ in range(3):
                rec = sl.log_records.add()
                rec.time_unix_nano = BASE_NS + n * 1_000_000
                rec.observed_time_unix_nano = rec.time_unix_nano + 500
                rec.severity_number, rec.severity_text = SEVERITIES[n % len(SEVERITIES)]  # type: ignore[assignment]
                set_value(rec.body, LOG_BODIES[n % len(LOG_BODIES)])
                put_attrs(rec.attributes, {"log.index": n, "http.method": ["GET", "POST"][n % 2],
                                           "user.password": "hunter2" if n % 3 == 0 else None,
                                           "tags": ["a", "b"] if n % 2 else [], "empty": "",
                                           "nested": {"k": {"v": n}}, "ratio": n / 4,
                                           "unicode": "ünï 🚀"})
                if n % 2 == 0:
                    rec.trace_id, rec.span_id = rng.randbytes(16), rng.randbytes(8)
                rec.flags = n % 2
                n += 1
    return req


# ---------------------------------------------------------------- metrics


def make_metrics() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    for r, service in enumerate(["checkout", "payments-ünïcode"]):
        rm = req.resource_metrics.add()
        put_attrs(rm.resource.attributes, {"service.name": service, "host.name": f"node-{r}"})
        sm = rm.scope_metrics.add()
        sm.scope.name, sm.scope.version = "otel.runtime", "0.1"
        t0, t1 = BASE_NS, BASE_NS + 10_000_000_000

        gauge = sm.metrics.add()
        gauge.name, gauge.unit, gauge.description = "queue.depth", "{items}", "Items waiting"
        for i, value in enumerate([3, -2, INT64_MAX if r == 0 else 0]):
            dp = gauge.gauge.data_points.add()
            dp.as_int, dp.time_unix_nano = value, t1
            put_attrs(dp.attributes, {"queue": f"q{i}", "priority": i, "empty": ""})
        temp = sm.metrics.add()
        temp.name, temp.unit = "system.cpu.temperature", "Cel"
        for i, dvalue in enumerate([41.5, -0.5]):
            dp = temp.gauge.data_points.add()
            dp.as_double, dp.time_unix_nano = dvalue, t1
            put_attrs(dp.attributes, {"cpu": f"cpu{i}", "core": i})

        total = sm.metrics.add()
        total.name, total.unit, total.description = "http.server.requests", "1", "Requests served"
        total.sum.aggregation_temporality = 2  # type: ignore[assignment]
        total.sum.is_monotonic = True
        for i, method in enumerate(["GET", "POST", "PUT"]):
            dp = total.sum.data_points.add()
            dp.as_int, dp.start_time_unix_nano, dp.time_unix_nano = 10 * (i + 1), t0, t1
            put_attrs(dp.attributes, {"http.method": method, "http.status_code": 200 + i,
                                      "nested": {"a": i}})

        kube = sm.metrics.add()
        kube.name, kube.description = "kube_pod_status_ready", "Pod ready"
        kube.sum.aggregation_temporality = 1  # type: ignore[assignment]
        dp = kube.sum.data_points.add()
        dp.as_double, dp.start_time_unix_nano, dp.time_unix_nano = 1.0, t0, t1
        put_attrs(dp.attributes, {"pod": "web-0"})

        hist = sm.metrics.add()
        hist.name, hist.unit = "http.server.duration", "ms"
        hist.histogram.aggregation_temporality = 2  # type: ignore[assignment]
        hp = hist.histogram.data_points.add()
        hp.start_time_unix_nano, hp.time_unix_nano = t0, t1
        hp.count, hp.sum = 6, 123.5
        hp.bucket_counts.extend([1, 2, 3])
        hp.explicit_bounds.extend([10.0, 100.0])
        hp.min, hp.max = 0.5, 250.0
        put_attrs(hp.attributes, {"http.route": "/api/users/{id}", "http.method": "GET"})

        summ = sm.metrics.add()
        summ.name = "rpc.latency.summary"
        sp = summ.summary.data_points.add()
        sp.time_unix_nano, sp.count, sp.sum = t1, 4, 10.0
        q = sp.quantile_values.add()
        q.quantile, q.value = 0.5, 2.0
        put_attrs(sp.attributes, {"rpc": "Get"})

        # Two points of the same scale and time with min and max (which aggregate_on_attributes merges
        # once their attributes go), the second starting lower and without a sum.
        expo = sm.metrics.add()
        expo.name, expo.unit = "http.client.duration.exp", "ms"
        expo.exponential_histogram.aggregation_temporality = 2  # type: ignore[assignment]
        ea = expo.exponential_histogram.data_points.add()
        ea.start_time_unix_nano, ea.time_unix_nano = t0, t1
        ea.count, ea.sum, ea.zero_count, ea.min, ea.max = 8, 61.5, 1, 0.0, 40.0
        ea.positive.offset = 1
        ea.positive.bucket_counts.extend([1, 2, 3, 0, 1])
        put_attrs(ea.attributes, {"peer": "a"})
        eb = expo.exponential_histogram.data_points.add()
        eb.start_time_unix_nano, eb.time_unix_nano = t0, t1
        eb.count, eb.min, eb.max = 3, 0.7, 3.5
        eb.positive.offset = -1
        eb.positive.bucket_counts.extend([2, 0, 1])
        put_attrs(eb.attributes, {"peer": "b"})
    return req


def requests(signal: str) -> list[Any]:
    """The requests sent to every case of `signal`, in order (one export call each)."""
    if signal == "traces":
        return [make_traces(), make_traces_edges()]
    if signal == "logs":
        return [make_logs()]
    if signal == "metrics":
        return [make_metrics()]
    raise ValueError(f"unknown signal {signal!r}")
