"""OTTL parsing converters (contrib `pkg/ottl/ottlfuncs`, v0.161.0): `ParseJSON`, `ParseKeyValue`,
`ParseCSV`, `URL`.

JSON numbers are float64 in Go's decoding, so every number parses to a double (`{"a":1}` gives
`1.0`), as pdata's `FromRaw` of a float64.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.functions.strings import GO_SPACE, go_quote
from pipelines.ottl.values import EvalError, PMap, PSlice, new_map
from pipelines.processors import anyvalue

Run = Callable[[Env], Any]
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _raw_map(raw: dict[str, Any]) -> PMap:
    return PMap(anyvalue.from_raw(raw).kvlist_value.values)


# ---------------------------------------------------------------- JSON

def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _go_float(text: str) -> float:
    f = float(text)
    if math.isinf(f):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return f


def _fix_strings(v: Any) -> Any:
    """Go decodes a lone surrogate escape as U+FFFD."""
    if isinstance(v, str):
        return _LONE_SURROGATE.sub("\ufffd", v)
    if isinstance(v, list):
        return [_fix_strings(x) for x in v]
    if isinstance(v, dict):
        return {_fix_strings(k): _fix_strings(x) for k, x in v.items()}
    return v


def parse_json(text: str) -> PMap | PSlice:
    try:
        parsed = json.loads(text, parse_int=_go_float, parse_float=_go_float, parse_constant=_no_constant)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    parsed = _fix_strings(parsed)
    if isinstance(parsed, dict):
        return _raw_map(parsed)
    if isinstance(parsed, list):
        return PSlice(anyvalue.from_raw(parsed).array_value.values)
    go = {bool: "bool", float: "float64", str: "string", type(None): "<nil>"}.get(type(parsed), "")
    raise EvalError(f"could not convert parsed value of type {go} to JSON object")


@converter("ParseJSON", "target:string")
def parse_json_(target: Getter) -> Run:
    return lambda env: parse_json(target(env))


# ---------------------------------------------------------------- key=value pairs

def split_quoted(text: str, delimiter: str) -> list[str]:
    """parseutils.SplitString: split on `delimiter` outside '...' or "..." quotes, dropping the
    quotes and empty parts."""
    out: list[str] = []
    current: list[str] = []
    quote = ""
    i, n, d = 0, len(text), len(delimiter)
    while i < n:
        if not quote and text.startswith(delimiter, i):
            if current:
                out.append("".join(current))
                current = []
            i += d
            continue
        c = text[i]
        i += 1
        if not quote and c in "\"'":
            quote = c
            continue
        if c == quote:
            quote = ""
            continue
        current.append(c)
    if quote:
        raise EvalError("never reached the end of a quoted value")
    if current:
        out.append("".join(current))
    return out


@converter("ParseKeyValue", "target:string, ?delimiter:lit_string, ?pair_delimiter:lit_string")
def parse_key_value(target: Getter, delimiter: str | None, pair_delimiter: str | None) -> Run:
    d = delimiter or "="
    p = pair_delimiter or " "
    if d == p:
        raise ValueError(f"pair delimiter {go_quote(p)} cannot be equal to delimiter {go_quote(d)}")

    def run(env: Env) -> Any:
        source: str = target(env)
        if source == "":
            raise EvalError("cannot parse from empty target")
        try:
            pairs = split_quoted(source, p)
        except EvalError as exc:
            raise EvalError(f"splitting source {go_quote(source)} into pairs failed: {exc}") from None
        parsed: dict[str, Any] = {}
        for pair in pairs:
            parts = pair.split(d, 1)
            if len(parts) != 2:
                raise EvalError(f"cannot split {go_quote(pair)} into 2 items, got {len(parts)} item(s)")
            parsed[parts[0].strip(GO_SPACE)] = parts[1].strip(GO_SPACE)
        return _raw_map(parsed)
    return run


# ---------------------------------------------------------------- CSV

def csv_fields(line: str, comma: str, lazy: bool) -> list[str]:
    """One record as Go's encoding/csv reads it (LazyQuotes per `lazy`)."""
    fields: list[str] = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == '"':
            i += 1
            buf: list[str] = []
            while True:
                j = line.find('"', i)
                if j < 0:
                    if not lazy:
                        raise EvalError('parse error: extraneous or missing " in quoted-field')
                    buf.append(line[i:])
                    i = n
                    break
                buf.append(line[i:j])
                i = j + 1
                if line.startswith('"', i):
                    buf.append('"')
                    i += 1
                elif i >= n or line.startswith(comma, i):
                    break
                elif lazy:
                    buf.append('"')
                else:
                    raise EvalError('parse error: extraneous or missing " in quoted-field')
            fields.append("".join(buf))
        else:
            j = line.find(comma, i)
            field = line[i:] if j < 0 else line[i:j]
            if not lazy and '"' in field:
                raise EvalError('parse error: bare " in non-quoted field')
            fields.append(field)
            i = n if j < 0 else j
        if i >= n:
            return fields
        i += len(comma)
        if i >= n:
            fields.append("")
            return fields


