"""The bytes a condition needs (`pipelines.ottl.needles`): a condition ruled out by them holds for no
item of the request, and the filter passes such a request on without parsing it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.config.decode import Errors, decode
from pipelines.batch import EMPTY_CONTEXT, Batch
from pipelines.ottl.compile import compile_condition
from pipelines.ottl.contexts import Env
from pipelines.ottl.grammar import parse_condition
from pipelines.ottl.needles import Needs, necessary
from pipelines.ottl_processors import filter as flt

CONDITIONS = [
    'name == "GET /healthz"',
    'attributes["http.route"] == "/health"',
    'name == "a" and attributes["k"] == "b"',
    'name == "a" or attributes["k"] == "b"',
    'IsMatch(attributes["k"], "^b")',
    'resource.attributes["service.name"] == "a"',
    'span.name == "ab" and kind == SPAN_KIND_SERVER',
]


@pytest.mark.parametrize(("cond", "want"), [
    ('name == "GET /healthz"', Needs("all", (b"GET /healthz",))),
    ('attributes["http.route"] == "/health"', Needs("all", (b"/health", b"http.route"))),
    ('"x" == name', Needs("all", (b"x",))),
    ('name == "a" or attributes["k"] == "b"', Needs("any", (Needs("all", (b"a",)), Needs("all", (b"b", b"k"))))),
    ('IsMatch(attributes["k"], "^b")', Needs("all", (b"k",))),
    ('name != "a"', None),                            # true without the bytes
    ('attributes["k"] == nil', None),
    ('attributes["n"] == 5', None),                   # a number is not its decimal text on the wire
    ('not name == "a"', None),
    ('name == "a" or kind == 2', None),               # one alternative cannot be told
    ('attributes["a"]["b"] == "c"', None),             # a nested read may fail
    ('attributes["s"] + 1 == 2', None),               # may fail
    ('name == ""', None),
])
def test_what_a_condition_needs(cond: str, want: Needs | None) -> None:
    assert necessary(parse_condition(cond), "span") == want


_text = st.sampled_from(["", "a", "b", "ab", "GET /healthz", "/health", "k", "http.route", "ü"])


def _request(spans: list[tuple[str, dict[str, str]]], service: str) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    for name, attrs in spans:
        span = ss.spans.add(name=name, kind=2)
        for k, v in attrs.items():
            span.attributes.add(key=k).value.string_value = v
    return req


@settings(max_examples=300, deadline=None)
@given(spans=st.lists(st.tuples(_text, st.dictionaries(_text, _text, max_size=3)), min_size=1, max_size=4),
       service=_text)
def test_a_condition_ruled_out_holds_for_no_span(spans: list[tuple[str, dict[str, str]]], service: str) -> None:
    req = _request(spans, service)
    data = req.SerializeToString()
    env = Env(EMPTY_CONTEXT)
    env.resource = req.resource_spans[0]
    env.scope = env.resource.scope_spans[0]
    for cond in CONDITIONS:
        needs = necessary(parse_condition(cond), "span")
        if needs is None or needs.present(data):
            continue
        predicate = compile_condition(cond, "span")
        for span in env.scope.spans:
            env.item = span
            assert not predicate(env), f"{cond} holds for {span} though ruled out"


def _config(raw: dict[str, Any]) -> flt.Config:
    errors = Errors()
    cfg = decode(flt.Config, raw, "processors::filter", errors)
    assert cfg is not None and not errors, errors.lines
    return cfg


def test_filter_passes_a_request_its_conditions_cannot_match_unparsed() -> None:
    processor = flt.FilterProcessor(_config({"traces": {"span": ['name == "GET /healthz"',
                                                                  'attributes["http.route"] == "/health"']}}),
                                    "traces")
    data = _request([("GET /api", {"http.route": "/api"})], "shop").SerializeToString()
    batch = Batch("traces", data, 1)
    assert processor.process(batch) is batch
    assert batch._msg is None  # never parsed
    # With the bytes present, it is evaluated (and here drops the span).
    health = Batch("traces", _request([("GET /healthz", {})], "shop").SerializeToString(), 1)
    assert processor.process(health) is None
    # An empty scope, which filtering removes, is never passed on unparsed.
    req = _request([("GET /api", {})], "shop")
    req.resource_spans[0].scope_spans.add()
    out = processor.process(Batch("traces", req.SerializeToString(), 1))
    assert out is not None and len(out.message().resource_spans[0].scope_spans) == 1
