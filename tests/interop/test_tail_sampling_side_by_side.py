"""Side by side: the same generated traces through the reference Collector's `tail_sampling` and the
gateway's, with the same policies and `decision_wait: 1s`, keep the same traces.

Both run every case at once: one pipeline per case behind the same OTLP receiver, each with its own
`tail_sampling/<case>` and its own output (a file exporter per case in the Collector, an exporter with
an `x-case` header in the gateway). The traces: errors, latencies, string, int, bool attributes on
spans and resources, tracestates, trace flags, span events, 1 to 6 spans each, every trace split
across two requests, and late spans sent after the decisions (which must follow them). The
time-dependent policies (rate_limiting, bytes_limiting) are compared by counts, within a tolerance.
"""

from __future__ import annotations

import random
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import peers
from tests.harness import Ports, Sink, running
from tests.interop._support import file_requests, gateway_config, needs, send

pytestmark = [pytest.mark.peers, needs("processors", "tail_sampling")]

TRACES = 240

Cases = dict[str, dict[str, Any]]


def _collector(cases: Cases) -> str:
    doc = {
        "extensions": {"health_check": {"endpoint": "{{health_endpoint}}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "{{grpc_endpoint}}"}}}},
        "processors": {f"tail_sampling/{c}": p for c, p in cases.items()},
        "exporters": {f"file/{c}": {"path": f"{{{{workdir}}}}/{c}.json", "flush_interval": "100ms"} for c in cases},
        "service": {"extensions": ["health_check"], "pipelines": {f"traces/{c}": {
            "receivers": ["otlp"], "processors": [f"tail_sampling/{c}"], "exporters": [f"file/{c}"]} for c in cases}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _gateway(ports: Ports, sink: Sink, cases: Cases) -> str:
    exporters = {f"otlp/{c}": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True},
                               "headers": {"x-case": c}} for c in cases}
    return gateway_config(
        ports, exporters, processors={f"tail_sampling/{c}": p for c, p in cases.items()},
        pipelines={f"traces/{c}": {"receivers": ["otlp"], "processors": [f"tail_sampling/{c}"],
                                   "exporters": [f"otlp/{c}"]} for c in cases})


def _attr(span: Any, key: str, kind: str, value: Any) -> None:
    kv = span.attributes.add()
    kv.key = key
    setattr(kv.value, kind, value)


def generate(seed: int = 15) -> tuple[list[ExportTraceServiceRequest], ExportTraceServiceRequest]:
    """Two requests that split every trace between them, and one of late spans (a span for a third of
    the traces, to be sent after the decisions)."""
    rng = random.Random(seed)
    first, second, late = ExportTraceServiceRequest(), ExportTraceServiceRequest(), ExportTraceServiceRequest()
    scopes = {}
    for req, tag in ((first, "a"), (second, "b"), (late, "c")):
        for svc in ("checkout", "billing"):
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", svc
            if svc == "billing":
                kv = rs.resource.attributes.add()
                kv.key, kv.value.int_value = "http.status_code", 503 if tag == "a" else 200
            ss = rs.scope_spans.add()
            ss.scope.name = f"scope-{tag}"
            scopes[(tag, svc)] = ss
    base = 1_700_000_000_000_000_000
    routes = ["/checkout", "/pay", "/api/items", "/health", "/login", ""]
    for t in range(TRACES):
        tid = rng.randbytes(16)
        svc = "billing" if t % 7 == 0 else "checkout"
        n = rng.randint(1, 6)
        root = rng.randbytes(8)
        start = base + t * 10_000_000_000
        for s in range(n + (1 if t % 3 == 0 else 0)):
            is_late = s == n
            tag = "c" if is_late else ("a" if s % 2 == 0 else "b")
            span = scopes[(tag, svc)].spans.add()
            span.trace_id = tid
            span.span_id = root if s == 0 else rng.randbytes(8)
            span.parent_span_id = b"" if s == 0 else root
            span.name = f"t{t}-s{s}"
            span.kind = 2 if s == 0 else 3
            span.start_time_unix_nano = start + rng.randint(0, 300) * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.choice([5, 50, 250, 450, 700, 1200]) * 1_000_000
            span.status.code = 2 if rng.random() < 0.08 else rng.choice([0, 1])
            route = rng.choice(routes)
            if route:
                _attr(span, "http.route", "string_value", route)
            if rng.random() < 0.5:
                _attr(span, "http.status_code", "int_value", rng.choice([200, 404, 500, 503]))
            elif rng.random() < 0.2:
                _attr(span, "http.status_code", "double_value", 503.0)  # reads as 0, as pdata's Int() does
            if rng.random() < 0.3:
                _attr(span, "retry", "bool_value", rng.random() < 0.5)
            span.trace_state = rng.choice(["", "", "vendor=x", "vendor=y,ot=th:8", "vendor=z", "bad state"])
            span.flags = rng.choice([0, 0, 1, 0x101])
            if rng.random() < 0.1:
                ev = span.events.add()
                ev.name = "exception"
                ev.time_unix_nano = span.start_time_unix_nano + 1
    return [first, second], late


def _kept_by_case(requests: dict[str, list[Any]]) -> dict[str, set[bytes]]:
    return {case: {span.span_id for req in reqs for rs in req.resource_spans for ss in rs.scope_spans
                   for span in ss.spans} for case, reqs in requests.items()}


DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled"


def _scraped(url: str, name: str) -> float:
    """Sum of every series of `name` (with or without the `_total` suffix) at a Prometheus endpoint."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(maxsplit=1)[1]) for line in text.splitlines()
               if re.match(rf"{re.escape(name)}(_total)?(\{{|\s)", line))


def _settled(read: Any) -> None:
    last: list[int] = [-1]

    def same() -> bool:
        n = sum(map(len, read().values()))
        done, last[0] = n == last[0], n
        return done

    peers.wait_for(same, 30, "the outputs to settle")


def test_same_traces_kept_as_the_collector(ports: Ports, sink: Sink) -> None:
    policies: dict[str, list[dict[str, Any]]] = {
        "status_code": [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}],
        "latency": [{"name": "slow", "type": "latency", "latency": {"threshold_ms": 400}}],
        "latency_band": [{"name": "band", "type": "latency",
                           "latency": {"threshold_ms": 200, "upper_threshold_ms": 600}}],
        "numeric": [{"name": "5xx", "type": "numeric_attribute",
                      "numeric_attribute": {"key": "http.status_code", "min_value": 500, "max_value": 599}}],
        "numeric_invert": [{"name": "not5xx", "type": "numeric_attribute", "numeric_attribute": {
            "key": "http.status_code", "min_value": 500, "max_value": 599, "invert_match": True}}],
        "probabilistic": [{"name": "p", "type": "probabilistic",
                            "probabilistic": {"sampling_percentage": 25, "hash_salt": "salty"}}],
        "probabilistic_default_salt": [{"name": "p", "type": "probabilistic",
                                         "probabilistic": {"sampling_percentage": 40}}],
        "string": [{"name": "routes", "type": "string_attribute",
                     "string_attribute": {"key": "http.route", "values": ["/checkout", "/pay"]}}],
        "string_regex_invert": [{"name": "r", "type": "string_attribute", "string_attribute": {
            "key": "http.route", "values": ["^/api/.*", "health"], "enabled_regex_matching": True,
            "invert_match": True}}],
        "string_resource": [{"name": "svc", "type": "string_attribute",
                              "string_attribute": {"key": "service.name", "values": ["billing"]}}],
        "boolean": [{"name": "retry", "type": "boolean_attribute",
                      "boolean_attribute": {"key": "retry", "value": True}}],
        "boolean_invert": [{"name": "noretry", "type": "boolean_attribute",
                             "boolean_attribute": {"key": "retry", "value": True, "invert_match": True}}],
        "trace_state": [{"name": "ts", "type": "trace_state",
                          "trace_state": {"key": "vendor", "values": ["x", "y"]}}],
        "trace_flags": [{"name": "flags", "type": "trace_flags"}],
        "span_count": [{"name": "mid", "type": "span_count", "span_count": {"min_spans": 3, "max_spans": 5}}],
        "and_not": [{"name": "a", "type": "and", "and": {"and_sub_policy": [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "n", "type": "not", "not": {"not_sub_policy": {
                "name": "co", "type": "string_attribute",
                "string_attribute": {"key": "http.route", "values": ["/checkout"]}}}}]}}],
        "drop_first": [
            {"name": "all", "type": "always_sample"},
            {"name": "nohealth", "type": "drop", "drop": {"drop_sub_policy": [
                {"name": "h", "type": "string_attribute",
                 "string_attribute": {"key": "http.route", "values": ["/health"]}},
            ]}}],
        "composite": [{"name": "c", "type": "composite", "composite": {
            "max_total_spans_per_second": 1000000, "policy_order": ["errs", "prob"],
            "composite_sub_policy": [
                {"name": "errs", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                {"name": "prob", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}],
            "rate_allocation": [{"policy": "errs", "percent": 50}, {"policy": "prob", "percent": 50}]}}],
        "ottl": [{"name": "o", "type": "ottl_condition", "ottl_condition": {
            "error_mode": "ignore",
            "span": ['attributes["http.route"] == "/pay" and kind == SPAN_KIND_SERVER'],
            "spanevent": ['name == "exception"']}}],
        "typical": [
            {"name": "nohealth", "type": "drop", "drop": {"drop_sub_policy": [
                {"name": "h", "type": "string_attribute",
                 "string_attribute": {"key": "http.route", "values": ["/health"]}},
            ]}},
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}},
            {"name": "rest", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}],
    }
    limited: dict[str, list[dict[str, Any]]] = {
        "rate_limiting": [{"name": "rl", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 60}}],
        "bytes_limiting": [{"name": "bl", "type": "bytes_limiting",
                             "bytes_limiting": {"bytes_per_second": 20000, "burst_capacity": 30000}}],
    }


    # Every case decides 1 s after a trace's first span; `typical` stops at the first policy that samples.
    cases: Cases = {c: {"decision_wait": "1s", "policies": p} for c, p in {**policies, **limited}.items()}
    cases["typical"]["sample_on_first_match"] = True
    requests, late = generate()
    with running(_gateway(ports, sink, cases), ports), peers.otelcol(_collector(cases)) as col:
        for req in requests:
            send(col.grpc_endpoint, "traces", req)
            send(f"127.0.0.1:{ports.grpc}", "traces", req)
        # Every trace decided on both sides (each case's processor counts its 240), then the late spans.
        decided = TRACES * len(cases)
        gw_metrics = f"http://127.0.0.1:{ports.metrics}/metrics"
        peers.wait_for(lambda: _scraped(gw_metrics, DECIDED) == decided, 30, "the gateway's decisions")
        peers.wait_for(lambda: _scraped(col.metrics_url, DECIDED) == decided, 30, "the Collector's decisions")
        send(col.grpc_endpoint, "traces", late)
        send(f"127.0.0.1:{ports.grpc}", "traces", late)

        def theirs() -> dict[str, set[bytes]]:
            return _kept_by_case({c: file_requests(Path(col.workdir) / f"{c}.json", "traces") for c in cases})

        def ours() -> dict[str, set[bytes]]:
            return _kept_by_case({c: [r.request for r in sink.requests("traces") if r.headers.get("x-case") == c]
                                  for c in cases})

        # Late spans of kept traces go on at once; wait until they show on both sides, then for the rest.
        late_ids = {sp.span_id for rs in late.resource_spans for ss in rs.scope_spans for sp in ss.spans}
        peers.wait_for(lambda: bool(late_ids & theirs()["status_code"]), 30, "the Collector's late spans")
        peers.wait_for(lambda: bool(late_ids & ours()["status_code"]), 30, "the gateway's late spans")
        _settled(theirs)
        _settled(ours)
        collector, gateway = theirs(), ours()
    sent = sum(len(ss.spans) for r in [*requests, late] for rs in r.resource_spans for ss in rs.scope_spans)
    report = []
    for case in policies:
        only_theirs, only_ours = collector[case] - gateway[case], gateway[case] - collector[case]
        report.append(f"{case}: collector {len(collector[case])}, gateway {len(gateway[case])} of {sent} spans; "
                      f"differ {len(only_theirs)}+{len(only_ours)}")
    print("\n".join(report))
    for case in policies:
        assert collector[case] == gateway[case], f"{case} kept differently:\n" + "\n".join(report)
        assert 0 < len(collector[case]) < sent or case == "drop_first", case
    assert 0 < len(late_ids & gateway["status_code"]) < len(late_ids), "late spans follow each trace's decision"
    for case in limited:
        a, b = len(collector[case]), len(gateway[case])
        print(f"{case}: collector {a}, gateway {b}")
        # The same bucket over the same traces; the ticks that split them differ by up to a second.
        assert abs(a - b) <= max(10, 0.25 * max(a, b)), f"{case}: collector {a} spans, gateway {b}"
