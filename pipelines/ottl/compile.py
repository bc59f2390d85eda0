"""OTTL statements and conditions compiled to Python closures, once, at config load.

`compile_statement(text, context)` gives a `Statement` whose `run(env)` evaluates the `where` clause
and, when it holds, the editor; `compile_condition(text, context)` gives a predicate. Both raise
`OttlError` naming what is wrong and where (`unknown function "replace_patern" at col 1`); at run time a
value that does not fit (a string getter reading an int, a math expression over a string) raises
`EvalError`, which the processors handle per their `error_mode`.

Semantics are the Collector's (`pkg/ottl`): comparisons (`values.compare`), `and`/`or` short-circuit
left to right, math over int64 (wrapping, truncating division, division by zero an error), float64,
time and duration; list literals are `[]any`, map literals maps; a converter's result may be indexed.
The routing connector's route conditions (`compile_route`) use the same compiler, plus its own tiny
`request` context (`compile_request`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipelines.ottl import contexts, functions  # noqa: F401  (functions: registers them)
from pipelines.ottl.contexts import Env, Getter, KeyFn, Resolved
from pipelines.ottl.functions.registry import FUNCTIONS, GETTER_KINDS, Function, Param
from pipelines.ottl.functions.unsupported import COLLECTOR_FUNCTIONS
from pipelines.ottl.grammar import (
    And,
    BoolExpr,
    Call,
    Compare,
    Enum,
    ListLit,
    Literal,
    MapLit,
    Math,
    Not,
    Op,
    Or,
    Path,
    Value,
    parse_condition,
    parse_statement,
)
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import (
    EvalError,
    GoDuration,
    GoTime,
    PMap,
    PSlice,
    SpanID,
    TraceID,
    compare,
    index,
    map_get,
    new_map,
    set_any,
    string_like,
    type_name,
)
from pipelines.processors import anyvalue
from pipelines.processors.actions import compile_go_regex

Predicate = Callable[[Env], bool]

# The authenticated identity, read as request["auth.tenant"] (RequestContext.tenant) or
# request["auth.<attribute>"] (`username`, `subject`, `membership`): the names `from_context` has in the
# attributes processor.
AUTH_PREFIX = "auth."
_REVERSED: dict[str, Op] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Statement:
    """A compiled statement: `run(env)` applies it to the item `env` holds (EvalError on bad data)."""

    text: str
    context: str
    run: Callable[[Env], None]


def compile_statement(text: str, context: str) -> Statement:
    stmt = parse_statement(text)
    fn = _lookup(stmt.editor, 1, context)
    if not fn.editor:
        raise OttlError(f'"{stmt.editor}" is a converter, not an editor: a statement starts with an editor at col 1')
    action = _build(fn, stmt.args, stmt.named, context, 1)
    if stmt.where is None:
        return Statement(text, context, action)
    where = _bool(stmt.where, context)

    def run(env: Env) -> None:
        if where(env):
            action(env)

    return Statement(text, context, run)


def compile_condition(text: str, context: str) -> Predicate:
    return _bool(parse_condition(text), context)


# ---------------------------------------------------------------- context inference

def statement_paths(text: str, form: str) -> list[Path]:
    """Every path a statement (form "statement") or condition uses, keys and arguments included."""
    if form == "statement":
        stmt = parse_statement(text)
        nodes: list[Any] = [*stmt.args, *(v for _, v in stmt.named), stmt.where]
    else:
        nodes = [parse_condition(text)]
    return [p for node in nodes for p in _paths(node)]


def statement_functions(text: str, form: str) -> set[str]:
    """The name of every function a statement (form "statement") or condition calls."""
    if form == "statement":
        stmt = parse_statement(text)
        names = {stmt.editor}
        nodes: list[Any] = [*stmt.args, *(v for _, v in stmt.named), stmt.where]
    else:
        names = set()
        nodes = [parse_condition(text)]
    return names | {c.name for node in nodes for c in _calls(node)}


def _calls(node: Any) -> Iterator[Call]:
    if isinstance(node, Call):
        yield node
        children: tuple[Any, ...] = (*node.args, *(v for _, v in node.named), *node.keys)
    elif isinstance(node, Path):
        children = tuple(k for seg in node.segments for k in seg.keys)
    elif isinstance(node, (Compare, Math)):
        children = (node.left, node.right)
    elif isinstance(node, Not):
        children = (node.expr,)
    elif isinstance(node, (And, Or, ListLit)):
        children = node.items
    elif isinstance(node, MapLit):
        children = tuple(v for _, v in node.items)
    else:
        children = ()
    for child in children:
        yield from _calls(child)


def _paths(node: Any) -> Iterator[Path]:
    if isinstance(node, Path):
        yield node
        for seg in node.segments:
            for key in seg.keys:
                yield from _paths(key)
    elif isinstance(node, Compare):
        yield from _paths(node.left)
        yield from _paths(node.right)
    elif isinstance(node, Not):
        yield from _paths(node.expr)
    elif isinstance(node, (And, Or)):
        for part in node.items:
            yield from _paths(part)
    elif isinstance(node, Call):
        for arg in (*node.args, *(v for _, v in node.named), *node.keys):
            yield from _paths(arg)
    elif isinstance(node, ListLit):
        for value in node.items:
            yield from _paths(value)
    elif isinstance(node, MapLit):
        for _, entry in node.items:
            yield from _paths(entry)
    elif isinstance(node, Math):
        yield from _paths(node.left)
        yield from _paths(node.right)


# Context inference (pkg/ottl context inferrer): the highest-priority context any path names, which
# must then be able to read every other path.
INFER_PRIORITY = ("log", "datapoint", "metric", "spanevent", "span", "scope", "resource")


def infer(paths: list[Path], allowed: tuple[str, ...], called: set[str] | frozenset[str] = frozenset()) -> str:
    """The context a group of statements runs in, from the contexts their paths name; when a function
    they call is not available there (the transform processor's metric functions), the first deeper
    context that has them all (`convert_summary_sum_val_to_sum(...) where metric.name == "x"` runs
    in the datapoint context), as the Collector's inferrer does."""
    named: set[str] = set()
    for path in paths:
        ctx = contexts.path_context(path)
        if ctx is None:
            raise OttlError(f'path "{path.text}" names no context: with the context inferred, '
                            f'every path starts with one ({", ".join(allowed)})')
        named.add(ctx)
    if not named:
        raise OttlError("unable to infer a context: no path names one; give a context")
    chosen = next(c for c in INFER_PRIORITY if c in named)
    if chosen not in allowed:
        raise OttlError(f'the "{chosen}" context is not available here (use one of {", ".join(allowed)})')
    for ctx in named:
        if ctx not in contexts.READABLE[chosen]:
            raise OttlError(f'paths of the "{ctx}" and "{chosen}" contexts cannot be used together')
    if not all(_available(f, chosen) for f in called):
        deeper = [c for c in INFER_PRIORITY if c in allowed and c != chosen and chosen in contexts.READABLE[c]]
        chosen = next((c for c in deeper if all(_available(f, c) for f in called)), chosen)
    return chosen


def _available(name: str, ctx: str) -> bool:
    fn = FUNCTIONS.get(name)
    return fn is None or not fn.contexts or ctx in fn.contexts


# ---------------------------------------------------------------- boolean expressions

def _bool(expr: BoolExpr, ctx: str) -> Predicate:
    if isinstance(expr, Literal):
        if expr.kind != "bool":
            raise OttlError(f"a {expr.kind} literal is not a condition")
        constant = bool(expr.value)
        return lambda env: constant
    if isinstance(expr, Call):
        call = _call(expr, ctx)
        name = expr.name

        def boolean(env: Env) -> bool:
            v = call(env)
            if not isinstance(v, bool):
                raise EvalError(f"value returned from {name} is not a bool: {type_name(v)}")
            return v

        return boolean
    if isinstance(expr, Not):
        inner = _bool(expr.expr, ctx)
        return lambda env: not inner(env)
    if isinstance(expr, And):
        parts = [_bool(e, ctx) for e in expr.items]
        return lambda env: all(p(env) for p in parts)
    if isinstance(expr, Or):
        alts = [_bool(e, ctx) for e in expr.items]
        return lambda env: any(p(env) for p in alts)
    fast = _equality_with_constant(expr, ctx)
    if fast is not None:
        return fast
    left, right, op = value_getter(expr.left, ctx), value_getter(expr.right, ctx), expr.op
    return lambda env: compare(left(env), right(env), op)


def _equality_with_constant(expr: Compare, ctx: str) -> Predicate | None:
    """`x == "lit"`, `x != 3`, `kind == SPAN_KIND_SERVER`: the commonest conditions, without the
    general comparison. Python's `==` is OTTL's for a string constant (a string equals only a string);
    for a number it is too once a bool, which Python counts as a number, is ruled out."""
    if expr.op not in ("==", "!="):
        return None
    side, other = expr.right, expr.left
    if not isinstance(side, (Literal, Enum)):
        side, other = expr.left, expr.right
    if isinstance(side, Enum):
        constant: Any = contexts.enum_value(side.name, ctx)
    elif isinstance(side, Literal) and side.kind in ("string", "int", "float"):
        constant = side.value
    else:
        return None
    get = value_getter(other, ctx)
    equal = expr.op == "=="
    if isinstance(constant, str):
        if equal:
            return lambda env: get(env) == constant
        return lambda env: get(env) != constant

    def number(env: Env) -> bool:
        v = get(env)
        return (v.__class__ is not bool and v == constant) is equal

    return number


# ---------------------------------------------------------------- values

def value_getter(v: Value, ctx: str) -> Getter:
    if isinstance(v, Literal):
        constant = v.value
        return lambda env: constant
    if isinstance(v, Enum):
        number = contexts.enum_value(v.name, ctx)
        return lambda env: number
    if isinstance(v, Path):
        return _resolve(v, ctx).get
    if isinstance(v, Call):
        return _call(v, ctx)
    if isinstance(v, ListLit):
        items = [value_getter(i, ctx) for i in v.items]
        return lambda env: [i(env) for i in items]
    if isinstance(v, MapLit):
        entries = [(k, value_getter(i, ctx)) for k, i in v.items]

        def build_map(env: Env) -> PMap:
            out = new_map()
            for k, g in entries:
                kv = out.kvs.add()
                kv.key = k
                set_any(kv.value, g(env))
            return out

        return build_map
    left, right, op = value_getter(v.left, ctx), value_getter(v.right, ctx), v.op
    return lambda env: math_op(left(env), right(env), op)


def _resolve(path: Path, ctx: str) -> Resolved:
    keys = tuple(_key(k, ctx) for k in path.segments[-1].keys)
    try:
        return contexts.resolve_path(path, ctx, keys)
    except OttlError as exc:
        raise OttlError(f"{exc} at col {path.pos + 1}") from None


def _key(k: str | int | Path | Call, ctx: str) -> KeyFn:
    if isinstance(k, (str, int)):
        return contexts.constant_key(k)
    getter = value_getter(k, ctx)

    def dynamic(env: Env) -> str | int:
        v = getter(env)
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise EvalError(f"could not resolve key for map/slice, expecting 'string' or 'int64' but got "
                            f"'{type_name(v)}'")
        return v

    return dynamic


def index_value(v: Any, keys: tuple[str | int, ...]) -> Any:
    """`Converter(...)[k]...`: index a converter's result."""
    for n, key in enumerate(keys):
        if isinstance(v, PMap):
            return map_get(v.kvs, keys[n:])
        if isinstance(v, PSlice):
            if not isinstance(key, int):
                raise EvalError("unable to resolve an integer index in slice: invalid key type")
            if not 0 <= key < len(v.values):
                raise EvalError(f"index {key} out of bounds")
            return index(v.values[key], keys[n + 1:])
        if isinstance(v, list):
            if not isinstance(key, int):
                raise EvalError("unable to resolve an integer index in slice: invalid key type")
            if not 0 <= key < len(v):
                raise EvalError(f"index {key} out of bounds")
            v = v[key]
            continue
        raise EvalError(f"type {type_name(v)} does not support indexing")
    return v


def math_op(a: Any, b: Any, op: str) -> Any:
    """`attemptMathOperation`: int64 with int64 (wrapping), float64 with float64, time and duration."""
    if isinstance(a, bool) or isinstance(b, bool):
        raise EvalError("unsupported type for math operation: bool")
    if (isinstance(a, int) and isinstance(b, float)) or (isinstance(a, float) and isinstance(b, int)):
        a, b = float(a), float(b)  # an int with a double is a double (as at v0.161)
    if isinstance(a, int):
        if not isinstance(b, int):
            raise EvalError(f"{type_name(b)} must be int64")
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        else:
            if b == 0:
                raise EvalError("attempted to divide by zero")
            r = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return (r + 2**63) % 2**64 - 2**63
    if isinstance(a, float):
        if not isinstance(b, float):
            raise EvalError(f"{type_name(b)} must be float64")
        if op == "/":
            if b == 0:
                return math.copysign(math.inf, a) * math.copysign(1, b) if a != 0 and not math.isnan(a) else math.nan
            return a / b
        return a + b if op == "+" else a - b if op == "-" else a * b
    if isinstance(a, GoTime):
        if isinstance(b, GoDuration) and op in "+-":
            return GoTime(a.ns + b.ns if op == "+" else a.ns - b.ns)
        if isinstance(b, GoTime) and op == "-":
            return GoDuration(a.ns - b.ns)
        raise EvalError(f"time.Time {op} {type_name(b)} is not supported")
    if isinstance(a, GoDuration):
        if isinstance(b, GoDuration) and op in "+-":
            return GoDuration(a.ns + b.ns if op == "+" else a.ns - b.ns)
        raise EvalError(f"time.Duration {op} {type_name(b)} is not supported")
    raise EvalError(f"unsupported type for math operation: {type_name(a)}")


# ---------------------------------------------------------------- function calls

def _lookup(name: str, col: int, ctx: str) -> Function:
    fn = FUNCTIONS.get(name)
    if fn is not None:
        if fn.contexts and ctx not in fn.contexts:
            where = " or ".join(f'the "{c}" context' for c in fn.contexts)
            raise OttlError(f'function "{name}" is available only in {where} of metric_statements, not in the '
                            f'"{ctx}" context, at col {col}')
        return fn
    if name in COLLECTOR_FUNCTIONS:
        raise OttlError(f'function "{name}" is not supported yet by this gateway (the Collector has it) at col {col}')
    raise OttlError(f'unknown function "{name}" at col {col}')


def _call(call: Call, ctx: str) -> Getter:
    fn = _lookup(call.name, call.pos + 1, ctx)
    if fn.editor:
        raise OttlError(f'"{call.name}" is an editor, not a converter, at col {call.pos + 1}')
    run = _build(fn, call.args, call.named, ctx, call.pos + 1)
    if not call.keys:
        return run
    keys = tuple(_key(k, ctx) for k in call.keys)
    return lambda env: index_value(run(env), tuple(k(env) for k in keys))


def _build(fn: Function, args: tuple[Value, ...], named: tuple[tuple[str, Value], ...], ctx: str,
           col: int) -> Callable[[Env], Any]:
    params = fn.params
    required = sum(1 for p in params if not p.optional)
    if len(args) > len(params) or (len(args) + len(named) < required and not named):
        want = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        raise OttlError(f"{fn.name}: incorrect number of arguments. Expected: {want} Received: {len(args)} "
                        f"(at col {col})")
    given: dict[str, Value] = {p.name: a for p, a in zip(params, args, strict=False)}
    names = {p.name for p in params}
    for key, value in named:
        if key not in names:
            raise OttlError(f'{fn.name}: no parameter named "{key}" (at col {col})')
        if key in given:
            raise OttlError(f'{fn.name}: the parameter "{key}" is given twice (at col {col})')
        given[key] = value
    kwargs: dict[str, Any] = {}
    for p in params:
        if p.name not in given:
            if not p.optional:
                raise OttlError(f'{fn.name}: missing the argument "{p.name}" (at col {col})')
            kwargs[p.name] = None
            continue
        try:
            kwargs[p.name] = _argument(p, given[p.name], ctx)
        except OttlError as exc:
            where = "" if " col " in str(exc) else f" (at col {col})"
            raise OttlError(f"{fn.name}: {exc}{where}") from None
    try:
        return fn.build(**kwargs)
    except (ValueError, re.error) as exc:
        raise OttlError(f"{fn.name}: {exc} (at col {col})") from None


def _argument(p: Param, arg: Value, ctx: str) -> Any:
    kind = p.kind
    if kind == "getsetter":
        if not isinstance(arg, Path):
            raise OttlError(f'the argument "{p.name}" must be a path')
        return _resolve(arg, ctx)
    if kind in GETTER_KINDS:
        if isinstance(arg, Enum) and kind in ("getter", "int", "int_like"):
            return value_getter(arg, ctx)
        return typed(kind, value_getter(arg, ctx))
    if kind == "lit_string":
        if isinstance(arg, Literal) and arg.kind == "string":
            return arg.value
        raise OttlError(f'the argument "{p.name}" must be a string literal')
    if kind == "lit_int":
        if isinstance(arg, Literal) and arg.kind == "int":
            return arg.value
        raise OttlError(f'the argument "{p.name}" must be an int literal')
    if kind == "lit_float":
        if _float_literal(arg):
            return arg.value  # type: ignore[union-attr]
        raise OttlError(f'the argument "{p.name}" must be a float literal (written with a dot, unsigned: '
                        f'-1.5 is a math expression there)')
    if kind == "lit_floats":
        if isinstance(arg, ListLit) and all(_float_literal(i) for i in arg.items):
            return [i.value for i in arg.items]  # type: ignore[union-attr]
        raise OttlError(f'the argument "{p.name}" must be a list of float literals (written with a dot, '
                        f'unsigned)')
    if kind == "lit_map":
        return _literal_data(arg) if isinstance(arg, MapLit) else None
    if kind == "lit_bool":
        if isinstance(arg, Literal) and arg.kind == "bool":
            return arg.value
        raise OttlError(f'the argument "{p.name}" must be true or false')
    if kind == "lit_strings":
        if isinstance(arg, ListLit) and all(isinstance(i, Literal) and i.kind == "string" for i in arg.items):
            return [i.value for i in arg.items]  # type: ignore[union-attr]
        raise OttlError(f'the argument "{p.name}" must be a list of string literals')
    if kind in ("getters", "string_likes"):
        if not isinstance(arg, ListLit):
            raise OttlError(f'the argument "{p.name}" must be a list')
        inner = "getter" if kind == "getters" else "string_like"
        return [typed(inner, value_getter(i, ctx)) for i in arg.items]
    if kind == "function":
        if not isinstance(arg, Enum):
            raise OttlError(f'the argument "{p.name}" must be the name of a converter')
        fn = FUNCTIONS.get(arg.name)
        if fn is None or fn.editor or not fn.params:
            raise OttlError(f'"{arg.name}" is not a converter that can be passed as "{p.name}"')
        first = fn.params[0]

        def apply(value: Any, fn: Function = fn, first: Param = first) -> Any:
            kwargs: dict[str, Any] = {q.name: None for q in fn.params[1:]}
            kwargs[first.name] = typed(first.kind, lambda env: value)
            return fn.build(**kwargs)(None)

        return apply
    raise OttlError(f"parameter kind {kind} is not implemented")


def _float_literal(v: Value) -> bool:
    """A Go `float64` parameter's argument: a float token. The Collector's lexer reads a sign as an
    operator, so `-1.5` is a math expression and refused there (`+1.5`, which our lexer folds into
    the number, is let through)."""
    return isinstance(v, Literal) and v.kind == "float" and math.copysign(1.0, v.value) > 0  # type: ignore[arg-type]


def _literal_data(v: Value) -> Any:
    """A map or list literal made only of literals, as plain Python data; None when some part of it
    is not a literal (a path, a converter, an enum, math)."""
    def walk(node: Value) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ListLit):
            return [walk(i) for i in node.items]
        if isinstance(node, MapLit):
            return {k: walk(i) for k, i in node.items}
        raise LookupError

    try:
        return walk(v)
    except LookupError:
        return None


