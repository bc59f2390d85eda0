"""The table of OTTL functions and the kinds of their parameters.

A parameter's kind says what the statement may pass and what the implementation receives:
- getters (`getter`, `string`, `string_like`, `int`, `int_like`, `float`, `float_like`, `bool`,
  `bool_like`, `map`, `slice`, `time`, `duration`, `bytes_like`) become `Env -> value` functions that
  check or convert the value at run time, with the Collector's error when it does not fit
  (`expected string but got int64`); `*_like` convert as OTTL's `...LikeGetter`s do;
- `getsetter` must be a path, and arrives as a `Resolved` (get and set);
- literals (`lit_string`, `lit_int`, `lit_float`, `lit_bool`, `lit_strings`, `lit_floats`) must be
  literals in the statement and arrive as Python values (a float literal must be written with a dot,
  as Go's `float64` parameters want);
- `lit_map`: a map literal whose entries are all literals arrives as plain Python data (a dict);
  anything else arrives as None (the Collector's `GetLiteralValue` failing, an error at run time);
- `function` is the name of a converter (`SHA256`), arriving as a one-argument Python function;
- `getters`/`string_likes`: a list literal of getters.
Optional parameters arrive as None when absent. `contexts` limits a function to some contexts (the
transform processor's metric functions): elsewhere the statement is refused. The implementation gets
its arguments by parameter name and returns the run-time function: `Env -> value` for a converter,
`Env -> None` for an editor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GETTER_KINDS = frozenset({
    "getter", "string", "string_like", "int", "int_like", "float", "float_like", "bool", "bool_like", "map",
    "slice", "time", "duration", "bytes_like", "map_like",
})
LITERAL_KINDS = frozenset({"lit_string", "lit_int", "lit_float", "lit_bool", "lit_strings", "lit_floats", "lit_map"})
KINDS = GETTER_KINDS | LITERAL_KINDS | {"getsetter", "function", "getters", "string_likes"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    optional: bool = False


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[Param, ...]
    build: Callable[..., Callable[..., Any]]
    editor: bool
    contexts: tuple[str, ...] = ()


FUNCTIONS: dict[str, Function] = {}


def _params(spec: str) -> tuple[Param, ...]:
    """`"target:getsetter, pattern:lit_string, ?function:function"`: `?` marks an optional parameter."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, kind = part.partition(":")
        optional = name.startswith("?")
        name = name.lstrip("?")
        if kind not in KINDS:
            raise ValueError(f"unknown parameter kind {kind!r}")
        out.append(Param(name, kind, optional))
    return tuple(out)


def editor(name: str, spec: str,
           contexts: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, _params(spec), build, editor=True, contexts=contexts)
        return build
    return register


def converter(name: str, spec: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, _params(spec), build, editor=False)
        return build
    return register
