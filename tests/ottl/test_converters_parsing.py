"""Parsing and collection converters through compiled statements over a span: ParseJSON (numbers are
doubles), ParseKeyValue, ParseCSV, URL, conversions, Len, Keys/Values, Sort, SliceToMap, IDs."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.ottl.compile import compile_statement
from pipelines.ottl.contexts import Env
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import EvalError, SpanID, TraceID
from pipelines.processors import anyvalue
from tests.ottl.test_converters_strings import cond, ev, make_env


def test_parse_json_numbers_are_doubles() -> None:
    env = make_env()
    compile_statement('set(attributes["out"], ParseJSON("{\\"a\\":1,\\"b\\":[2,\\"x\\",null,true],\\"c\\":{}}"))',
                      "span").run(env)
    out = anyvalue.get(env.item.attributes, "out")
    assert out is not None
    a = anyvalue.get(out.kvlist_value.values, "a")
    assert a is not None and a.WhichOneof("value") == "double_value" and a.double_value == 1.0
    assert anyvalue.to_raw(out) == {"a": 1.0, "b": [2.0, "x", None, True], "c": {}}


@pytest.mark.parametrize(("expr", "want"), [
    ('ParseJSON("[1, \\"a\\"]")', [1.0, "a"]),
    ('ParseJSON("{\\"k\\": \\"\\\\u00e9\\", \\"k\\": 2}")', {"k": 2.0}),
    ('ParseJSON("{\\"big\\": 12345678901234567890}")', {"big": 12345678901234567890.0}),
    ('ParseJSON("{\\"a\\":1}")["a"]', 1.0),
    ('ParseKeyValue("k1=v1 k2=v2 k3=v3")', {"k1": "v1", "k2": "v2", "k3": "v3"}),
    ('ParseKeyValue("k1!v1_k2!v2", "!", "_")', {"k1": "v1", "k2": "v2"}),
    ('ParseKeyValue("a=\\"x y\\"  b=\'1=2\' ")', {"a": "x y", "b": "1=2"}),
    ('ParseKeyValue("é=ü ö=x")', {"é": "ü", "ö": "x"}),
    ('ParseCSV("999-999-9999,Joe Smith,joe@example.com", "phone,name,email")',
     {"phone": "999-999-9999", "name": "Joe Smith", "email": "joe@example.com"}),
    ('ParseCSV("a|b", "x|y", "|")', {"x": "a", "y": "b"}),
    ('ParseCSV("a|\\"b|c\\"", "x,y", "|", ",")', {"x": "a", "y": "b|c"}),
    ('ParseCSV("\\"a\\"\\"b\\",", "x,y")', {"x": 'a"b', "y": ""}),
    ('ParseCSV("a\\"b,c", "x,y", mode="lazyQuotes")', {"x": 'a"b', "y": "c"}),
    ('ParseCSV("\\"a,b\\",c", "x,y,z", mode="ignoreQuotes")', {"x": '"a', "y": 'b"', "z": "c"}),
    ('URL("http://www.example.com")', {"url.original": "http://www.example.com", "url.scheme": "http",
                                        "url.domain": "www.example.com", "url.path": ""}),
    ('URL("https://u:p%40ss@[::1]:8443/a%20b/c.tar.gz?q=1&r=2#frag")',
     {"url.original": "https://u:p%40ss@[::1]:8443/a%20b/c.tar.gz?q=1&r=2#frag", "url.scheme": "https",
      "url.domain": "::1", "url.path": "/a b/c.tar.gz", "url.port": 8443, "url.fragment": "frag",
      "url.user_info": "u:p%40ss", "url.username": "u", "url.password": "p@ss", "url.query": "q=1&r=2",
      "url.extension": "gz"}),
    ('URL("/relative/path.")', {"url.original": "/relative/path.", "url.scheme": "", "url.domain": "",
                                "url.path": "/relative/path."}),
    ('Int("42")', 42), ('Int(2.9)', 2), ('Int(-2.9)', -2), ('Int(true)', 1),
    ('Int(attributes["missing"])', None),
    ('Double("2.5")', 2.5), ('Double(3)', 3.0), ('Double(false)', 0.0),
    ('String(42)', "42"), ('String(2.5)', "2.5"), ('String(true)', "true"), ('String(nil)', None),
    ('String({"b": 1, "a": [1, "x"]})', '{"a":[1,"x"],"b":1}'),
    ('Bool("T")', True), ('Bool(0)', False), ('Bool(2.5)', True),
    ('Len("héllo")', 6), ('Len("")', 0), ('Len(attributes)', 5), ('Len([1, 2, 3])', 3),
    ('Len(Split("a,b", ","))', 2), ('Len(ParseJSON("[1,2]"))', 2),
    ('Keys({"k1": "v1", "k2": 2})', ["k1", "k2"]),
    ('Values({"k1": "v1", "k2": [1, 2], "k3": {"x": 1}})', ["v1", [1, 2], {"x": 1}]),
    ('Keys({})', []),
    ('Sort([3, 1, 2])', [1, 2, 3]), ('Sort([3, 1, 2], "desc")', [3, 2, 1]),
    ('Sort([3, 1.5, 2])', [1.5, 2.0, 3.0]),
    ('Sort(["b", "a", "B"])', ["B", "a", "b"]),
    ('Sort([true, "a", 1])', [1, "a", True]),
    ('Sort([])', []),
    ('Sort("abc")', "abc"),
    ('Sort(ParseJSON("[3, 1, 2]"))', [1.0, 2.0, 3.0]),
    ('SliceToMap(ParseJSON("[{\\"name\\":\\"foo\\",\\"value\\":2},{\\"name\\":\\"bar\\",\\"value\\":5}]"), ["name"])',
     {"foo": {"name": "foo", "value": 2.0}, "bar": {"name": "bar", "value": 5.0}}),
    ('SliceToMap(ParseJSON("[{\\"name\\":\\"foo\\",\\"value\\":2}]"), ["name"], ["value"])', {"foo": 2.0}),
    ('SliceToMap(ParseJSON("[{\\"a\\":{\\"b\\":\\"k\\"}}]"), ["a", "b"], ["a"])', {"k": {"b": "k"}}),
    ('SliceToMap(ParseJSON("[{\\"x\\":1},{\\"x\\":2}]"))', {"0": {"x": 1.0}, "1": {"x": 2.0}}),
    ('ContainsValue([1, 2, 3], 2)', True), ('ContainsValue([1, 2, 3], 2.0)', True),
    ('ContainsValue(["GET", "PUT"], "POST")', False), ('ContainsValue(ParseJSON("[\\"a\\"]"), "a")', True),
    ('Coalesce([attributes["missing"], attributes["i"], "x"])', 42),
    ('Coalesce([attributes["missing"], nil])', None),
    ('ParseInt("12345", 10)', 12345), ('ParseInt("0xAA", 0)', 170), ('ParseInt("AA", 16)', 170),
    ('ParseInt("-20", 8)', -16), ('ParseInt("0b1111_0000", 0)', 240), ('ParseInt("-0o123", 0)', -83),
    ('ParseInt("017", 0)', 15),
])
def test_values(expr: str, want: Any) -> None:
    assert ev(expr) == want


@pytest.mark.parametrize(("text", "want"), [
    ('IsInCIDR("192.168.1.10", ["192.168.0.0/16"])', True),
    ('IsInCIDR("10.1.1.1", ["192.168.0.0/16", "10.0.0.0/8"])', True),
    ('IsInCIDR("11.1.1.1", ["10.0.0.0/8"])', False),
    ('IsInCIDR("not an ip", ["10.0.0.0/8"])', False),
    ('IsInCIDR("2001:db8::1", ["2001:db8::/32"])', True),
    ('IsInCIDR("::ffff:10.0.0.1", ["10.0.0.0/8"])', True),
    ('TraceID(0x0102030405060708090a0b0c0d0e0f10) == trace_id', False),
    ('SpanID("0000000000000000") == SpanID(0x0000000000000000)', True),
])
def test_conditions(text: str, want: bool) -> None:
    assert cond(text) is want


def test_ids_match_span_fields() -> None:
    env = make_env()
    env.item.trace_id = bytes(range(1, 17))
    env.item.span_id = bytes(range(1, 9))
    assert cond('trace_id == TraceID(0x0102030405060708090a0b0c0d0e0f10)', env)
    assert cond('trace_id == TraceID("0102030405060708090a0b0c0d0e0f10")', env)
    assert cond('span_id == SpanID(0x0102030405060708)', env)
    compile_statement('set(span_id, SpanID("1112131415161718"))', "span").run(env)
    assert env.item.span_id == bytes(range(0x11, 0x19))
    get = compile_statement('set(trace_id, TraceID("ffffffffffffffffffffffffffffffff"))', "span")
    get.run(env)
    assert env.item.trace_id == b"\xff" * 16
    assert isinstance(TraceID(b"\x00" * 16), bytes) and isinstance(SpanID(b"\x00" * 8), bytes)


@pytest.mark.parametrize(("expr", "message"), [
    ('ParseJSON("{")', None),
    ('ParseJSON("1")', "could not convert parsed value of type float64 to JSON object"),
    ('ParseJSON("NaN")', None),
    ('ParseJSON(attributes["i"])', "expected string but got int64"),
    ('ParseKeyValue("")', "cannot parse from empty target"),
    ('ParseKeyValue("k1=v1 k2")', 'cannot split "k2" into 2 items, got 1 item(s)'),
    ('ParseKeyValue("é = ü")', 'cannot split "é" into 2 items, got 1 item(s)'),
    ('ParseKeyValue("k=\\"v")', 'splitting source "k=\\"v" into pairs failed: never reached the end of a quoted value'),
    ('ParseCSV("a,b", "x")', "wrong number of fields: expected 1, found 2"),
    ('ParseCSV("a\\"b,c", "x,y")', 'parse error: bare " in non-quoted field'),
    ('ParseCSV("\\"a\\"b,c", "x,y")', 'parse error: extraneous or missing " in quoted-field'),
    ('URL("")', "url cannot be empty"),
    ('URL("http://host:port/")', 'parse "http://host:port/": invalid port ":port" after host'),
    ('Len(5)', None),
    ('Len(attributes["missing"])', None),
    ('Keys("x")', "expected pcommon.Map but got string"),
    ('SliceToMap("x")', "unsupported type provided to SliceToMap function: string"),
    ('SliceToMap(ParseJSON("[1]"), ["a"])', "could not cast element '1' to map[string]any"),
    ('SliceToMap(ParseJSON("[{\\"b\\":1}]"), ["a"])',
     "could not extract key from element: provided object does not contain the path [a]"),
    ('SliceToMap(ParseJSON("[{\\"a\\":1}]"), ["a"])', "extracted key attribute is not of type string"),
    ('TraceID(0x0102)', "TraceID: expected 16 or 32 (hex) bytes, got 2"),
    ('SpanID("zzzzzzzzzzzzzzzz")', None),
    ('ParseInt("12a", 10)', 'strconv.ParseInt: parsing "12a": invalid syntax'),
    ('ParseInt("9223372036854775808", 10)', 'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
    ('ParseInt("1_0", 10)', 'strconv.ParseInt: parsing "1_0": invalid syntax'),
    ('ParseInt("10", -1)', "invalid base: -1, base must not be negative"),
    ('Int("2.0")', 'strconv.ParseInt: parsing "2.0": invalid syntax'),
    ('Double("x")', 'strconv.ParseFloat: parsing "x": invalid syntax'),
    ('Sort(ParseJSON("[{}, 1]"))', "sort with unsupported type: pcommon.Map"),
    ('Sort(attributes["missing"])', "sort with unsupported type: <nil>"),
])
def test_runtime_errors(expr: str, message: str | None) -> None:
    with pytest.raises(EvalError) as err:
        ev(expr)
    if message is not None:
        assert str(err.value) == message


@pytest.mark.parametrize(("expr", "fragment"), [
    ('ParseKeyValue("a", ":", ":")', 'pair delimiter ":" cannot be equal to delimiter ":"'),
    ('ParseCSV("a", "x", "ab")', "'delimiter' must be a single character"),
    ('ParseCSV("a", "x", mode="loose")', "unknown mode: loose"),
    ('Sort([1], "up")', 'invalid arguments: up. Order should be either "asc" or "desc"'),
    ('SliceToMap(attributes, [])', "key path must contain at least one element"),
    ('IsInCIDR("1.2.3.4", ["1.2.3.4"])', "invalid CIDR address: 1.2.3.4"),
])
def test_config_errors(expr: str, fragment: str) -> None:
    with pytest.raises(OttlError) as err:
        compile_statement(f'set(attributes["out"], {expr})', "span")
    assert fragment in str(err.value)


def test_is_root_span_outside_span_errors() -> None:
    env = Env(make_env().request)
    with pytest.raises(EvalError):
        cond("IsRootSpan()", env)