# ---------------------------------------------------------------- typed getters

# The strict getters: what the value must be, and the Go type their error names.
_STRICT: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "int64"),
    "float": (lambda v: isinstance(v, float), "float64"),
    "bool": (lambda v: isinstance(v, bool), "bool"),
    "map": (lambda v: isinstance(v, PMap), "pcommon.Map"),
    "map_like": (lambda v: isinstance(v, PMap), "pcommon.Map"),
    "slice": (lambda v: isinstance(v, (PSlice, list)), "pcommon.Slice"),
    "time": (lambda v: isinstance(v, GoTime), "time"),
    "duration": (lambda v: isinstance(v, GoDuration), "duration"),
}


def typed(kind: str, get: Getter) -> Getter:
    """A getter checked or converted as the Collector's getter of that kind."""
    if kind == "getter":
        return get
    strict = _STRICT.get(kind)
    if strict is not None:
        fits, want = strict

        def checked(env: Env) -> Any:
            v = get(env)
            if fits(v):
                return v
            raise EvalError(f"expected {want} but got {type_name(v)}")

        return checked
    convert = _LIKE.get(kind)
    if convert is None:
        raise OttlError(f"getter kind {kind} is not implemented")
    return lambda env: convert(get(env))


def int_like(v: Any) -> int | None:
    """`IntLikeGetter`: ints as they are, floats truncated, bools 1/0, decimal strings parsed; nil
    (and a string that is not an int) nil."""
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            return _INT64_MIN
        return max(_INT64_MIN, min(_INT64_MAX, int(v)))
    if isinstance(v, str):
        parsed = anyvalue.parse_go_int(v)
        if parsed is None:
            raise EvalError(f'strconv.ParseInt: parsing "{v}": invalid syntax')
        return parsed
    raise EvalError(f"unsupported type: {type_name(v)}")


