"""OTTL string converters (contrib `pkg/ottl/ottlfuncs`, v0.161.0): case, trimming, splitting,
substrings, Go's `fmt.Sprintf`, regular expressions.

Go strings are bytes: offsets (`Substring`, `Index`) count UTF-8 bytes, as there. Case conversion to
snake and camel case follows iancoleman/strcase v0.3.0, which works on ASCII bytes only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.values import EvalError, PMap, PSlice, SpanID, TraceID, compare, from_any, new_map, type_name
from pipelines.processors import anyvalue
from pipelines.processors.actions import compile_go_regex

Run = Callable[[Env], Any]

# Go's unicode.IsSpace: what strings.TrimSpace removes.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
           "\u2028\u2029\u202f\u205f\u3000"


def go_quote(s: str) -> str:
    """Go's `%q` of a printable string (strconv.Quote)."""
    return json.dumps(s, ensure_ascii=False)


def _decode(raw: bytes) -> str:
    """Bytes Go would keep as a string; an invalid UTF-8 sequence becomes U+FFFD (protobuf strings
    must be valid UTF-8 here)."""
    return raw.decode("utf-8", "replace")


# ---------------------------------------------------------------- case

def to_snake(s: str) -> str:
    """strcase.ToSnake (v0.3.0)."""
    raw = s.strip(GO_SPACE).encode()
    out = bytearray()
    n = len(raw)
    for i, v in enumerate(raw):
        is_cap = 65 <= v <= 90
        is_low = 97 <= v <= 122
        if is_cap:
            v += 32
        if i + 1 < n:
            nxt = raw[i + 1]
            is_num = 48 <= v <= 57
            next_cap = 65 <= nxt <= 90
            next_low = 97 <= nxt <= 122
            next_num = 48 <= nxt <= 57
            if (is_cap and (next_low or next_num)) or (is_low and (next_cap or next_num)) \
                    or (is_num and (next_cap or next_low)):
                if is_cap and next_low and i > 0 and 65 <= raw[i - 1] <= 90:
                    out.append(95)
                out.append(v)
                if is_low or is_num or next_num:
                    out.append(95)
                continue
        out.append(95 if v in b" _-." else v)
    return _decode(bytes(out))


def to_camel(s: str) -> str:
    """strcase.ToCamel (v0.3.0, no acronyms configured): letters and digits kept, `_ -.` and space
    start a new word, any other byte (non-ASCII included) dropped."""
    raw = s.strip(GO_SPACE).encode()
    out = bytearray()
    cap_next = True
    prev_cap = False
    for i, v in enumerate(raw):
        is_cap = 65 <= v <= 90
        is_low = 97 <= v <= 122
        if cap_next:
            if is_low:
                v -= 32
        elif i == 0:
            if is_cap:
                v += 32
        elif prev_cap and is_cap:
            v += 32
        prev_cap = is_cap
        if is_cap or is_low:
            out.append(v)
            cap_next = False
        elif 48 <= v <= 57:
            out.append(v)
            cap_next = True
        else:
            cap_next = v in b"_ -."
    return out.decode("ascii")


def go_lower(s: str) -> str:
    """strings.ToLower: Unicode simple case mapping, one rune to one rune."""
    if s.isascii():
        return s.lower()
    return "".join(_simple(c, c.lower(), lower=True) for c in s)


def go_upper(s: str) -> str:
    """strings.ToUpper: `ß` stays `ß` (Python's full mapping would give `SS`)."""
    if s.isascii():
        return s.upper()
    return "".join(_simple(c, c.upper(), lower=False) for c in s)


def _simple(c: str, mapped: str, lower: bool) -> str:
    if len(mapped) == 1:
        return mapped
    return mapped[0] if lower else c


_CASES: dict[str, Callable[[str], str]] = {"lower": go_lower, "upper": go_upper, "snake": to_snake, "camel": to_camel}


@converter("ConvertCase", "target:string, toCase:lit_string")
def convert_case(target: Getter, toCase: str) -> Run:
    fn = _CASES.get(toCase)
    if fn is None:
        raise ValueError(f"invalid case: {toCase}, allowed cases are: lower, upper, snake, camel")

    def run(env: Env) -> Any:
        v: str = target(env)
        return fn(v) if v else v
    return run


