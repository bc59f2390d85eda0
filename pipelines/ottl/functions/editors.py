"""OTTL editors (contrib `pkg/ottl/ottlfuncs`, v0.161.0): functions that change the data in place.

Maps are the repeated `KeyValue` fields they were read from (`PMap.kvs`); removing keeps the order of
the rest, as pdata's `RemoveIf`. Regular expressions are Go's RE2 syntax (`compile_go_regex`); a
replacement's `$1`/`${name}` expand as Go's `Regexp.Expand`; glob patterns as gobwas/glob's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from pipelines.ottl.contexts import Env, Getter, Resolved
from pipelines.ottl.functions.registry import editor
from pipelines.ottl.values import EvalError, PMap, PSlice, json_marshal, set_any, type_name
from pipelines.processors import anyvalue
from pipelines.processors.actions import compile_go_regex

Run = Callable[[Env], None]


def _regex(pattern: str, function: str) -> re.Pattern[str]:
    try:
        return compile_go_regex(pattern)
    except re.error as exc:
        raise ValueError(f"the regex pattern supplied to {function} is not a valid pattern: {exc}") from None


# ---------------------------------------------------------------- set, append

@editor("set", "target:getsetter, value:getter")
def set_(target: Resolved, value: Getter) -> Run:
    def run(env: Env) -> None:
        # nil too: a map entry set to nil is stored empty, a typed field refuses it (as at v0.161).
        target.set(env, value(env))
    return run


@editor("append", "target:getsetter, ?value:getter, ?values:getters")
def append(target: Resolved, value: Getter | None, values: list[Getter] | None) -> Run:
    if value is None and values is None:
        raise ValueError("at least one of the optional arguments (value or values) must be provided")

    def run(env: Env) -> None:
        new: list[Any] = []
        if value is not None:
            new.append(value(env))
        if values is not None:
            new.extend(v(env) for v in values)
        current = target.get(env)
        out = AnyValue()
        arr = out.array_value
        arr.SetInParent()
        if isinstance(current, PSlice):
            arr.values.extend(current.values)
        elif isinstance(current, list):
            for item in current:
                set_any(arr.values.add(), item)
        elif current is not None:
            set_any(arr.values.add(), current)
        for item in new:
            if isinstance(item, (PMap, PSlice, list)):
                raise EvalError(f"unsupported type {type_name(item)} to append")
            set_any(arr.values.add(), item)  # nil is appended as an empty value
        target.set(env, PSlice(arr.values))
    return run


# ---------------------------------------------------------------- deleting and keeping keys

def _remove_if(kvs: Any, drop: Callable[[KeyValue], bool]) -> None:
    keep = [kv for kv in kvs if not drop(kv)]
    if len(keep) != len(kvs):
        del kvs[:]
        kvs.extend(keep)


@editor("delete_key", "target:map, key:lit_string")
def delete_key(target: Getter, key: str) -> Run:
    def run(env: Env) -> None:
        kvs = target(env).kvs
        for i, kv in enumerate(kvs):
            if kv.key == key:
                del kvs[i]
                return
    return run


@editor("delete_matching_keys", "target:map, pattern:lit_string")
def delete_matching_keys(target: Getter, pattern: str) -> Run:
    compiled = _regex(pattern, "delete_matching_keys")
    return lambda env: _remove_if(target(env).kvs, lambda kv: compiled.search(kv.key) is not None)


@editor("keep_keys", "target:map, keys:lit_strings")
def keep_keys(target: Getter, keys: list[str]) -> Run:
    wanted = frozenset(keys)

    def run(env: Env) -> None:
        kvs = target(env).kvs
        if not wanted:
            del kvs[:]
            return
        _remove_if(kvs, lambda kv: kv.key not in wanted)
    return run


@editor("keep_matching_keys", "target:map, pattern:lit_string")
def keep_matching_keys(target: Getter, pattern: str) -> Run:
    compiled = _regex(pattern, "keep_matching_keys")
    return lambda env: _remove_if(target(env).kvs, lambda kv: compiled.search(kv.key) is None)


@editor("limit", "target:map, limit:lit_int, ?priority_keys:lit_strings")
def limit(target: Getter, limit: int, priority_keys: list[str] | None) -> Run:
    if limit < 0:
        raise ValueError(f"invalid limit for limit function, {limit} cannot be negative")
    priority = list(dict.fromkeys(priority_keys or ()))
    if len(priority) > limit:
        raise ValueError(f"invalid limit for limit function, {limit} cannot be less than number of priority "
                         f"attributes {len(priority)}")
    keep = frozenset(priority)

    def run(env: Env) -> None:
        kvs = target(env).kvs
        if len(kvs) <= limit:
            return
        count = sum(1 for k in priority if anyvalue.find(kvs, k) >= 0)

        def drop(kv: KeyValue) -> bool:
            nonlocal count
            if kv.key in keep:
                return False
            if count < limit:
                count += 1
                return False
            return True

        _remove_if(kvs, drop)
    return run


@editor("truncate_all", "target:map, limit:lit_int, ?utf8_safe:lit_bool, ?truncation_marker:lit_string")
def truncate_all(target: Getter, limit: int, utf8_safe: bool | None, truncation_marker: str | None) -> Run:
    """String values longer than `limit` bytes are cut to it, the marker (if any) counting against the
    limit and appended. The cut never splits a character: with `utf8_safe: false` the Collector cuts
    at the byte and may leave invalid UTF-8, which an OTLP string cannot carry here, so we back off too."""
    if limit < 0:
        raise ValueError(f"invalid limit for truncate_all function, {limit} cannot be negative")
    marker = truncation_marker or ""
    keep = max(0, limit - len(marker.encode()))

    def run(env: Env) -> None:
        for kv in target(env).kvs:
            if kv.value.WhichOneof("value") == "string_value":
                raw = kv.value.string_value.encode()
                if len(raw) > limit:
                    kv.value.string_value = truncate_utf8(raw, keep) + marker
    return run


def truncate_utf8(raw: bytes, limit: int) -> str:
    """The first `limit` bytes, backing off to the last whole character."""
    return raw[:limit].decode("utf-8", "ignore")


# ---------------------------------------------------------------- replacing

_GO_NAME = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))")


def go_expand(template: str, match: re.Match[str]) -> str:
    """Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`; `$$` is a dollar; a `$` followed by
    anything else stays; an unknown group is the empty string."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if template.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = _GO_NAME.match(template, i)
        if m is None or (m.group(1) is None and not m.group(2)):
            out.append("$")
            i += 1
            continue
        name = m.group(1) if m.group(1) is not None else m.group(2)
        i = m.end()
        if m.group(1) is not None and not name:
            out.append(m.group(0))  # `${}`: not a valid reference, kept as written
            continue
        out.append(_group(match, name))
    return "".join(out)


def _group(match: re.Match[str], name: str) -> str:
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except IndexError:
        return ""
    return value or ""


def replace_all(compiled: re.Pattern[str], text: str, replacement: str, function: Callable[[Any], Any] | None,
                fmt: str | None) -> str:
    def sub(match: re.Match[str]) -> str:
        expanded = go_expand(replacement, match)
        if function is None:
            return expanded
        hashed = function(expanded)
        if not isinstance(hashed, str):
            raise EvalError("replacement value is not a string")
        return fmt.replace("%s", hashed, 1) if fmt is not None else hashed
    return compiled.sub(sub, text)


def _format(fmt: Getter | None, env: Env) -> str | None:
    return None if fmt is None else fmt(env)


@editor("replace_pattern",
        "target:getsetter, regex:lit_string, replacement:string, ?function:function, ?replacementFormat:string")
def replace_pattern(target: Resolved, regex: str, replacement: Getter, function: Callable[[Any], Any] | None,
                    replacementFormat: Getter | None) -> Run:
    compiled = _regex(regex, "replace_pattern")

    def run(env: Env) -> None:
        v = target.get(env)
        if not isinstance(v, str):
            return
        new = replace_all(compiled, v, replacement(env), function, _format(replacementFormat, env))
        if new != v:
            target.set(env, new)
    return run


@editor("replace_all_patterns", "target:map, mode:lit_string, regex:lit_string, replacement:string, "
                                "?function:function, ?replacementFormat:string")
def replace_all_patterns(target: Getter, mode: str, regex: str, replacement: Getter,
                         function: Callable[[Any], Any] | None,
                         replacementFormat: Getter | None) -> Run:
    if mode not in ("key", "value"):
        raise ValueError(f"invalid mode {mode}, must be either 'key' or 'value'")
    compiled = _regex(regex, "replace_all_patterns")

    def run(env: Env) -> None:
        kvs = target(env).kvs
        repl = replacement(env)
        fmt = _format(replacementFormat, env)
        if mode == "value":
            for kv in kvs:
                if kv.value.WhichOneof("value") == "string_value" and compiled.search(kv.value.string_value):
                    kv.value.string_value = replace_all(compiled, kv.value.string_value, repl, function, fmt)
            return
        renamed: list[KeyValue] = []
        for kv in kvs:
            new = KeyValue()
            new.CopyFrom(kv)
            if compiled.search(kv.key):
                new.key = replace_all(compiled, kv.key, repl, function, fmt)
            renamed.append(new)
        out: dict[str, KeyValue] = {}
        for kv in renamed:
            out[kv.key] = kv  # a later key replaced to an earlier one's name wins, as a map Put
        del kvs[:]
        kvs.extend(out.values())
    return run


def glob(pattern: str) -> re.Pattern[str]:
    """gobwas/glob without separators: `*` any run, `?` one character, `[a-z]`/`[!a]` classes,
    `{a,b}` alternatives, `\\` escapes."""
    out: list[str] = []
    i, n, depth = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append(".*")
            i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise ValueError(f"unexpected end of input in glob pattern {pattern!r}")
            body = pattern[i + 1:j]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = j + 1
        elif c == "{":
            out.append("(?:")
            depth += 1
            i += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
            i += 1
        elif c == "," and depth:
            out.append("|")
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    if depth:
        raise ValueError(f"unexpected end of input in glob pattern {pattern!r}")
    return re.compile("".join(out), re.DOTALL)


def _hashed(value: str, function: Callable[[Any], Any] | None, fmt: str | None) -> str:
    if function is None:
        return value
    hashed = function(value)
    if not isinstance(hashed, str):
        raise EvalError("replacement value is not a string")
    return fmt.replace("%s", hashed, 1) if fmt is not None else hashed


@editor("replace_match", "target:getsetter, pattern:lit_string, replacement:string, ?function:function, "
                         "?replacementFormat:string")
def replace_match(target: Resolved, pattern: str, replacement: Getter, function: Callable[[Any], Any] | None,
                  replacementFormat: Getter | None) -> Run:
    compiled = glob(pattern)

    def run(env: Env) -> None:
        v = target.get(env)
        if isinstance(v, str) and compiled.fullmatch(v):
            target.set(env, _hashed(replacement(env), function, _format(replacementFormat, env)))
    return run


@editor("replace_all_matches", "target:map, pattern:lit_string, replacement:string, ?function:function, "
                               "?replacementFormat:string")
def replace_all_matches(target: Getter, pattern: str, replacement: Getter, function: Callable[[Any], Any] | None,
                        replacementFormat: Getter | None) -> Run:
    compiled = glob(pattern)

    def run(env: Env) -> None:
        new = _hashed(replacement(env), function, _format(replacementFormat, env))
        for kv in target(env).kvs:
            if kv.value.WhichOneof("value") == "string_value" and compiled.fullmatch(kv.value.string_value):
                kv.value.string_value = new
    return run


# ---------------------------------------------------------------- maps

@editor("merge_maps", "target:map, source:map, strategy:lit_string")
def merge_maps(target: Getter, source: Getter, strategy: str) -> Run:
    if strategy not in ("insert", "update", "upsert"):
        raise ValueError(f"invalid value for strategy, {strategy}, must be 'insert', 'update' or 'upsert'")

    def run(env: Env) -> None:
        kvs = target(env).kvs
        for kv in list(source(env).kvs):
            at = anyvalue.find(kvs, kv.key)
            if at >= 0:
                if strategy != "insert":
                    kvs[at].value.CopyFrom(kv.value)
            elif strategy != "update":
                kvs.add().CopyFrom(kv)
    return run


@editor("flatten", "target:map, ?prefix:lit_string, ?depth:lit_int, ?resolveConflicts:lit_bool")
def flatten(target: Getter, prefix: str | None, depth: int | None,
            resolveConflicts: bool | None) -> Run:
    if depth is not None and depth < 0:
        raise ValueError(f"invalid depth for flatten function, {depth} cannot be negative")
    max_depth = depth if depth is not None else 2**62
    conflicts = bool(resolveConflicts)

    def run(env: Env) -> None:
        kvs = target(env).kvs
        out: dict[str, AnyValue] = {}
        counts: dict[str, int] = {}

        def add(key: str, value: AnyValue) -> None:
            # With resolveConflicts a taken key gets the first free `.0`, `.1`, ... suffix.
            if conflicts and key in out:
                n = counts.get(key, 0)
                while f"{key}.{n}" in out:
                    n += 1
                counts[key] = n + 1
                key = f"{key}.{n}"
            out[key] = value

        def walk(items: list[tuple[str | None, AnyValue]], pre: str, level: int) -> None:
            for key, value in items:
                name = pre if key is None else f"{pre}.{key}" if pre else key
                kind = value.WhichOneof("value")
                if kind == "kvlist_value" and level < max_depth:
                    walk([(kv.key, kv.value) for kv in value.kvlist_value.values], name, level + 1)
                elif kind == "array_value" and level < max_depth:
                    # resolveConflicts: scalar items of a list take its key (then suffixed), maps an index.
                    walk([(None if conflicts and v.WhichOneof("value") != "kvlist_value" else str(i), v)
                          for i, v in enumerate(value.array_value.values)], name, level + 1)
                else:
                    copy = AnyValue()
                    copy.CopyFrom(value)
                    add(name, copy)

        walk([(kv.key, kv.value) for kv in kvs], prefix or "", 0)
        del kvs[:]
        for key, value in out.items():
            kv = kvs.add()
            kv.key = key
            kv.value.CopyFrom(value)
    return run




# ---------------------------------------------------------------- slices and stringifying

def _slice(target: Resolved, env: Env) -> Any:
    """A `PSliceGetSetter`'s value: the slice the path holds (changed in place)."""
    v = target.get(env)
    if isinstance(v, PSlice):
        return v.values
    raise EvalError(f"expected pcommon.Slice but got {type_name(v) if v is not None else 'nil'}")


@editor("delete_index", "target:getsetter, startIndex:int, ?endIndex:int")
def delete_index(target: Resolved, startIndex: Getter, endIndex: Getter | None) -> Run:
    def run(env: Env) -> None:
        values = _slice(target, env)
        start = startIndex(env)
        end = start + 1 if endIndex is None else endIndex(env)
        n = len(values)
        if start == 0 and end == n:
            del values[:]
            return
        if start < 0 or start >= n:
            raise EvalError(f"startIndex {start} out of bounds for slice of length {n}")
        if end < start:
            raise EvalError(f"endIndex {end} cannot be less than startIndex {start}")
        if end > n:
            raise EvalError(f"deletion range [{start}:{end}] out of bounds for slice of length {n}")
        del values[start:end]
    return run


def stringified(v: AnyValue) -> str:
    """pdata's `Value.AsString`: maps and slices as JSON (keys sorted, HTML characters as they are:
    the Collector's output shows `<b>&` unescaped), bytes as base64."""
    kind = v.WhichOneof("value")
    if kind in ("kvlist_value", "array_value"):
        return json_marshal(anyvalue.to_raw(v))
    return anyvalue.as_string(v)


@editor("stringify_all", "target:getsetter")
def stringify_all(target: Resolved) -> Run:
    def run(env: Env) -> None:
        v = target.get(env)
        if not isinstance(v, PMap):
            raise EvalError(f"expected pcommon.Map but got {type_name(v) if v is not None else 'nil'}")
        for kv in v.kvs:
            if kv.value.WhichOneof("value") != "string_value":
                kv.value.string_value = stringified(kv.value)
    return run
