"""The transform processor's metric functions, delete_index, stringify_all and ParseSeverity, through
compiled statement groups over the differential corpus's metrics input (tests/ottl/inputs.py)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from pipelines.batch import RequestContext
from pipelines.ottl.compile import compile_statement
from pipelines.ottl.functions.metrics import bucket_counts, go_float_to_int64
from pipelines.ottl.functions.unsupported import COLLECTOR_FUNCTIONS
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import EvalError
from pipelines.ottl_processors.groups import Runner, visit
from pipelines.ottl_processors.transform import Config, ContextStatements, GroupError, groups
from pipelines.processors import anyvalue
from tests.ottl import inputs
from tests.ottl.test_converters_strings import ev, make_env

INT64_MAX = 2**63 - 1


def run_metrics(*statements: str | ContextStatements, errors: list[str] | None = None) -> ExportMetricsServiceRequest:
    req = inputs.make_metrics()
    seen = errors if errors is not None else []
    runner = Runner("ignore", seen.append)
    for group in groups(Config(metric_statements=statements), "metrics"):
        for env in visit(req, "metrics", group.context, RequestContext()):
            for stmt in group.statements:
                runner.run(stmt.run, stmt.text, env)
    if errors is None:
        assert not seen, seen
    return req


def metrics(req: ExportMetricsServiceRequest, resource: int = 0) -> dict[str, Any]:
    return {m.name: m for m in req.resource_metrics[resource].scope_metrics[0].metrics}


def names(req: ExportMetricsServiceRequest) -> list[str]:
    return [m.name for m in req.resource_metrics[0].scope_metrics[0].metrics]


def attrs(dp: Any) -> dict[str, Any]:
    return {kv.key: anyvalue.to_raw(kv.value) for kv in dp.attributes}


# ---------------------------------------------------------------- where they may be used

@pytest.mark.parametrize("context", ["span", "log", "resource", "datapoint"])
def test_metric_functions_are_refused_outside_the_metric_context(context: str) -> None:
    with pytest.raises(OttlError, match=r'"convert_sum_to_gauge" is available only in the "metric" context '
                                        r"of metric_statements"):
        compile_statement("convert_sum_to_gauge()", context)


def test_datapoint_functions_are_refused_in_the_metric_context() -> None:
    with pytest.raises(OttlError, match=r'only in the "datapoint" context'):
        compile_statement('convert_summary_sum_val_to_sum("delta", true)', "metric")


def test_metric_function_in_trace_statements_is_a_config_error() -> None:
    with pytest.raises(GroupError, match="copy_metric"):
        groups(Config(trace_statements=('copy_metric() where span.name == "x"',)), "traces")


def test_inference_moves_to_the_datapoint_context_for_its_functions() -> None:
    cfg = Config(metric_statements=('convert_summary_count_val_to_sum("delta", true) where metric.name == "x"',))
    assert [g.context for g in groups(cfg, "metrics")] == ["datapoint"]
    cfg = Config(metric_statements=('convert_sum_to_gauge() where metric.name == "x"',))
    assert [g.context for g in groups(cfg, "metrics")] == ["metric"]


@pytest.mark.parametrize(("text", "message"), [
    ("scale_metric(10)", "must be a float literal"),
    ("scale_metric(-1.5)", "must be a float literal"),
    ('convert_gauge_to_sum("weekly", true)', "unknown aggregation temporality: weekly"),
    ('aggregate_on_attributes("avg")', "invalid aggregation function"),
    ('convert_exponential_histogram_to_histogram("nearest", [1.0])', "invalid conversion function: nearest"),
    ('convert_exponential_histogram_to_histogram("upper", [])', "explicit bounds cannot be empty"),
    ('convert_exponential_histogram_to_histogram("upper", [1, 2])', "list of float literals"),
])
def test_bad_arguments_are_refused(text: str, message: str) -> None:
    with pytest.raises(OttlError, match=message):
        compile_statement(text, "metric")


def test_every_metric_function_is_registered() -> None:
    from pipelines.ottl.functions.registry import FUNCTIONS
    from pipelines.ottl.functions.unsupported import TRANSFORM_METRIC_FUNCTIONS
    not_yet = {"extract_percentile_metric", "convert_summary_quantile_val_to_gauge", "merge_histogram_buckets"}
    assert set(FUNCTIONS) >= TRANSFORM_METRIC_FUNCTIONS - not_yet
    assert {"delete_index", "stringify_all", "ParseSeverity"} <= set(FUNCTIONS) & COLLECTOR_FUNCTIONS


# ---------------------------------------------------------------- type conversions

def test_convert_sum_to_gauge_and_back() -> None:
    req = run_metrics('convert_sum_to_gauge() where metric.name == "http.server.requests"',
                      'convert_gauge_to_sum("delta", true) where metric.name == "queue.depth"')
    m = metrics(req)
    reqs = m["http.server.requests"]
    assert reqs.WhichOneof("data") == "gauge"
    assert [dp.as_int for dp in reqs.gauge.data_points] == [10, 20, 30]
    depth = m["queue.depth"]
    assert depth.WhichOneof("data") == "sum"
    assert depth.sum.aggregation_temporality == 1 and depth.sum.is_monotonic
    assert [dp.as_int for dp in depth.sum.data_points] == [3, -2, INT64_MAX]


def test_conversions_leave_other_types_alone() -> None:
    before = inputs.make_metrics()
    assert run_metrics("convert_sum_to_gauge() where metric.type == METRIC_DATA_TYPE_HISTOGRAM") == before


def test_summary_values_to_sums_append_metrics() -> None:
    req = run_metrics(ContextStatements(context="datapoint", statements=(
        'convert_summary_sum_val_to_sum("delta", false)',
        'convert_summary_count_val_to_sum("cumulative", true, "_total")')))
    m = metrics(req)
    assert names(req)[-2:] == ["rpc.latency.summary_sum", "rpc.latency.summary_total"]
    s = m["rpc.latency.summary_sum"]
    assert s.sum.aggregation_temporality == 1 and not s.sum.is_monotonic
    assert [(dp.as_double, attrs(dp)) for dp in s.sum.data_points] == [(10.0, {"rpc": "Get"})]
    c = m["rpc.latency.summary_total"]
    assert c.sum.aggregation_temporality == 2 and c.sum.is_monotonic
    assert [dp.as_int for dp in c.sum.data_points] == [4]


# ---------------------------------------------------------------- extract and copy

def test_extract_sum_and_count() -> None:
    req = run_metrics('extract_sum_metric(true) where metric.name == "http.server.duration"',
                      'extract_count_metric(false, ".n") where metric.name == "http.client.duration.exp"')
    m = metrics(req)
    s = m["http.server.duration_sum"]
    assert s.unit == "ms" and s.sum.is_monotonic and s.sum.aggregation_temporality == 2
    assert [dp.as_double for dp in s.sum.data_points] == [123.5]
    n = m["http.client.duration.exp.n"]
    assert n.unit == "1" and [dp.as_int for dp in n.sum.data_points] == [8, 3]


def test_extract_sum_skips_points_without_a_sum_and_fails_on_gauges() -> None:
    errors: list[str] = []
    req = run_metrics('extract_sum_metric(false) where metric.name != ""', errors=errors)
    m = metrics(req)
    assert [dp.as_double for dp in m["http.client.duration.exp_sum"].sum.data_points] == [61.5]
    assert any("requires an input metric of type Histogram, ExponentialHistogram or Summary, got Gauge" in e
               for e in errors)


def test_copy_metric_is_visited_by_the_later_statements() -> None:
    req = run_metrics('copy_metric(name = "copy", description = "copied") where metric.name == "queue.depth"',
                      'set(metric.unit, Concat([metric.unit, "!"], "")) where metric.type == METRIC_DATA_TYPE_GAUGE')
    m = metrics(req)
    assert names(req)[-1] == "copy"
    assert m["copy"].description == "copied"
    assert m["copy"].unit == "{items}!" and m["queue.depth"].unit == "{items}!"


# ---------------------------------------------------------------- scale_metric

def test_scale_metric() -> None:
    req = run_metrics('scale_metric(10.0, "dCel") where metric.name == "system.cpu.temperature"',
                      "scale_metric(2.0) where metric.type == METRIC_DATA_TYPE_HISTOGRAM",
                      'scale_metric(3.0) where metric.name == "rpc.latency.summary"',
                      'scale_metric(2.0) where metric.name == "queue.depth"')
    m = metrics(req)
    temp = m["system.cpu.temperature"]
    assert temp.unit == "dCel" and [dp.as_double for dp in temp.gauge.data_points] == [415.0, -5.0]
    hp = m["http.server.duration"].histogram.data_points[0]
    assert (hp.sum, hp.min, hp.max, list(hp.explicit_bounds)) == (247.0, 1.0, 500.0, [20.0, 200.0])
    sp = m["rpc.latency.summary"].summary.data_points[0]
    assert sp.sum == 30.0 and sp.quantile_values[0].value == 6.0
    # int64 max times 2.0 does not fit: Go's conversion gives math.MinInt64.
    assert [dp.as_int for dp in m["queue.depth"].gauge.data_points] == [6, -4, -(2**63)]


def test_scale_metric_refuses_exponential_histograms() -> None:
    errors: list[str] = []
    run_metrics("scale_metric(2.0) where metric.type == METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM", errors=errors)
    assert errors and "exponential histograms are not supported" in errors[0]


@pytest.mark.parametrize(("value", "want"), [
    (2.9, 2), (-2.9, -2), (9.3e18, -(2**63)), (float("nan"), -(2**63)), (-9.223372036854775808e18, -(2**63)),
])
def test_go_float_to_int64(value: float, want: int) -> None:
    assert go_float_to_int64(value) == want


# ---------------------------------------------------------------- aggregation

def test_aggregate_on_attributes_all_into_one() -> None:
    req = run_metrics('aggregate_on_attributes("sum", []) where metric.name == "queue.depth"',
                      'aggregate_on_attributes("mean", []) where metric.name == "system.cpu.temperature"',
                      'aggregate_on_attributes("count", ["missing"]) where metric.name == "http.server.requests"')
    m = metrics(req, 1)
    [depth] = m["queue.depth"].gauge.data_points
    assert depth.as_int == 1 and attrs(depth) == {}
    [temp] = m["system.cpu.temperature"].gauge.data_points
    assert temp.as_double == 20.5
    [count] = m["http.server.requests"].sum.data_points
    assert count.as_int == 3 and m["http.server.requests"].sum.is_monotonic
    # The first resource's queue depth wraps around int64.
    assert metrics(req, 0)["queue.depth"].gauge.data_points[0].as_int == 1 + INT64_MAX - 2**64


def test_aggregate_keeps_groups_in_first_seen_order() -> None:
    req = run_metrics('aggregate_on_attributes("max", ["cpu"]) where metric.name == "system.cpu.temperature"')
    temp = metrics(req)["system.cpu.temperature"]
    assert [(attrs(dp), dp.as_double) for dp in temp.gauge.data_points] == [({"cpu": "cpu0"}, 41.5),
                                                                          ({"cpu": "cpu1"}, -0.5)]


def test_aggregate_median_and_count_quirks() -> None:
    req = run_metrics('aggregate_on_attributes("median", []) where metric.name == "queue.depth"',
                      'aggregate_on_attributes("count", ["cpu"]) where metric.name == "system.cpu.temperature"')
    m = metrics(req, 1)
    assert m["queue.depth"].gauge.data_points[0].as_int == 0  # median of 3, -2, 0
    # A group of one keeps its value under "count" (the Collector counts only when merging).
    assert [dp.as_double for dp in m["system.cpu.temperature"].gauge.data_points] == [41.5, -0.5]


def test_aggregate_exponential_histograms_merges_buckets() -> None:
    req = run_metrics('aggregate_on_attributes("sum", []) where metric.name == "http.client.duration.exp"')
    [dp] = metrics(req)["http.client.duration.exp"].exponential_histogram.data_points
    assert (dp.count, dp.sum, dp.zero_count, dp.min, dp.max) == (11, 61.5, 1, 0.0, 40.0)
    # The second point starts lower: its non-empty buckets go in front (the Collector's merge).
    assert (dp.positive.offset, list(dp.positive.bucket_counts)) == (-1, [2, 1, 1, 2, 3, 0, 1])


def test_aggregate_on_summary_fails_and_attribute_value_empties_it() -> None:
    errors: list[str] = []
    run_metrics('aggregate_on_attributes("sum") where metric.name == "rpc.latency.summary"', errors=errors)
    assert errors and "does not support aggregating Summary metrics" in errors[0]
    req = run_metrics('aggregate_on_attribute_value("sum", "rpc", ["Get"], "x") where metric.name == '
                      '"rpc.latency.summary"')
    summary = metrics(req)["rpc.latency.summary"]
    assert summary.WhichOneof("data") == "summary" and not summary.summary.data_points


def test_aggregate_on_attribute_value() -> None:
    req = run_metrics(
        ContextStatements(context="datapoint", statements=(
            'keep_keys(datapoint.attributes, ["http.method"]) where metric.name == "http.server.requests"',)),
        ContextStatements(context="metric", statements=(
            'aggregate_on_attribute_value("sum", "http.method", ["GET", "PUT"], "X") where metric.name == '
            '"http.server.requests"',)))
    dps = metrics(req)["http.server.requests"].sum.data_points
    assert [(attrs(dp), dp.as_int) for dp in dps] == [({"http.method": "X"}, 40), ({"http.method": "POST"}, 20)]


# ---------------------------------------------------------------- exponential to explicit histograms

def test_convert_exponential_histogram_to_histogram() -> None:
    req = run_metrics('convert_exponential_histogram_to_histogram("upper", [1.5, 3.0, 6.0, 12.0, 24.0]) '
                      'where metric.unit == "ms"')
    hist = metrics(req)["http.client.duration.exp"]
    assert hist.WhichOneof("data") == "histogram" and hist.histogram.aggregation_temporality == 2
    a, b = hist.histogram.data_points
    assert list(a.explicit_bounds) == [1.5, 3.0, 6.0, 12.0, 24.0]
    # (2,4] -> 6, (4,8] -> 12, (8,16] -> 24, (32,64] above the last bound -> the last bucket.
    assert list(a.bucket_counts) == [0, 0, 1, 2, 4]
    assert (a.count, a.sum, a.min, a.max, attrs(a)) == (8, 61.5, 0.0, 40.0, {"peer": "a"})
    # (0.5,1] -> 1.5, (2,4] -> 6.
    assert list(b.bucket_counts) == [2, 0, 1, 0, 0]


@pytest.mark.parametrize(("name", "bounds", "want"), [
    # (2,4] midpoint 3 -> the bucket below 3.0; (4,8] -> below 6.0; (8,16] -> below 12.0; (32,64] -> last.
    ("midpoint", [1.5, 3.0, 6.0, 12.0, 24.0], [1, 2, 3, 0, 1]),
    # The zero bucket to the first (bound 0.0); each bucket spread over the bounds it spans, the
    # remainder to the first of them.
    ("uniform", [0.0, 3.0, 6.0, 12.0, 24.0], [1, 1, 1, 3, 2]),
])
def test_bucket_distributions(name: str, bounds: list[float], want: list[int]) -> None:
    from pipelines.ottl.functions.metrics import _DISTRIBUTIONS
    dp = inputs.make_metrics().resource_metrics[0].scope_metrics[0].metrics[-1].exponential_histogram.data_points[0]
    assert bucket_counts(dp, bounds, _DISTRIBUTIONS[name]) == want


def test_random_distribution_keeps_the_count() -> None:
    from pipelines.ottl.functions.metrics import _DISTRIBUTIONS
    dp = inputs.make_metrics().resource_metrics[0].scope_metrics[0].metrics[-1].exponential_histogram.data_points[0]
    assert sum(bucket_counts(dp, [1.5, 3.0, 6.0, 12.0, 24.0], _DISTRIBUTIONS["random"])) == 7


# ---------------------------------------------------------------- delete_index, stringify_all

@pytest.mark.parametrize(("args", "want"), [
    ("1, 3", ["a", "d", "e"]), ("0", ["b", "c", "d", "e"]), ("0, 5", []), ("4, 5", ["a", "b", "c", "d"]),
    ("2, 2", ["a", "b", "c", "d", "e"]),
])
def test_delete_index(args: str, want: list[str]) -> None:
    env = make_env()
    compile_statement('set(attributes["l"], ["a", "b", "c", "d", "e"])', "span").run(env)
    compile_statement(f'delete_index(attributes["l"], {args})', "span").run(env)
    found = anyvalue.get(env.item.attributes, "l")
    assert found is not None and anyvalue.to_raw(found) == want


@pytest.mark.parametrize(("args", "message"), [
    ("5", "startIndex 5 out of bounds for slice of length 5"), ("-1", "startIndex -1 out of bounds"),
    ("3, 2", "endIndex 2 cannot be less than startIndex 3"), ("1, 6", r"deletion range \[1:6\] out of bounds"),
])
def test_delete_index_errors(args: str, message: str) -> None:
    env = make_env()
    compile_statement('set(attributes["l"], ["a", "b", "c", "d", "e"])', "span").run(env)
    with pytest.raises(EvalError, match=message):
        compile_statement(f'delete_index(attributes["l"], {args})', "span").run(env)


def test_delete_index_needs_a_slice() -> None:
    with pytest.raises(EvalError, match=r"expected pcommon\.Slice but got string"):
        compile_statement('delete_index(attributes["s"], 0)', "span").run(make_env())
    with pytest.raises(OttlError, match="must be a path"):
        compile_statement('delete_index(Split("a,b", ","), 0)', "span")


def test_stringify_all() -> None:
    env = make_env()
    compile_statement('set(attributes["m"], {"z": "<b>&", "a": [1, 2.5, true, nil]})', "span").run(env)
    compile_statement('set(attributes["raw"], 0x00ff10)', "span").run(env)
    compile_statement("stringify_all(attributes)", "span").run(env)
    got = {kv.key: (kv.value.WhichOneof("value"), anyvalue.to_raw(kv.value)) for kv in env.item.attributes}
    assert got == {
        "s": ("string_value", "héllo wörld"), "i": ("string_value", "42"), "d": ("string_value", "2.5"),
        "b": ("string_value", "true"), "empty": ("string_value", ""),
        "m": ("string_value", '{"a":[1,2.5,true,null],"z":"<b>&"}'),
        "raw": ("string_value", "AP8Q"),
    }


# ---------------------------------------------------------------- ParseSeverity

_LEVELS = ('{"error": [{"range": "5xx"}], "warn": [{"range": {"min": 400, "max": 499}}], '
           '"info": [{"equals": ["ok", "fine"]}, {"range": "2xx"}]}')


@pytest.mark.parametrize(("value", "want"), [
    ("503", "error"), ("404", "warn"), ("200", "info"), ('"fine"', "info"), ('"ok"', "info"),
])
def test_parse_severity(value: str, want: str) -> None:
    assert ev(f"ParseSeverity({value}, {_LEVELS})") == want


@pytest.mark.parametrize(("value", "mapping", "message"), [
    ("100", _LEVELS, "no matching log level found for value '100'"),
    ("true", _LEVELS, "unsupported value type: bool"),
    ("200", '{"x": [{"range": "6xx"}]}', "unknown range placeholder: 6xx"),
    ("200", '{"x": [{"range": {"min": 1}}]}', "range must have a max value"),
    ("200", '{"x": [{"equals": [1]}]}', "equals values must be strings"),
    ("200", '{"x": "y"}', "severity mapping criteria must be"),
    ("200", 'attributes["m"]', "severity mapping must be a literal PMap"),
])
def test_parse_severity_errors(value: str, mapping: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        ev(f"ParseSeverity({value}, {mapping})")


# ---------------------------------------------------------------- ParseXML

def test_parse_xml_shapes_elements_as_maps() -> None:
    from pipelines.ottl.functions.xml_funcs import parse_xml
    doc = ('<?xml version="1.0"?><!-- c --><Log x:id="1" xmlns:x="urn:x"><User><ID>7</ID>'
           '<Name type="first">Joe &amp; co</Name><Empty/></User>\n one <!-- c --> two <![CDATA[ <r> ]]>three</Log>')
    assert parse_xml(doc) == {
        "tag": "Log", "content": "onetwo<r>three", "attributes": {"id": "1", "x": "urn:x"},
        "children": [{"tag": "User", "children": [
            {"tag": "ID", "content": "7"}, {"tag": "Name", "content": "Joe & co", "attributes": {"type": "first"}},
            {"tag": "Empty"}]}],
    }


@pytest.mark.parametrize(("doc", "message"), [
    ("<a>1</a>\n", "trailing bytes"), ("<a/><!-- after -->", "trailing bytes"), ("<a><b></a>", "unmarshal xml"),
    ("", "unmarshal xml"), ('<?xml version="1.0" encoding="ISO-8859-1"?><a/>', "ISO-8859-1"),
    ("<a:b:c/>", "syntax error"),
])
def test_parse_xml_refusals(doc: str, message: str) -> None:
    from pipelines.ottl.functions.xml_funcs import parse_xml
    with pytest.raises(ValueError, match=message):
        parse_xml(doc)


def test_parse_xml_converter_returns_a_map() -> None:
    assert ev('ParseXML("<a k=\\"v\\">x</a>")') == {"tag": "a", "content": "x", "attributes": {"k": "v"}}
    with pytest.raises(EvalError, match="trailing bytes"):
        ev('ParseXML("<a/> ")')


# ---------------------------------------------------------------- CommunityID

@pytest.mark.parametrize(("args", "want"), [
    # The Community ID specification's test vector, and the same flow the other way round.
    ('"128.232.110.120", 34855, "66.35.250.204", 80', "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ('"66.35.250.204", 80, "128.232.110.120", 34855, "TCP", 0', "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
])
def test_community_id(args: str, want: str) -> None:
    assert ev(f"CommunityID({args})") == want


def test_community_id_mapped_ipv4_is_ipv4() -> None:
    assert ev('CommunityID("::ffff:10.0.0.1", 1, "10.0.0.2", 2)') == ev('CommunityID("10.0.0.1", 1, "10.0.0.2", 2)')


@pytest.mark.parametrize(("args", "message"), [
    ('"10.0.0.1", 70000, "10.0.0.2", 1', "source port must be between 0 and 65535, got 70000"),
    ('"10.0.0.1", 1, "10.0.0.2", -1', "destination port must be between"),
    ('"10.0.0.256", 1, "10.0.0.2", 1', "invalid source IP: 10.0.0.256"),
    ('"fe80::1%eth0", 1, "10.0.0.2", 1', "invalid source IP"),
    ('"10.0.0.1", 1, "10.0.0.2", 1, "GRE"', "unsupported protocol: GRE"),
    ('"10.0.0.1", 1, "10.0.0.2", 1, "TCP", 65536', "seed must be between 0 and 65535"),
])
def test_community_id_errors(args: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        ev(f"CommunityID({args})")
