"""The OTTL subset: tokens and literals, refusals (each naming what it refuses), paths per context,
the comparison rules, converters, context inference, runtime errors, and the request context."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipelines.batch import RequestContext
from pipelines.ottl.compile import compile_route, infer_context
from pipelines.ottl.contexts import Env
from pipelines.ottl.grammar import Literal, parse_condition
from pipelines.ottl.lexer import OttlError, tokenize
from pipelines.ottl.values import EvalError, compare
from pipelines.processors import anyvalue
from tests.processors.build import put_attrs

SPAN_ATTRS: dict[str, Any] = {
    "s": "text", "i": 42, "d": 2.5, "b": True, "arr": ["x", 7], "m": {"inner": "v", "n": 1},
    "empty": None,
}


def span_env(attrs: dict[str, Any] | None = None, resource: dict[str, Any] | None = None, name: str = "GET /api",
             kind: int = 2, status: int = 0, scope: str = "lib", ctx: RequestContext | None = None) -> Env:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    put_attrs(rs.resource.attributes, resource if resource is not None else {"service.name": "cart"})
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope, "1.2"
    span = ss.spans.add()
    span.name = name
    span.kind = kind  # type: ignore[assignment]
    span.status.code = status  # type: ignore[assignment]
    span.trace_id, span.span_id = bytes(range(1, 17)), b"\x00" * 8
    put_attrs(span.attributes, SPAN_ATTRS if attrs is None else attrs)
    span.attributes.add(key="bytes").value.bytes_value = b"\x0a\xff"
    env = Env(ctx or RequestContext())
    env.resource, env.scope, env.item = rs, ss, span
    return env


def log_env(body: Any, severity: int = 9, text: str = "INFO") -> Env:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    put_attrs(rl.resource.attributes, {"service.name": "cart"})
    sl = rl.scope_logs.add()
    rec = sl.log_records.add(severity_number=severity, severity_text=text)
    if body is not None:
        rec.body.CopyFrom(anyvalue.from_raw(body))
    env = Env(RequestContext())
    env.resource, env.scope, env.item = rl, sl, rec
    return env


def point_env() -> Env:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    sm = rm.scope_metrics.add()
    m = sm.metrics.add(name="http.requests", unit="1")
    m.sum.aggregation_temporality = 2  # type: ignore[assignment]
    m.sum.is_monotonic = True
    dp = m.sum.data_points.add(as_int=5)
    put_attrs(dp.attributes, {"route": "/a"})
    env = Env(RequestContext())
    env.resource, env.scope, env.item, env.point = rm, sm, m, dp
    return env


def holds(cond: str, env: Env, context: str = "span") -> bool:
    predicate = compile_route(cond, "condition", context).predicate
    assert predicate is not None
    return predicate(env)


def refusal(cond: str, context: str = "span", form: str = "condition") -> str:
    with pytest.raises(OttlError) as info:
        compile_route(cond, form, context)
    return str(info.value)


# ---------------------------------------------------------------- tokens and literals

def test_string_escapes_follow_go_unquote() -> None:
    [tok, _] = tokenize(r'"a\"b\\c\n\t\x41\u00e9\101"')
    assert tok.value == 'a"b\\c\n\tAéA'


def test_numbers_bytes_and_signs() -> None:
    kinds = [(t.kind, t.value) for t in tokenize("-12 3.5 -.5 0x0aff 7")][:-1]
    assert kinds == [("int", -12), ("float", 3.5), ("float", -0.5), ("bytes", b"\x0a\xff"), ("int", 7)]


def test_keywords_and_literals_parse() -> None:
    assert parse_condition("true") == Literal("bool", True)
    assert parse_condition('nil == nil') == parse_condition("nil==nil")


@pytest.mark.parametrize(("cond", "message"), [
    ('attributes["s"] ==', "unexpected end of input, expected a value"),
    ('"a" + 1 == 43', "the string literal cannot be used in a math expression"),
    ('IsMatch(target=name, "x")', "positional arguments cannot come after named arguments"),
    ('IsMatch(name, "x", pattern="y")', 'the parameter "pattern" is given twice'),
    ('IsMatch(name, nope="y")', 'IsMatch: no parameter named "nope"'),
    ('Foo(name) == true', 'unknown function "Foo" at col 1'),
    ('set(name, "x") == true', "converter names must start with an uppercase letter but got 'set'"),
    ('attributes[true] == "x"', "a key must be a string, an int, a path or a converter"),
    ('isMatch(name, "x")', "converter names must start with an uppercase letter but got 'isMatch'"),
    ('attributes["s"]', "expected a comparison operator after attributes[\"s\"]"),
    ('name == "open', "unterminated string literal"),
    (r'name == "a\q"', r"invalid escape \q"),
    ('name == "x" and', "unexpected end of input"),
    ('name # "x"', "unexpected character '#'"),
    ("dropped_attributes_count == 9223372036854775808", "does not fit in 64 bits"),
    ('name == Get', "enum symbol Get is not defined"),
    ('spanName == "x"', "invalid path segment 'spanName'"),
    ('not not name == "x"', "unexpected 'not'"),
    ('name == 0x0', "odd number of hex digits"),
])
def test_syntax_refusals_name_what_is_refused(cond: str, message: str) -> None:
    assert message in refusal(cond)


@pytest.mark.parametrize(("stmt", "message"), [
    ('set(attributes["a"], "b") where name == "x"', "unsupported function 'set'"),
    ('Route() where name == "x"', "editor names must start with a lowercase letter but got 'Route'"),
    ('route("traces/a") where name == "x"', "route() with arguments"),
    ('route()[0] where name == "x"', "only paths and converters may be indexed, not editors"),
    ('route() when name == "x"', "unexpected 'when'"),
    ('route() where Foo(name)', 'unknown function "Foo"'),
])
def test_statement_refusals(stmt: str, message: str) -> None:
    assert message in refusal(stmt, form="statement")


@pytest.mark.parametrize(("cond", "context", "message"), [
    ("foo == 1", "resource", 'unsupported path "foo" in the "resource" context'),
    ('name == "x"', "resource", 'unsupported path "name" in the "resource" context'),
    ('span.name == "x"', "resource", 'path "span.name" is not available in the "resource" context'),
    ('log.body == "x"', "span", 'path "log.body" is not available in the "span" context'),
    ('name["x"] == "a"', "span", 'path "name["x"]" cannot be indexed'),
    ("kind == SPAN_KIND_FOO", "span", "enum symbol SPAN_KIND_FOO is not defined"),
    ('attributes["s"] == SPAN_KIND_SERVER', "resource", "enum symbol SPAN_KIND_SERVER is not defined"),
    ('IsMatch(name, "(")', "span", "IsMatch: the pattern supplied to IsMatch is not a valid regexp pattern"),
    ("IsMatch(name, name)", "span", 'IsMatch: the argument "pattern" must be a string literal'),
    ("IsMatch(name)", "span", "IsMatch: incorrect number of arguments. Expected: 2 Received: 1"),
    ('events == 1', "span", 'unsupported path "events"'),
    ('status["x"].code == 1', "span", "only the last segment may be indexed"),
])
def test_path_function_and_enum_refusals(cond: str, context: str, message: str) -> None:
    assert message in refusal(cond, context)


# ---------------------------------------------------------------- comparison rules

@pytest.mark.parametrize(("a", "b", "op", "want"), [
    (None, None, "==", True), (None, None, "!=", False), (None, None, "<=", True), (None, None, "<", False),
    ("a", None, "==", False), ("a", None, "!=", True), (None, 3, ">", False), (None, 3, "!=", True),
    (1, 2, "<", True), (1, 2.5, "<", True), (2, 2.0, "==", True), (3.5, 3, ">=", True),
    (2**53 + 1, float(2**53), "==", True),  # Go compares an int with a float as float64
    ("a", "b", "<", True), ("10", "9", "<", True), ("b", "a", ">=", True),
    ("1", 1, "==", False), ("1", 1, "!=", True), ("1", 2, "<", False), ("1", 2, ">", False),
    (True, 1, "==", False), (False, True, "<", True), (True, True, "<=", True),
    (b"\x01", b"\x02", "<", True), (b"\x01", "01", "==", False),
])
def test_comparison_rules(a: Any, b: Any, op: str, want: bool) -> None:
    assert compare(a, b, op) is want


@pytest.mark.parametrize(("cond", "want"), [
    ('attributes["s"] == "text"', True), ('attributes["s"] != "text"', False),
    ('attributes["i"] == 42', True), ('attributes["i"] > 41.5', True), ('attributes["i"] <= 41', False),
    ('attributes["d"] >= 2.5', True), ('attributes["d"] < 2', False), ('attributes["b"] == true', True),
    ('attributes["i"] == "42"', False), ('attributes["i"] != "42"', True), ('attributes["s"] < 5', False),
    ('attributes["missing"] == nil', True), ('attributes["missing"] != "x"', True),
    ('attributes["empty"] == nil', True),
    ('attributes["arr"][0] == "x"', True), ('attributes["arr"][1] == 7', True),
    ('attributes["m"]["inner"] == "v"', True), ('attributes["m"]["nope"] == nil', True),
    ('attributes["bytes"] == 0x0aff', True),
    ('attributes == nil', False), ('attributes["m"] == attributes["m"]', True),
    ('attributes["m"] < attributes["m"]', False), ('attributes["arr"] != attributes["m"]', True),
    ('name == "GET /api" and kind == SPAN_KIND_SERVER', True), ("kind == 2", True),
    ("status.code == STATUS_CODE_UNSET", True), ('trace_id.string == "0102030405060708090a0b0c0d0e0f10"', True),
    ('span_id.string == "0000000000000000"', True), ('instrumentation_scope.name == "lib"', True),
    ('scope.version == "1.2"', True),
    ('resource.attributes["service.name"] == "cart"', True), ('span.attributes["s"] == "text"', True),
    ('not (name == "x" or kind != 2)', True), ('name == "x" or kind == 2 and attributes["b"] == false', False),
    ("true and not false", True),
])
def test_span_conditions(cond: str, want: bool) -> None:
    assert holds(cond, span_env()) is want


def test_and_or_short_circuit_like_ottl() -> None:
    bad = 'attributes["s"]["k"] == "x"'  # indexing a string: an error when evaluated
    assert holds(f'name == "GET /api" or {bad}', span_env()) is True
    assert holds(f'name == "nope" and {bad}', span_env()) is False
    with pytest.raises(EvalError, match="type Str does not support string indexing"):
        holds(f'name == "nope" or {bad}', span_env())


# ---------------------------------------------------------------- converters

@pytest.mark.parametrize(("cond", "want"), [
    ('IsMatch(name, "ET")', True),  # Go MatchString is a search
    ('IsMatch(name, "^ET")', False), ('IsMatch(name, "^GET /a.*$")', True),
    ('IsMatch(attributes["missing"], ".*")', False),  # nil never matches
    ('IsMatch(attributes["i"], "^42$")', True), ('IsMatch(attributes["b"], "^true$")', True),
    ('IsMatch(attributes["bytes"], "^0aff$")', True), ('IsMatch(attributes["d"], "^2.5$")', True),
    ('IsMatch(attributes["m"], "^\\\\{\\"inner\\":\\"v\\",\\"n\\":1\\\\}$")', True),
    ('IsMatch(attributes["arr"], "^\\\\[\\"x\\",7\\\\]$")', True),
    ('IsMatch(name, "(?<verb>GET)")', True),  # Go's named-group spelling
    ('IsString(attributes["s"])', True), ('IsString(attributes["i"])', False),
    ('IsString(attributes["missing"])', False),
    ('IsInt(attributes["i"])', True), ('IsInt(attributes["b"])', False), ('IsDouble(attributes["d"])', True),
    ('IsBool(attributes["b"])', True), ('IsMap(attributes["m"])', True), ('IsList(attributes["arr"])', True),
    ('IsList(attributes["m"])', False), ('IsMatch(name, "GET") == true', True),
])
def test_converters(cond: str, want: bool) -> None:
    assert holds(cond, span_env()) is want


# ---------------------------------------------------------------- logs and metrics

@pytest.mark.parametrize(("body", "cond", "want"), [
    ("disk full", 'body == "disk full"', True),
    ("disk full", 'IsMatch(body, "full")', True),
    ({"level": "error"}, 'body["level"] == "error"', True),
    ({"level": "error"}, 'IsMatch(body.string, "error")', True),
    (None, "body == nil", True),
    (None, 'body.string == ""', True),
    ("x", "severity_number < SEVERITY_NUMBER_ERROR", True),
    ("x", 'severity_text == "INFO" and log.severity_number == SEVERITY_NUMBER_INFO', True),
    ("x", 'resource.attributes["service.name"] == "cart"', True),
])
def test_log_conditions(body: Any, cond: str, want: bool) -> None:
    assert holds(cond, log_env(body), "log") is want


@pytest.mark.parametrize(("body", "message"), [
    ("plain text", "type Str does not support string indexing"),
    (None, "type Empty does not support string indexing"),
    ({"list": [1]}, "index 3 out of bounds"),
    ({"list": [1]}, "unable to resolve an integer index in slice: invalid key type"),
])
def test_runtime_errors(body: Any, message: str) -> None:
    cond = {"index 3 out of bounds": 'body["list"][3] == 1',
            "unable to resolve an integer index in slice: invalid key type": 'body["list"]["x"] == 1'}.get(
        message, 'body["level"] == "error"')
    with pytest.raises(EvalError, match=message.replace("[", r"\[")):
        holds(cond, log_env(body), "log")


def test_metric_and_datapoint_paths() -> None:
    env = point_env()
    assert holds('name == "http.requests" and type == METRIC_DATA_TYPE_SUM', env, "metric")
    assert holds("aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE and is_monotonic == true", env,
                 "metric")
    assert holds('attributes["route"] == "/a" and value_int == 5 and value_double == 0.0', env, "datapoint")
    assert holds('metric.name == "http.requests" and count == nil', env, "datapoint")


# ---------------------------------------------------------------- context inference

@pytest.mark.parametrize(("cond", "context"), [
    ('span.name == "x"', "span"),
    ('span.name == "x" and resource.attributes["k"] == "v"', "span"),
    ('resource.attributes["k"] == "v"', "resource"),
    ('attributes["k"] == "v"', "resource"),
    ("true", "resource"),
    ('log.body == "x"', "log"),
    ('metric.name == "m"', "metric"),
    ('datapoint.attributes["a"] == "b" and metric.name == "m"', "datapoint"),
])
def test_context_inference(cond: str, context: str) -> None:
    assert infer_context(parse_condition(cond)) == context
    assert compile_route(cond, "condition", "").context == context


def test_inference_refusals() -> None:
    mixed = 'span.name == "a" and log.body == "b"'
    assert "paths of the 'log' and 'span' contexts cannot be mixed" in refusal(mixed, "")
    # An unqualified path makes it a resource condition, where span paths are not readable (as in the Collector).
    assert 'path "span.name" is not available in the "resource" context' in refusal(
        'span.name == "a" and attributes["k"] == "v"', "")
    assert 'path "scope.name" is not available in the "resource" context' in refusal('scope.name == "a"', "")


# ---------------------------------------------------------------- request context

def request_holds(cond: str, tenant: str | None = None, **headers: tuple[str, ...]) -> bool:
    predicate = compile_route(cond, "condition", "request").predicate
    assert predicate is not None
    return predicate(Env(RequestContext(tenant, {k.replace("_", "-"): v for k, v in headers.items()})))


def test_request_conditions_match_any_value_of_the_header() -> None:
    assert request_holds('request["X-Tenant"] == "acme"', x_tenant=("ecorp", "acme"))
    assert not request_holds('request["X-Tenant"] == "acme"', x_tenant=("ecorp",))
    assert request_holds('request["x-tenant"] != "acme"', x_tenant=("acme", "ecorp"))
    # Without a value neither == nor != holds, as in the Collector; nil tests presence.
    assert not request_holds('request["X-Tenant"] == "acme"')
    assert not request_holds('request["X-Tenant"] != "acme"')
    assert request_holds('request["X-Tenant"] == nil')
    assert request_holds('"acme" == request["X-Tenant"] and request["X-Tenant"] != nil', x_tenant=("acme",))


def test_request_extension_auth_tenant_boolean_operators_and_ismatch() -> None:
    assert request_holds('request["auth.tenant"] == "team-a"', tenant="team-a")
    assert not request_holds('request["auth.tenant"] == "team-a"')
    assert request_holds('request["auth.tenant"] == nil')
    assert request_holds('request["a"] == "1" or (request["b"] == "2" and not request["c"] == "3")', b=("2",))
    assert request_holds('IsMatch(request["x-tenant"], "^ac")', x_tenant=("acme",))


@pytest.mark.parametrize(("cond", "form", "message"), [
    ('route() where request["a"] == "b"', "statement", "\"request\" context requires a 'condition'"),
    ('attributes["a"] == "b"', "condition", 'unsupported path "attributes["a"]" in the "request" context'),
    ('request["a"] == 1', "condition", 'compare request["<name>"] with a string literal or nil'),
    ('request["a"] < nil', "condition", "only == and != compare with nil"),
    ('IsString(request["a"])', "condition", "unsupported function 'IsString' in the \"request\" context"),
])
def test_request_refusals(cond: str, form: str, message: str) -> None:
    assert message in refusal(cond, "request", form)
