"""Routing conditions compiled to predicates: `Env -> bool` closures built once from the syntax tree.

What compiles: `route() where <condition>` statements (or `route()` alone, which matches everything)
and bare conditions; comparisons (`== != < <= > >=`) of paths, literals, enums and converter calls;
`and`, `or`, `not`, parentheses; the converters `IsMatch(target, "regexp")` (Go's `MatchString`: a
search, not a full match; the target rendered as OTTL's string-like getter renders it; nil never
matches), `IsString`, `IsInt`, `IsDouble`, `IsBool`, `IsMap` and `IsList`. Anything else is an
OttlError naming it. `and` and `or` short-circuit left to right, as OTTL evaluates them.

The `request` context is the routing connector's own tiny grammar (`request["name"] == "value"`, or
`!=`), widened here to the boolean operators: see `compile_request`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipelines.ottl import contexts
from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.grammar import (
    And,
    BoolExpr,
    Call,
    Compare,
    Enum,
    Literal,
    Not,
    Op,
    Or,
    Path,
    Value,
    parse_condition,
    parse_statement,
)
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import PMap, PSlice, compare, string_like
from pipelines.processors.actions import compile_go_regex

Predicate = Callable[[Env], bool]

# The authenticated identity, read as request["auth.tenant"] (RequestContext.tenant) or
# request["auth.<attribute>"] (`username`, `subject`, `membership`): the names `from_context` has in the
# attributes processor.
AUTH_PREFIX = "auth."

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsString": lambda v: isinstance(v, str),
    "IsInt": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "IsDouble": lambda v: isinstance(v, float),
    "IsBool": lambda v: isinstance(v, bool),
    "IsMap": lambda v: isinstance(v, PMap),
    "IsList": lambda v: isinstance(v, PSlice),
}
_ARITY = {"IsMatch": 2, **dict.fromkeys(_TYPE_TESTS, 1)}
_REVERSED: dict[str, Op] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Compiled:
    """A route's condition: the context it was resolved to and its predicate (None: always true).
    `key` is equal for two routes that say the same thing in the same context."""

    context: str
    predicate: Predicate | None
    key: tuple[str, BoolExpr | None]


@lru_cache(maxsize=512)
def compile_route(text: str, form: str, context: str) -> Compiled:
    """Compile a `statement` or `condition` (per `form`) written for `context` ("" to infer it)."""
    if form == "statement":
        stmt = parse_statement(text)
        if stmt.editor != "route":
            raise OttlError(f"unsupported function '{stmt.editor}': a routing statement is route() where <condition>")
        if stmt.args:
            raise OttlError("route() with arguments (pipelines chosen by the statement) is not supported")
        expr = stmt.where
    else:
        expr = parse_condition(text)
    if context == "request":
        if form == "statement" or expr is None:
            raise OttlError("\"request\" context requires a 'condition'")
        return Compiled("request", compile_request(expr), ("request", expr))
    resolved = context or infer_context(expr)
    predicate = None if expr is None else _bool(expr, resolved)
    return Compiled(resolved, predicate, (resolved, expr))


def infer_context(expr: BoolExpr | None) -> str:
    """The Collector's inference for a route without `context`: the deepest context its paths name;
    a path without a context name (or no path at all) means the `resource` context, as before."""
    named: set[str] = set()
    for path in _paths(expr):
        ctx = contexts.path_context(path)
        if ctx is None:
            return "resource"
        named.add(ctx)
    if not named:
        return "resource"
    deepest = max(contexts.DEPTH[c] for c in named)
    found = sorted(c for c in named if contexts.DEPTH[c] == deepest)
    if len(found) > 1:
        raise OttlError(f"paths of the {' and '.join(repr(c) for c in found)} contexts cannot be mixed")
    # A scope-only condition has no routing context of its own: `resource` then refuses its paths.
    return found[0] if found[0] != "scope" else "resource"


def _paths(node: BoolExpr | Value | None) -> Iterator[Path]:
    if isinstance(node, Path):
        yield node
    elif isinstance(node, Compare):
        yield from _paths(node.left)
        yield from _paths(node.right)
    elif isinstance(node, Not):
        yield from _paths(node.expr)
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from _paths(item)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from _paths(arg)


# ---------------------------------------------------------------- item contexts

def _bool(expr: BoolExpr, ctx: str) -> Predicate:
    if isinstance(expr, Literal):
        constant = bool(expr.value)
        return lambda env: constant
    if isinstance(expr, Call):
        call = _call(expr, ctx)
        return lambda env: bool(call(env))
    if isinstance(expr, Not):
        inner = _bool(expr.expr, ctx)
        return lambda env: not inner(env)
    if isinstance(expr, And):
        parts = [_bool(e, ctx) for e in expr.items]
        return lambda env: all(p(env) for p in parts)
    if isinstance(expr, Or):
        alts = [_bool(e, ctx) for e in expr.items]
        return lambda env: any(p(env) for p in alts)
    left, right, op = _value(expr.left, ctx), _value(expr.right, ctx), expr.op
    return lambda env: compare(left(env), right(env), op)


def _value(v: Value, ctx: str) -> Getter:
    if isinstance(v, Literal):
        constant = v.value
        return lambda env: constant
    if isinstance(v, Enum):
        number = contexts.enum_value(v.name, ctx)
        return lambda env: number
    if isinstance(v, Path):
        return contexts.resolve(v, ctx)
    return _call(v, ctx)


def _call(call: Call, ctx: str) -> Getter:
    if call.name not in _ARITY:
        raise OttlError(f"unsupported function '{call.name}'")
    if len(call.args) != _ARITY[call.name]:
        raise OttlError(f"{call.name}: incorrect number of arguments. Expected: {_ARITY[call.name]} "
                        f"Received: {len(call.args)}")
    if call.keys:
        raise OttlError(f"indexing the result of {call.name} is not supported")
    target = _value(call.args[0], ctx)
    if call.name == "IsMatch":
        regex = _pattern(call.args[1])

        def is_match(env: Env) -> bool:
            text = string_like(target(env))
            return text is not None and regex.search(text) is not None

        return is_match
    test = _TYPE_TESTS[call.name]
    return lambda env: test(target(env))


def _pattern(arg: Value) -> re.Pattern[str]:
    if not (isinstance(arg, Literal) and arg.kind == "string"):
        raise OttlError("IsMatch: the pattern must be a string literal")
    text = str(arg.value)
    try:
        return compile_go_regex(text)
    except re.error as exc:
        raise OttlError(f"the regex pattern supplied to IsMatch '{json.dumps(text, ensure_ascii=False)}' "
                        f"is not a valid pattern: {exc}") from None


# ---------------------------------------------------------------- request context

def compile_request(expr: BoolExpr) -> Predicate:
    """The routing connector's `request` context: `request["name"]` is the values of request header
    (HTTP) or metadata (gRPC) `name`, which receivers keep with `include_metadata: true`, and
    `request["auth.tenant"]` the tenant the authenticator found (our extension). A comparison is true
    when some value satisfies it, so without any value `==` and `!=` are both false, as in the
    Collector; `request["name"] == nil` is true exactly when there is no value. The Collector allows
    one comparison with a string; here they combine with `and`, `or`, `not`, and `IsMatch`."""
    if isinstance(expr, Literal):
        constant = bool(expr.value)
        return lambda env: constant
    if isinstance(expr, Not):
        inner = compile_request(expr.expr)
        return lambda env: not inner(env)
    if isinstance(expr, And):
        parts = [compile_request(e) for e in expr.items]
        return lambda env: all(p(env) for p in parts)
    if isinstance(expr, Or):
        alts = [compile_request(e) for e in expr.items]
        return lambda env: any(p(env) for p in alts)
    if isinstance(expr, Call):
        if expr.name != "IsMatch":
            raise OttlError(f"unsupported function '{expr.name}' in the \"request\" context (IsMatch only)")
        if len(expr.args) != 2:
            raise OttlError(f"IsMatch: incorrect number of arguments. Expected: 2 Received: {len(expr.args)}")
        values = _request_values(expr.args[0])
        regex = _pattern(expr.args[1])
        return lambda env: any(regex.search(v) for v in values(env))
    left, right, op = expr.left, expr.right, expr.op
    if not isinstance(left, Path):
        left, right, op = right, left, _REVERSED[op]
    values = _request_values(left)
    if not (isinstance(right, Literal) and right.kind in ("string", "nil")):
        raise OttlError('in the "request" context, compare request["<name>"] with a string literal or nil')
    if right.kind == "nil":
        if op not in ("==", "!="):
            raise OttlError(f'request["<name>"] {op} nil: only == and != compare with nil')
        absent = op == "=="
        return lambda env: (not values(env)) == absent
    literal = right.value
    return lambda env: any(compare(v, literal, op) for v in values(env))


def _request_values(v: Value) -> Callable[[Env], tuple[str, ...]]:
    if not (isinstance(v, Path) and len(v.segments) == 1 and v.segments[0].name == "request"
            and len(v.segments[0].keys) == 1 and isinstance(v.segments[0].keys[0], str)):
        what = v.text if isinstance(v, Path) else type(v).__name__.lower()
        raise OttlError(f'unsupported {"path" if isinstance(v, Path) else "value"} "{what}" in the "request" '
                        'context: use request["<name>"]')
    name = v.segments[0].keys[0]
    if name.startswith(AUTH_PREFIX):
        attribute = name.removeprefix(AUTH_PREFIX)
        return lambda env: env.request.get_auth(attribute)
    return lambda env: env.request.get_metadata(name)
