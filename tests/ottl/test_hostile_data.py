"""OTTL on hostile data and configs: what could take the process down or its event loop hostage.

- Regular expressions are RE2's (as in the Collector): Go's semantics, and no backtracking for a span's
  value to exploit; constructs RE2 lacks (lookaround, backreferences) are refused when the config loads.
- Anything a statement raises on the data (a value nested past the parser's depth, a converter's own
  failure) is that statement's error under `error_mode`, never the request's or the process's.
- `Format` refuses widths and precisions past a million, as Go's fmt does.
"""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.config.decode import Errors, decode
from pipelines.batch import Batch
from pipelines.errors import RetryableError
from pipelines.ottl.compile import compile_condition
from pipelines.ottl.functions.strings import go_sprintf
from pipelines.ottl.lexer import OttlError
from pipelines.ottl_processors import transform as tf
from tests.ottl.test_ottl import span_env


@pytest.mark.parametrize(("cond", "want"), [
    ('IsMatch("line\\n", "line$")', False),        # Go's $ is the end of the text, not before a final newline
    ('IsMatch("\u0663", "\\\\d")', False),           # \\d is ASCII only
    ('IsMatch("ab", "(?<x>a)b")', True),            # Go's spelling of a named group
    ('IsMatch("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "^(a|a)+$")', False),
])
def test_regexes_are_re2(cond: str, want: bool) -> None:
    assert compile_condition(cond, "span")(span_env()) is want


@pytest.mark.parametrize("pattern", ["(?=x)", "(?!x)", "(?<=x)", "(a)\\\\1"])
def test_constructs_re2_lacks_are_refused_at_load(pattern: str) -> None:
    with pytest.raises(OttlError, match="not a valid"):
        compile_condition(f'IsMatch(name, "{pattern}")', "span")


def _request(value: str) -> bytes:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(name="s")
    span.attributes.add(key="payload").value.string_value = value
    return req.SerializeToString()


def _config(raw: dict[str, object]) -> tf.Config:
    errors = Errors()
    cfg = decode(tf.Config, raw, "processors::transform", errors)
    assert cfg is not None and not errors, errors.lines
    return cfg


def test_a_value_nested_past_any_parser_is_the_statements_error() -> None:
    deep = "[" * 100_000
    statements = ['set(span.attributes["parsed"], ParseJSON(span.attributes["payload"]))',
                  'set(span.attributes["after"], true)']
    reports: list[str] = []
    out = tf.TransformProcessor(_config({"trace_statements": statements}), "traces", reports.append).process(
        Batch("traces", _request(deep), 1))
    assert out is not None
    attrs = {kv.key for kv in out.message().resource_spans[0].scope_spans[0].spans[0].attributes}
    assert attrs == {"payload", "after"} and len(reports) == 1
    with pytest.raises(RetryableError, match="failed to execute statement"):
        tf.TransformProcessor(_config({"error_mode": "propagate", "trace_statements": statements}), "traces").process(
            Batch("traces", _request(deep), 1))


def test_format_refuses_a_width_or_precision_past_a_million() -> None:
    assert go_sprintf("%*d", [10**9, 1]) == "%!(BADWIDTH)1"
    assert go_sprintf("%.*f", [2_000_000, 1.5]) == "%!(BADPREC)1.500000"
    assert go_sprintf("%2000000d", [1]) == "%!(NOVERB)%!(EXTRA int64=1)"
    assert go_sprintf("%*d", [5, 1]) == "    1"


def test_a_group_that_keeps_appending_what_it_visits_is_stopped() -> None:
    """`copy_metric()` with no where clause copies its own copies: the Collector never ends that request;
    here a scope may grow to APPEND_FACTOR times its size (plus a little), then what the group appended
    there is taken back, the failure reported under error_mode, and the next scope is done as usual."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    req = ExportMetricsServiceRequest()
    for _ in range(2):
        req.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
    reports: list[str] = []
    cfg = _config({"metric_statements": [{"context": "metric", "statements": ["copy_metric()"]}]})
    out = tf.TransformProcessor(cfg, "metrics", reports.append).process(
        Batch("metrics", req.SerializeToString(), 2))
    assert out is not None
    assert [len(rm.scope_metrics[0].metrics) for rm in out.message().resource_metrics] == [1, 1]
    assert len(reports) == 2 and "taken back" in reports[0]
    # A copy the where clause keeps from being copied again is fine.
    cfg = _config({"metric_statements": [{"context": "metric",
                                          "statements": ['copy_metric(name="m2") where metric.name == "m"']}]})
    out = tf.TransformProcessor(cfg, "metrics").process(Batch("metrics", req.SerializeToString(), 2))
    assert out is not None
    assert [[m.name for m in rm.scope_metrics[0].metrics] for rm in out.message().resource_metrics] == \
        [["m", "m2"], ["m", "m2"]]


def test_random_distribution_of_a_huge_count_is_bounded_work() -> None:
    from pipelines.ottl.functions.metrics import _random

    out = [0] * 5
    _random(2**62, 10.0, 0.5, [1.0, 2.0, 4.0, 8.0, 16.0], out)
    assert sum(out) == 2**62


def test_parse_xml_expands_no_declared_entity_and_bounds_depth() -> None:
    """Go's decoder expands no entity a document declares; expat would, and a few hundred bytes of
    nested entities grow to megabytes. A doctype without entities is fine, as in Go."""
    from pipelines.ottl.functions.xml_funcs import parse_xml

    bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>')
    with pytest.raises(ValueError, match="not expanded"):
        parse_xml(bomb)
    with pytest.raises(ValueError, match="nested deeper"):
        parse_xml("<a>" * 1000 + "</a>" * 1000)
    assert parse_xml("<!DOCTYPE note><note>hi</note>") == {"tag": "note", "content": "hi"}
