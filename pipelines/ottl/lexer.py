"""OTTL tokens, as the Collector's lexer cuts them (`buildLexer` in `pkg/ottl/grammar.go`): `0x` bytes,
floats written with a dot, 64-bit ints (a sign sticks to the digits: `-1`), double-quoted strings
unquoted as Go's `strconv.Unquote` does, comparison and math operators, punctuation, and identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass


class OttlError(ValueError):
    """A condition or statement that does not parse, or uses what this subset refuses."""


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
CMP = ("==", "!=", ">=", "<=", ">", "<")
_DIGITS = "0123456789"
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string, bytes, int, float, ident, cmp, math, punct, eof
    text: str
    pos: int
    value: str | int | float | bytes | None = None


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            end, value = _scan_string(text, i)
            out.append(Token("string", text[i:end], i, value))
            i = end
        elif c == "0" and text[i + 1:i + 2] in ("x", "X") and _is_hex(text[i + 2:i + 3]):
            j = i + 2
            while j < n and _is_hex(text[j]):
                j += 1
            digits = text[i + 2:j]
            if len(digits) % 2:
                raise OttlError(f"invalid bytes literal {text[i:j]!r}: odd number of hex digits")
            out.append(Token("bytes", text[i:j], i, bytes.fromhex(digits)))
            i = j
        elif c in _DIGITS or (c in "+-." and _starts_number(text, i)):
            i = _scan_number(text, i, out)
        elif c.isascii() and c.isalpha():
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(Token("ident", text[i:j], i))
            i = j
        elif text.startswith(CMP, i):
            op = next(o for o in CMP if text.startswith(o, i))
            out.append(Token("cmp", op, i))
            i += len(op)
        elif c in "+-*/":
            out.append(Token("math", c, i))
            i += 1
        elif c in "()[]{},.:=":
            out.append(Token("punct", c, i))
            i += 1
        else:
            raise OttlError(f"unexpected character {c!r} at col {i + 1}")
    out.append(Token("eof", "", n))
    return out


def _is_hex(c: str) -> bool:
    return len(c) == 1 and c in "0123456789abcdefABCDEF"


def _starts_number(text: str, i: int) -> bool:
    """A sign or a dot starts a number when a digit follows (as OTTL's lexer reads `-1`, `.5`)."""
    rest = text[i + 1:i + 3] if text[i] in "+-" else text[i:i + 2]
    if rest[:1] == ".":
        return rest[1:2] in tuple(_DIGITS)
    return rest[:1] in tuple(_DIGITS)


def _scan_number(text: str, i: int, out: list[Token]) -> int:
    j = i + 1 if text[i] in "+-" else i
    n = len(text)
    while j < n and text[j] in _DIGITS:
        j += 1
    is_float = j + 1 < n and text[j] == "." and text[j + 1] in _DIGITS
    if is_float:
        j += 1
        while j < n and text[j] in _DIGITS:
            j += 1
        if j < n and text[j] in "eE":
            k = j + 1 + (text[j + 1:j + 2] in ("+", "-"))
            if k < n and text[k] in _DIGITS:
                j = k
                while j < n and text[j] in _DIGITS:
                    j += 1
        out.append(Token("float", text[i:j], i, float(text[i:j])))
        return j
    value = int(text[i:j])
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OttlError(f"integer {text[i:j]} does not fit in 64 bits")
    out.append(Token("int", text[i:j], i, value))
    return j


def _scan_string(text: str, start: int) -> tuple[int, str]:
    """A double-quoted Go string literal; its value as `strconv.Unquote` gives it. Bytes that are not
    UTF-8 (from `\\x` or octal escapes) become surrogate escapes, so they equal no attribute string."""
    buf = bytearray()
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1, buf.decode("utf-8", "surrogateescape")
        if c == "\n":
            raise OttlError(f"newline in string literal at col {start + 1}")
        if c != "\\":
            buf += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        esc = text[i + 1:i + 2]
        if esc in _SIMPLE_ESCAPES:
            buf += _SIMPLE_ESCAPES[esc].encode()
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = text[i + 2:i + 2 + width]
            if len(digits) != width or not all(map(_is_hex, digits)):
                raise OttlError(f"invalid \\{esc} escape in string literal at col {i + 1}")
            code = int(digits, 16)
            if esc == "x":
                buf.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise OttlError(f"invalid code point \\{esc}{digits} in string literal at col {i + 1}")
            else:
                buf += chr(code).encode()
            i += 2 + width
        elif esc in "01234567" and esc:
            digits = text[i + 1:i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise OttlError(f"invalid octal escape in string literal at col {i + 1}")
            buf.append(int(digits, 8))
            i += 4
        else:
            raise OttlError(f"invalid escape \\{esc} in string literal at col {i + 1}")
    raise OttlError(f"unterminated string literal at col {start + 1}")