def float_like(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        parsed = anyvalue.parse_go_float(v)
        if parsed is None:
            raise EvalError(f'strconv.ParseFloat: parsing "{v}": invalid syntax')
        return parsed
    raise EvalError(f"unsupported type: {type_name(v)}")


def bool_like(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        parsed = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
                  "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}.get(v)
        if parsed is None:
            raise EvalError(f'strconv.ParseBool: parsing "{v}": invalid syntax')
        return parsed
    raise EvalError(f"unsupported type: {type_name(v)}")


def bytes_like(v: Any) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, (TraceID, SpanID)):
        raise EvalError(f"unsupported type: {type_name(v)}")
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bool):
        return b"\x01" if v else b"\x00"
    if isinstance(v, int):
        return v.to_bytes(8, "big", signed=True)
    if isinstance(v, float):
        import struct
        return struct.pack(">d", v)
    raise EvalError(f"unsupported type: {type_name(v)}")


# ---------------------------------------------------------------- the routing connector's routes

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
        if stmt.args or stmt.named:
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


_ROUTING_CONTEXTS = ("resource", "span", "log", "metric", "datapoint")


def infer_context(expr: BoolExpr | None) -> str:
    """The routing connector's inference for a route without `context`: the deepest context its
    paths name; a path without a context name (or no path at all) means the `resource` context."""
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
    if found[0] not in _ROUTING_CONTEXTS:
        # A scope-only condition has no routing context of its own: `resource` then refuses its paths.
        return "resource"
    return found[0]


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


def _pattern(arg: Value) -> re.Pattern[str]:
    if not (isinstance(arg, Literal) and arg.kind == "string"):
        raise OttlError("IsMatch: the pattern must be a string literal")
    text = str(arg.value)
    try:
        return compile_go_regex(text)
    except re.error as exc:
        raise OttlError(f"the regex pattern supplied to IsMatch '{json.dumps(text, ensure_ascii=False)}' "
                        f"is not a valid pattern: {exc}") from None


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


_LIKE: dict[str, Callable[[Any], Any]] = {
    "string_like": string_like, "int_like": int_like, "float_like": float_like, "bool_like": bool_like,
    "bytes_like": bytes_like,
}