def _case(name: str, fn: Callable[[str], str]) -> None:
    @converter(name, "target:string")
    def build(target: Getter) -> Run:
        def run(env: Env) -> Any:
            v: str = target(env)
            return fn(v) if v else v
        return run


_case("ToLowerCase", go_lower)
_case("ToUpperCase", go_upper)
_case("ToSnakeCase", to_snake)
_case("ToCamelCase", to_camel)


# ---------------------------------------------------------------- concatenation, trimming, splitting

@converter("Concat", "vals:string_likes, delimiter:string")
def concat(vals: list[Getter], delimiter: Getter) -> Run:
    def run(env: Env) -> Any:
        sep: str = delimiter(env)
        parts = []
        for get in vals:
            v = get(env)
            parts.append("<nil>" if v is None else v)
        return sep.join(parts)
    return run


@converter("Trim", "target:string, ?replacement:lit_string")
def trim(target: Getter, replacement: str | None) -> Run:
    cutset = " " if replacement is None else replacement

    def run(env: Env) -> Any:
        v: str = target(env)
        return v.strip(cutset) if cutset else v
    return run


@converter("TrimPrefix", "target:string, prefix:string")
def trim_prefix(target: Getter, prefix: Getter) -> Run:
    return lambda env: target(env).removeprefix(prefix(env))


@converter("TrimSuffix", "target:string, suffix:string")
def trim_suffix(target: Getter, suffix: Getter) -> Run:
    return lambda env: target(env).removesuffix(suffix(env))


@converter("HasPrefix", "target:string, prefix:string")
def has_prefix(target: Getter, prefix: Getter) -> Run:
    return lambda env: target(env).startswith(prefix(env))


@converter("HasSuffix", "target:string, suffix:string")
def has_suffix(target: Getter, suffix: Getter) -> Run:
    return lambda env: target(env).endswith(suffix(env))


def go_split(s: str, sep: str) -> list[str]:
    """strings.Split: an empty separator splits after each character; an empty string gives [""]."""
    if sep == "":
        return list(s)
    return s.split(sep)


@converter("Split", "target:string, delimiter:lit_string")
def split(target: Getter, delimiter: str) -> Run:
    return lambda env: go_split(target(env), delimiter)


@converter("Substring", "target:string, start:int, length:int, ?utf8_safe:lit_bool")
def substring(target: Getter, start: Getter, length: Getter, utf8_safe: bool | None) -> Run:
    safe = bool(utf8_safe)

    def run(env: Env) -> Any:
        s: int = start(env)
        if s < 0:
            raise EvalError(f"invalid start for substring function, {s} cannot be negative")
        n: int = length(env)
        if n <= 0:
            raise EvalError(f"invalid length for substring function, {n} cannot be negative or zero")
        raw: bytes = target(env).encode()
        if s > len(raw) or n > len(raw) - s:
            raise EvalError(f"invalid range for substring function, start({s})+length({n}) cannot be greater "
                            f"than the length of target string({len(raw)})")
        end = s + n
        if safe:
            while s < len(raw) and raw[s] & 0xC0 == 0x80:
                s += 1
            while end < len(raw) and end > s and raw[end] & 0xC0 == 0x80:
                end -= 1
            if end < s:
                end = s
        return _decode(raw[s:end])
    return run


@converter("Index", "target:getter, value:getter")
def index(target: Getter, value: Getter) -> Run:
    def run(env: Env) -> Any:
        source = target(env)
        v = value(env)
        if isinstance(source, str):
            if not isinstance(v, str):
                raise EvalError("when source is string, value must also be string")
            return source.encode().find(v.encode())
        if isinstance(source, PSlice):
            for i, item in enumerate(source.values):
                if compare(from_any(item), v, "=="):
                    return i
            return -1
        raise EvalError("source must be of type string or slice")
    return run


# ---------------------------------------------------------------- regular expressions

@converter("IsMatch", "target:string_like, pattern:lit_string")
def is_match(target: Getter, pattern: str) -> Run:
    try:
        compiled = compile_go_regex(pattern)
    except re.error as exc:
        raise ValueError(f"the pattern supplied to IsMatch is not a valid regexp pattern: {exc}") from None

    def run(env: Env) -> Any:
        v = target(env)
        return v is not None and compiled.search(v) is not None
    return run


