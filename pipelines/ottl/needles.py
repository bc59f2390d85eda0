"""What bytes a condition needs in a request before it can hold: a check on the serialized request,
with no parse, that rules a condition out for every item at once.

A string value sits in the serialized request as its UTF-8 bytes, whatever the encoding of the tag and
length around it; so `name == "GET /healthz"` can hold for some span only if those bytes occur
somewhere in the request, and `attributes["http.route"] == "/health"` only if both the key's and the
value's bytes do. `necessary(expr)` gives that requirement as a formula of byte strings (all of / any
of), or None when it cannot tell (a comparison with a number, `!=`, `not`, a converter other than
`IsMatch`, a path that may fail: anything whose truth, or error, does not rest on bytes being present).
Only comparisons that can neither hold nor fail without their bytes count, so ruling a condition out
this way gives what evaluating it would: false, and no error.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.ottl.contexts import FIELDS, path_context
from pipelines.ottl.grammar import And, BoolExpr, Call, Compare, Literal, Or, Path, Value


@dataclass(frozen=True)
class Needs:
    """`mode` "all": every part must be present; "any": at least one."""

    mode: str
    parts: tuple[bytes | Needs, ...]

    def present(self, data: bytes) -> bool:
        if self.mode == "all":
            return all(p in data if isinstance(p, bytes) else p.present(data) for p in self.parts)
        return any(p in data if isinstance(p, bytes) else p.present(data) for p in self.parts)


def necessary(expr: BoolExpr, context: str) -> Needs | None:
    if isinstance(expr, And):
        parts = [n for n in (necessary(e, context) for e in expr.items) if n is not None]
        return Needs("all", tuple(parts)) if parts else None
    if isinstance(expr, Or):
        alternatives = [necessary(e, context) for e in expr.items]
        if any(a is None for a in alternatives):
            return None
        return Needs("any", tuple(a for a in alternatives if a is not None))
    if isinstance(expr, Compare) and expr.op == "==":
        for side, other in ((expr.left, expr.right), (expr.right, expr.left)):
            if isinstance(other, Literal) and other.kind == "string" and other.value:
                text = str(other.value).encode("utf-8", "surrogateescape")
                key = _string_field(side, context)
                if key is not None:
                    return Needs("all", (text, *key))
        return None
    if isinstance(expr, Call) and expr.name == "IsMatch" and len(expr.args) == 2 and not expr.named \
            and not expr.keys:
        key = _attribute_key(expr.args[0], context)
        return Needs("all", key) if key else None
    return None


def _string_field(v: Value, context: str) -> tuple[bytes, ...] | None:
    """For a path read without failing, whose value is a string only if its bytes are in the request:
    the other bytes it needs (an attribute's key); None for any other value."""
    if not isinstance(v, Path):
        return None
    key = _attribute_key(v, context)
    if key is not None:
        return key
    segments = v.segments[1:] if path_context(v) else v.segments
    if any(s.keys for s in segments):
        return None
    name = ".".join(s.name for s in segments)
    target = path_context(v) or context
    fld = FIELDS.get(target, {}).get(name)
    return () if fld is not None and name in _STRING_FIELDS else None


# Plain string fields of the contexts, read from the request as they are.
_STRING_FIELDS = frozenset({"name", "status.message", "severity_text", "description", "unit", "version",
                            "event_name", "schema_url"})


def _attribute_key(v: Value, context: str) -> tuple[bytes, ...] | None:
    """`attributes["k"]` (of any context): reading it never fails, and it is nil unless "k" is there."""
    if not isinstance(v, Path):
        return None
    segments = v.segments[1:] if path_context(v) else v.segments
    if len(segments) != 1 or segments[0].name != "attributes" or len(segments[0].keys) != 1:
        return None
    key = segments[0].keys[0]
    if not isinstance(key, str) or not key:
        return None
    return (key.encode("utf-8", "surrogateescape"),)
