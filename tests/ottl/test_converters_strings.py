"""String and type converters through compiled statements over a span (values, nil, type errors,
unicode, empty strings), and the unsupported-function list kept in step with the registry."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from pipelines.batch import RequestContext
from pipelines.ottl.compile import compile_condition, compile_statement
from pipelines.ottl.contexts import Env
from pipelines.ottl.functions.registry import FUNCTIONS
from pipelines.ottl.functions.strings import go_sprintf, to_camel, to_snake
from pipelines.ottl.functions.unsupported import COLLECTOR_FUNCTIONS, unsupported
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import EvalError
from pipelines.processors import anyvalue


def make_env() -> Env:
    rs = ResourceSpans()
    ss = rs.scope_spans.add()
    sp = ss.spans.add(name="GET /health")
    for key, raw in (("s", "héllo wörld"), ("i", 42), ("d", 2.5), ("b", True), ("empty", "")):
        kv = sp.attributes.add()
        kv.key = key
        kv.value.CopyFrom(anyvalue.from_raw(raw))
    env = Env(RequestContext())
    env.resource, env.scope, env.item = rs, ss, sp
    return env


def ev(expr: str, env: Env | None = None) -> Any:
    """The raw value `expr` sets into an attribute (None when it sets nothing)."""
    env = env or make_env()
    compile_statement(f'set(attributes["out"], {expr})', "span").run(env)
    found = anyvalue.get(env.item.attributes, "out")
    return None if found is None else anyvalue.to_raw(found)


def cond(text: str, env: Env | None = None) -> bool:
    return compile_condition(text, "span")(env or make_env())


@pytest.mark.parametrize(("expr", "want"), [
    ('Concat(["a", 1, 2.5, true, nil], "-")', "a-1-2.5-true-<nil>"),
    ('Concat([attributes["s"], name], ": ")', "héllo wörld: GET /health"),
    ('Concat([], ",")', ""),
    ('ConvertCase("MyMetricName", "snake")', "my_metric_name"),
    ('ConvertCase("my_metric", "camel")', "MyMetric"),
    ('ConvertCase("MY_metric", "lower")', "my_metric"),
    ('ConvertCase("", "upper")', ""),
    ('ToUpperCase(attributes["s"])', "HÉLLO WÖRLD"),
    ('ToUpperCase("straße")', "STRAßE"),
    ('ToLowerCase("ÀB")', "àb"),
    ('ToSnakeCase("HTTPServerName")', "http_server_name"),
    ('ToSnakeCase("JSONData2Go")', "json_data_2_go"),
    ('ToSnakeCase("  some-name.with space ")', "some_name_with_space"),
    ('ToCamelCase("my_metric.name-v2")', "MyMetricNameV2"),
    ('ToCamelCase("HTTPServer")', "Httpserver"),  # strcase lowers a capital after a capital
    ('ToCamelCase("héllo_wörld")', "HlloWrld"),
    ('Trim("  hi  ")', "hi"),
    ('Trim("!!a!b!!", "!")', "a!b"),
    ('Trim("abcba", "ab")', "c"),
    ('TrimPrefix("ingest_service", "ingest_")', "service"),
    ('TrimPrefix("service", "ingest_")', "service"),
    ('TrimSuffix("ingest_service", "_service")', "ingest"),
    ('Split("a,b,,c", ",")', ["a", "b", "", "c"]),
    ('Split("", ",")', [""]),
    ('Split("héllo", "")', ["h", "é", "l", "l", "o"]),
    ('Substring("123456789", 0, 3)', "123"),
    ('Substring("123456789", 6, 3)', "789"),
    ('Substring(attributes["s"], 0, 3)', "hé"),
    ('Substring("一二三", 0, 4, true)', "一"),
    ('Substring("一二三", 1, 6, true)', "二"),
    ('Index("hello world", "world")', 6),
    ('Index("héllo", "l")', 3),
    ('Index("hello", "z")', -1),
    ('Index(ParseJSON("[1, \\"b\\"]"), "b")', 1),
    ('Index(ParseJSON("[1, 2]"), 2)', 1),
    ('Hex("1")', "31"),
    ('Hex(12)', "000000000000000c"),
    ('Hex(true)', "01"),
    ('Hex(1.1)', "3ff199999999999a"),
    ('Hex(nil)', ""),
    ('Format("%02d-%s", [7, "x"])', "07-x"),
    ('Format("%d", [])', "%!d(MISSING)"),
    ('Format("%s", ["a", 1])', "a%!(EXTRA int64=1)"),
    ('Format("%d", ["a"])', "%!d(string=a)"),
    ('Format("%v|%v|%v", [1.5, 1000000.0, nil])', "1.5|1e+06|<nil>"),
    ('Format("%.2f|%5.1f|%-4d|%x|%X|%t", [3.14159, 2.25, 7, 255, "hi", true])', "3.14|  2.2|7   |ff|6869|true"),
    ('ToKeyValueString({"k2":"v=2","k1":"v1"}, "=", " ", true)', 'k1=v1 k2="v=2"'),
    ('ToKeyValueString({"k":"say \\"x\\""})', 'k="say \\"x\\""'),
    ('ToKeyValueString({"k":"a\\"b"})', 'k=a\\"b'),
    ('ToKeyValueString({"a":[1,2],"b":2.5}, ":", ",")', 'a:"[1,2]",b:2.5'),
    ('ExtractPatterns("GIT_SHA=abc123 x", "GIT_SHA=(?P<git.sha>\\\\w+)")', {"git.sha": "abc123"}),
    ('ExtractPatterns("xyz", "a(?<n>b)?")', {}),
    ('ExtractPatterns("ac", "a(?<n>b)?c")', {"n": ""}),
])
def test_string_converters(expr: str, want: Any) -> None:
    assert ev(expr) == want


@pytest.mark.parametrize(("expr", "want"), [
    ('IsString(attributes["s"])', True), ('IsString(attributes["i"])', False), ('IsString(nil)', False),
    ('IsInt(attributes["i"])', True), ('IsInt(attributes["b"])', False), ('IsInt(2.0)', False),
    ('IsDouble(attributes["d"])', True), ('IsDouble(attributes["i"])', False),
    ('IsBool(attributes["b"])', True), ('IsBool("true")', False),
    ('IsMap(attributes)', True), ('IsMap({"a": 1})', True), ('IsMap("x")', False),
    ('IsList([1, 2])', True), ('IsList(Split("a", ","))', True), ('IsList(attributes)', False),
    ('IsEmpty(attributes["missing"])', True), ('IsEmpty(attributes["empty"])', True),
    ('IsEmpty(attributes["s"])', False), ('IsEmpty(0)', True), ('IsEmpty([])', True), ('IsEmpty({})', True),
    ('IsMatch(attributes["s"], "wö")', True), ('IsMatch(attributes["s"], "^wö")', False),
    ('IsMatch(attributes["missing"], ".*")', False), ('IsMatch(attributes["i"], "^4[0-9]$")', True),
    ('IsMatch("Abc", "(?i)^abc$")', True),
    ('HasPrefix(name, "GET")', True), ('HasSuffix(name, "health")', True), ('HasSuffix(name, "GET")', False),
    ('IsValidLuhn("17893729974")', True), ('IsValidLuhn(17893729975)', False), ('IsValidLuhn("")', False),
    ('IsValidLuhn("4539 3195 0343 6467")', True),
    ('IsRootSpan()', True),
])
def test_predicates(expr: str, want: bool) -> None:
    assert cond(expr) is want


@pytest.mark.parametrize(("expr", "message"), [
    ('Substring("abc", 1, 5)', "invalid range for substring function, start(1)+length(5) cannot be greater than "
                                "the length of target string(3)"),
    ('Substring("abc", -1, 1)', "invalid start for substring function, -1 cannot be negative"),
    ('Substring("abc", 0, 0)', "invalid length for substring function, 0 cannot be negative or zero"),
    ('Substring(attributes["i"], 0, 1)', "expected string but got int64"),
    ('ToUpperCase(attributes["missing"])', "expected string but got <nil>"),
    ('Split(attributes["i"], ",")', "expected string but got int64"),
    ('Index("abc", 1)', "when source is string, value must also be string"),
    ('Index(5, 1)', "source must be of type string or slice"),
    ('Index(Split("a,b", ","), "b")', "source must be of type string or slice"),
    ('IsValidLuhn("12a4")', 'strconv.Atoi: parsing "a": invalid syntax'),
    ('IsValidLuhn(attributes["missing"])', "invalid input: <nil>"),
])
def test_runtime_errors(expr: str, message: str) -> None:
    with pytest.raises(EvalError) as err:
        ev(expr)
    assert str(err.value) == message


@pytest.mark.parametrize(("expr", "fragment"), [
    ('ConvertCase("a", "kebab")', "invalid case: kebab, allowed cases are: lower, upper, snake, camel"),
    ('IsMatch("a", "(")', "the pattern supplied to IsMatch is not a valid regexp pattern"),
    ('ExtractPatterns("a", "(a)")', "at least 1 named capture group must be supplied in the given regex"),
    ('ToKeyValueString(attributes, "=", "=")', 'pair delimiter "=" cannot be equal to delimiter "="'),
    ('ToKeyValueString(attributes, "")', "delimiter cannot be set to an empty string"),
    ('IsMatch(attributes["s"], attributes["s"])', "must be a string literal"),
])
def test_config_errors(expr: str, fragment: str) -> None:
    with pytest.raises(OttlError) as err:
        compile_statement(f'set(attributes["out"], {expr})', "span")
    assert fragment in str(err.value)


def test_is_root_span_reads_parent() -> None:
    env = make_env()
    env.item.parent_span_id = b"\x00" * 8
    assert cond("IsRootSpan()", env) is True
    env.item.parent_span_id = bytes(range(1, 9))
    assert cond("IsRootSpan()", env) is False
    assert cond("not IsRootSpan()", env) is True


def test_strcase_details() -> None:
    assert to_snake("AnyKind of_string") == "any_kind_of_string"
    assert to_snake("ID") == "id"
    assert to_snake("version2") == "version_2"
    assert to_camel("AnyKind of_string") == "AnyKindOfString"
    assert to_camel("mySQL") == "MySql"
    assert to_camel("  ") == ""


def test_sprintf_details() -> None:
    assert go_sprintf("%5s|%-5s|%.2s", ["ab", "ab", "héllo"]) == "   ab|ab   |hé"
    assert go_sprintf("%+d|%05d|%x|%o|%b", [5, -42, -255, 8, 5]) == "+5|-0042|-ff|10|101"
    assert go_sprintf("%e|%g|%G", [123456.789, 1e-7, 2.5e21]) == "1.234568e+05|1e-07|2.5E+21"
    assert go_sprintf("%q|%v|%s", ["a\"b", [1, "x"], None]) == '"a\\"b"|[1 x]|%!s(<nil>)'
    assert go_sprintf("100%%", []) == "100%"
    assert go_sprintf("%v", [123456.0]) == "123456"
    assert go_sprintf("%v", [1234567.0]) == "1.234567e+06"
    assert go_sprintf("%v", [0.0001]) == "0.0001"
    assert go_sprintf("%v", [0.00001]) == "1e-05"


def test_unsupported_list_matches_registry() -> None:
    assert set(FUNCTIONS) & COLLECTOR_FUNCTIONS, "the registry is empty"
    assert set(unsupported(set(FUNCTIONS))) == COLLECTOR_FUNCTIONS - set(FUNCTIONS)
    assert not set(FUNCTIONS) - COLLECTOR_FUNCTIONS - {"Encode"}, "a function the Collector does not have"
    with pytest.raises(OttlError, match="not supported yet"):
        compile_statement('set(attributes["x"], GetXML("<a/>", "/a"))', "span")