def named_groups_regex(pattern: str) -> tuple[re.Pattern[str], list[tuple[str, str]]]:
    """A Go pattern whose named groups (`(?P<name>`, `(?<name>`; any name Go accepts, `git.sha`
    included) are renamed `_g0`, `_g1`...: the compiled pattern and (internal, Go name) pairs in order."""
    out: list[str] = []
    names: list[tuple[str, str]] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        m = re.compile(r"\(\?P?<([^>]*)>").match(pattern, i)
        if m is not None:
            internal = f"_g{len(names)}"
            names.append((internal, m.group(1)))
            out.append(f"(?P<{internal}>")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return compile_go_regex("".join(out)), names


@converter("ExtractPatterns", "target:string, pattern:lit_string")
def extract_patterns(target: Getter, pattern: str) -> Run:
    try:
        compiled, names = named_groups_regex(pattern)
    except re.error as exc:
        raise ValueError(f"the pattern supplied to ExtractPatterns is not a valid pattern: {exc}") from None
    if not any(go for _, go in names):
        raise ValueError("at least 1 named capture group must be supplied in the given regex")

    def run(env: Env) -> Any:
        out = new_map()
        m = compiled.search(target(env))
        if m is None:
            return out
        for internal, go in names:
            if not go:
                continue
            value = m.group(internal) or ""
            for kv in out.kvs:
                if kv.key == go:
                    kv.value.string_value = value
                    break
            else:
                kv = out.kvs.add()
                kv.key = go
                kv.value.string_value = value
        return out
    return run


# ---------------------------------------------------------------- encodings

@converter("Hex", "target:bytes_like")
def hex_(target: Getter) -> Run:
    def run(env: Env) -> Any:
        v = target(env)
        return "" if v is None else v.hex()
    return run


@converter("IsValidLuhn", "target:string_like")
def is_valid_luhn(target: Getter) -> Run:
    def digit(c: str) -> int:
        if not ("0" <= c <= "9"):
            raise EvalError(f'strconv.Atoi: parsing "{c}": invalid syntax')
        return ord(c) - 48

    def run(env: Env) -> Any:
        v = target(env)
        if v is None:
            raise EvalError("invalid input: <nil>")
        number = v.replace(" ", "")
        if not number:
            return False
        check = digit(number[-1])
        total, alternate = 0, True
        for c in reversed(number[:-1]):
            d = digit(c)
            if alternate:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
            alternate = not alternate
        return (10 - total % 10) % 10 == check
    return run


# ---------------------------------------------------------------- maps as key=value text

def _kv_quote(s: str, delimiter: str, pair_delimiter: str) -> str:
    s = s.replace('"', '\\"')
    if pair_delimiter in s or delimiter in s:
        return f'"{s}"'
    return s


@converter("ToKeyValueString", "target:map, ?delimiter:lit_string, ?pair_delimiter:lit_string, ?sort_output:lit_bool")
def to_key_value_string(target: Getter, delimiter: str | None, pair_delimiter: str | None,
                        sort_output: bool | None) -> Run:
    if delimiter == "":
        raise ValueError("delimiter cannot be set to an empty string")
    if pair_delimiter == "":
        raise ValueError("pair delimiter cannot be set to an empty string")
    d = "=" if delimiter is None else delimiter
    p = " " if pair_delimiter is None else pair_delimiter
    if d == p:
        raise ValueError(f"pair delimiter {go_quote(p)} cannot be equal to delimiter {go_quote(d)}")

    def run(env: Env) -> Any:
        kvs = list(target(env).kvs)
        if sort_output:
            kvs.sort(key=lambda kv: kv.key.encode())
        return p.join(f"{_kv_quote(kv.key, d, p)}{d}{_kv_quote(anyvalue.as_string(kv.value), d, p)}" for kv in kvs)
    return run


# ---------------------------------------------------------------- Go's fmt.Sprintf

@converter("Format", "format:lit_string, vals:getters")
def format_(format: str, vals: list[Getter]) -> Run:
    return lambda env: go_sprintf(format, [v(env) for v in vals])


