"""HTTP field syntax (RFC 9110, section 5): what a header name and value may hold, for the places that
write or check them (our HTTP/1.1 fast lane's parser, `response_headers`, `gateway top`'s headers)."""

from __future__ import annotations

# tchar: the characters of a token, which is what a field name is.
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def is_token(text: str) -> bool:
    """A non-empty run of token characters (a valid field name)."""
    return bool(text) and not text.strip(TOKEN_CHARS)


def has_control(text: str) -> bool:
    """A control character other than HTAB (CR, LF, NUL, DEL...), which no field value may hold."""
    return any((c < " " and c != "\t") or c == "\x7f" for c in text)