@converter("ParseCSV", "target:string, headers:string, ?delimiter:lit_string, ?headerDelimiter:lit_string, "
                       "?mode:lit_string")
def parse_csv(target: Getter, headers: Getter, delimiter: str | None, headerDelimiter: str | None,
              mode: str | None) -> Run:
    comma = "," if delimiter is None else delimiter
    if len(comma) != 1:
        raise ValueError("'delimiter' must be a single character")
    header_sep = comma if headerDelimiter is None else headerDelimiter
    if len(header_sep) != 1:
        raise ValueError("'headerDelimiter' must be a single character")
    how = mode or "strict"
    if how not in ("strict", "lazyQuotes", "ignoreQuotes"):
        raise ValueError(f"unknown mode: {how}")

    def run(env: Env) -> Any:
        names = headers(env).split(header_sep)
        row = target(env).strip("\r\n")
        fields = row.split(comma) if how == "ignoreQuotes" else csv_fields(row, comma, how == "lazyQuotes")
        if len(fields) != len(names):
            raise EvalError(f"wrong number of fields: expected {len(names)}, found {len(fields)}")
        return _raw_map(dict(zip(names, fields, strict=True)))
    return run


# ---------------------------------------------------------------- URL

_PORT = re.compile(r"^[0-9]*$")


@converter("URL", "url:string")
def url(url: Getter) -> Run:
    def run(env: Env) -> Any:
        text: str = url(env)
        if text == "":
            raise EvalError("url cannot be empty")
        return _raw_map(parse_url(text))
    return run


def parse_url(text: str) -> dict[str, Any]:
    """parseutils.ParseURI(text, semconv=true) over Go's url.Parse."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise EvalError(f'parse "{text}": net/url: invalid control character in URL')
    parts = urlsplit(text, allow_fragments=True)
    netloc = parts.netloc
    userinfo: str | None = None
    hostport = netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end] if end >= 0 else hostport[1:]
        rest = hostport[end + 1:] if end >= 0 else ""
        if rest.startswith(":"):
            port = rest[1:]
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if not _PORT.match(port):
        raise EvalError(f'parse "{text}": invalid port ":{port}" after host')
    out: dict[str, Any] = {
        "url.original": text,
        "url.domain": host,
        "url.scheme": parts.scheme,
        "url.path": unquote(parts.path),
    }
    if port:
        out["url.port"] = int(port)
    if parts.fragment:
        out["url.fragment"] = unquote(parts.fragment)
    if userinfo is not None:
        out["url.user_info"] = userinfo
        name, has_pwd, pwd = userinfo.partition(":")
        if name:
            out["url.username"] = unquote(name)
        if has_pwd:
            out["url.password"] = unquote(pwd)
    if parts.query:
        out["url.query"] = parts.query
    path = out["url.path"]
    dot = path.rfind(".")
    if dot != -1 and dot < len(path) - 1:
        out["url.extension"] = path[dot + 1:]
    return out


@converter("UserAgent", "target:string")
def user_agent(target: Getter) -> Run:
    """The semantic-convention attributes of a User-Agent string, by uap-core's rules (the
    `ua-parser` package with its bundled rules, as the Collector uses uap-go): `user_agent.original`,
    `user_agent.name` (`Other` when no rule matches), `user_agent.version`, `os.name`, and
    `os.version` when there is one."""
    from ua_parser import parse  # imported on first use: its rules take a moment to load

    def run(env: Env) -> Any:
        text = target(env)
        found = parse(text)
        ua, os_ = found.user_agent, found.os
        out = new_map()
        entries = [
            ("user_agent.original", text),
            ("user_agent.name", ua.family if ua else "Other"),
            ("user_agent.version", _version(ua.major, ua.minor, ua.patch) if ua else ""),
            ("os.name", os_.family if os_ else "Other"),
        ]
        os_version = _version(os_.major, os_.minor, os_.patch, os_.patch_minor) if os_ else ""
        if os_version:
            entries.append(("os.version", os_version))
        for key, value in entries:
            kv = out.kvs.add()
            kv.key = key
            kv.value.string_value = value
        return out
    return run


def _version(*parts: str | None) -> str:
    """uap-go's ToVersionString: the parts that are set, joined with dots."""
    return ".".join(p for p in parts if p)