_SPEC = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])?")


# Go's fmt refuses widths and precisions past a million (`tooLarge`): the output would be that long.
_FMT_LIMIT = 1_000_000


def _fmt_int(args: list[Any], i: int) -> bool:
    """Whether args[i] is a `*` width or precision Go's fmt takes: an int within a million either way."""
    return i < len(args) and isinstance(args[i], int) and not isinstance(args[i], bool) and \
        abs(args[i]) <= _FMT_LIMIT


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf over OTTL values: flags `-+# 0`, width, precision, the verbs `v s q d b o x X c U
    e E f F g G t %`, and Go's `%!verb(type=value)`, `%!verb(MISSING)`, `%!(EXTRA ...)` markers."""
    out: list[str] = []
    pos, argi, n = 0, 0, len(fmt)
    while pos < n:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _SPEC.match(fmt, j)
        assert m is not None
        flags, width_s, prec_s, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        has_prec = "." in fmt[j:m.end()]
        pos = m.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        if (width_s and width_s != "*" and int(width_s) > _FMT_LIMIT) or \
                (has_prec and prec_s and prec_s != "*" and int(prec_s) > _FMT_LIMIT):
            out.append("%!(NOVERB)")  # Go's parsenum gives up on a number past 1e6
            break
        width: int | None = None
        if width_s == "*":
            if _fmt_int(args, argi):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        elif width_s:
            width = int(width_s)
        prec: int | None = None
        if has_prec:
            if prec_s == "*":
                if _fmt_int(args, argi):
                    prec = args[argi] if args[argi] >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_fmt_one(arg, verb, flags, width, prec))
    if argi < len(args):
        extra = ", ".join(_bad_arg(a) for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_arg(a: Any) -> str:
    return "<nil>" if a is None else f"{type_name(a)}={_fmt_v(a)}"


def _bad(verb: str, a: Any) -> str:
    return f"%!{verb}({_bad_arg(a)})"


def _pad(s: str, flags: str, width: int | None, numeric: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and numeric:
        sign = s[0] if s and s[0] in "+- " else ""
        body = s[len(sign):]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def go_float_g(f: float, prec: int = -1, upper: bool = False) -> str:
    """strconv.FormatFloat(f, 'g', prec, 64)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if prec == 0:
        prec = 1
    if prec < 0:
        digits, exp = _shortest(f)
        eprec = 6
    else:
        text = f"{abs(f):.{prec - 1}e}"
        mant, _, e = text.partition("e")
        digits = mant.replace(".", "").rstrip("0") or "0"
        exp = int(e)
        eprec = prec
        if eprec > len(digits) and len(digits) >= exp + 1:
            eprec = len(digits)
    sign = "-" if math.copysign(1, f) < 0 else ""
    if exp < -4 or exp >= eprec:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = "E" if upper else "e"
        return f"{sign}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= 0:
        whole = digits[:exp + 1].ljust(exp + 1, "0")
        frac = digits[exp + 1:]
    else:
        whole = "0"
        frac = "0" * (-exp - 1) + digits
    return sign + whole + ("." + frac if frac else "")


def _shortest(f: float) -> tuple[str, int]:
    """The shortest decimal digits that round-trip, and the decimal exponent of the first."""
    if f == 0:
        return "0", 0
    d = Decimal(repr(abs(f)))
    sign_digits_exp = d.as_tuple()
    digits = "".join(map(str, sign_digits_exp.digits)).rstrip("0") or "0"
    exponent = sign_digits_exp.exponent
    assert isinstance(exponent, int)
    exp = len("".join(map(str, sign_digits_exp.digits))) - 1 + exponent
    return digits, exp


def _fmt_v(a: Any) -> str:
    if a is None:
        return "<nil>"
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, int):
        return str(a)
    if isinstance(a, float):
        return go_float_g(a)
    if isinstance(a, str):
        return a
    if isinstance(a, (TraceID, SpanID, bytes)):
        return "[" + " ".join(str(b) for b in a) + "]"
    if isinstance(a, list):
        return "[" + " ".join(_fmt_v(x) for x in a) + "]"
    if isinstance(a, PSlice):
        return "[" + " ".join(_fmt_v(x) for x in a.raw()) + "]"
    if isinstance(a, PMap):
        return "map[" + " ".join(f"{k}:{_fmt_v(v)}" for k, v in sorted(a.raw().items())) + "]"
    if isinstance(a, dict):
        return "map[" + " ".join(f"{k}:{_fmt_v(v)}" for k, v in sorted(a.items())) + "]"
    return str(a)


def _int_digits(a: int, verb: str, flags: str, prec: int | None) -> str:
    neg = a < 0
    mag = -a if neg else a
    if verb == "d":
        body = str(mag)
    elif verb == "b":
        body = format(mag, "b")
    elif verb in "oO":
        body = format(mag, "o")
    elif verb == "x":
        body = format(mag, "x")
    else:
        body = format(mag, "X")
    if prec is not None:
        body = "" if prec == 0 and mag == 0 else body.rjust(prec, "0")
    if "#" in flags:
        if verb == "x":
            body = "0x" + body
        elif verb == "X":
            body = "0X" + body
        elif verb == "o" and not body.startswith("0"):
            body = "0" + body
        elif verb == "b":
            body = "0b" + body
    if verb == "O":
        body = "0o" + body
    sign = "-" if neg else "+" if "+" in flags else " " if " " in flags else ""
    return sign + body


def _fmt_float(a: float, verb: str, flags: str, prec: int | None) -> str:
    if math.isnan(a) or math.isinf(a):
        body = "NaN" if math.isnan(a) else ("+Inf" if a > 0 else "-Inf")
        if "+" not in flags and body == "+Inf":
            body = "Inf" if " " not in flags else " Inf"
        return body
    if verb in "fF":
        body = f"{a:.{6 if prec is None else prec}f}"
    elif verb in "eE":
        body = f"{a:.{6 if prec is None else prec}e}"
        if verb == "E":
            body = body.upper()
    else:
        body = go_float_g(a, -1 if prec is None else prec, upper=verb == "G")
    if not body.startswith("-"):
        body = ("+" if "+" in flags else " " if " " in flags else "") + body
    return body


def _fmt_one(a: Any, verb: str, flags: str, width: int | None, prec: int | None) -> str:
    if verb == "v":
        if isinstance(a, float):
            return _pad(_fmt_float(a, "g", flags, prec), flags, width, True)
        if isinstance(a, int) and not isinstance(a, bool):
            return _pad(_int_digits(a, "d", flags, prec), flags, width, True)
        return _pad(_fmt_v(a), flags, width)
    if a is None:
        return f"%!{verb}(<nil>)"
    if verb == "t":
        return _pad("true" if a else "false", flags, width) if isinstance(a, bool) else _bad(verb, a)
    if isinstance(a, bool):
        return _bad(verb, a)
    if isinstance(a, int):
        if verb in "dboOxX":
            return _pad(_int_digits(a, verb, flags, prec), flags, width, True)
        if verb == "c":
            return _pad(chr(a) if 0 <= a <= 0x10FFFF else "\ufffd", flags, width)
        if verb == "U":
            return _pad(f"U+{a:04X}", flags, width)
        if verb == "q":
            return _pad(json.dumps(chr(a) if 0 <= a <= 0x10FFFF else "\ufffd", ensure_ascii=False)
                        .replace('"', "'"), flags, width)
        return _bad(verb, a)
    if isinstance(a, float):
        if verb in "eEfFgG":
            return _pad(_fmt_float(a, verb, flags, prec), flags, width, True)
        return _bad(verb, a)
    if isinstance(a, str):
        if verb == "s":
            return _pad(a if prec is None else a[:prec], flags, width)
        if verb == "q":
            return _pad(json.dumps(a if prec is None else a[:prec], ensure_ascii=False), flags, width)
        if verb in "xX":
            raw = (a if prec is None else a[:prec]).encode()
            return _pad(raw.hex() if verb == "x" else raw.hex().upper(), flags, width)
        return _bad(verb, a)
    if isinstance(a, bytes) and not isinstance(a, (TraceID, SpanID)):
        if verb == "s":
            return _pad(_decode(a), flags, width)
        if verb in "xX":
            return _pad(a.hex() if verb == "x" else a.hex().upper(), flags, width)
    return _pad(_fmt_v(a), flags, width)
