"""OTTL hashing and encoding converters (contrib `pkg/ottl/ottlfuncs`, v0.161.0).

Hashes take a string (`StringGetter`: nil or any other type is an error) and hash its UTF-8 bytes; an
empty string is hashed too. Digests are lower-case hex strings, except `FNV` (FNV-1a 64 as a signed
int64). `Murmur3Hash`/`Murmur3Hash128` are the hex of the little-endian bytes of the 32-bit hash and
of (h1, h2) of the x64 128-bit hash (seed 0); `XXH3`/`XXH128` the big-endian canonical digests.

Base64 decoding follows Go's `encoding/base64`: CR and LF are skipped anywhere, padding is required
by the padded variants and refused by the raw ones, and an error names the offending input byte
(`illegal base64 data at input byte 4`). A decoded Go string may hold any bytes; a Python string
cannot, so bytes that are not UTF-8 become U+FFFD.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from collections.abc import Callable
from typing import Any

import xxhash

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.values import EvalError, type_name

Run = Callable[[Env], Any]

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1


def _int64(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


def _hex_digest(name: str, digest: Callable[[bytes], str]) -> None:
    @converter(name, "target:string")
    def build(target: Getter) -> Run:
        def run(env: Env) -> str:
            return digest(target(env).encode())
        return run


_hex_digest("SHA1", lambda b: hashlib.sha1(b, usedforsecurity=False).hexdigest())
_hex_digest("SHA256", lambda b: hashlib.sha256(b).hexdigest())
_hex_digest("SHA512", lambda b: hashlib.sha512(b).hexdigest())
_hex_digest("MD5", lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest())
_hex_digest("XXH3", lambda b: xxhash.xxh3_64(b).hexdigest())
_hex_digest("XXH128", lambda b: xxhash.xxh3_128(b).hexdigest())


# ---------------------------------------------------------------- FNV-1a 64

def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & _M64
    return h


@converter("FNV", "target:string")
def fnv(target: Getter) -> Run:
    def run(env: Env) -> int:
        return _int64(fnv1a64(target(env).encode()))
    return run


# ---------------------------------------------------------------- MurmurHash3 (seed 0)

def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def murmur3_32(data: bytes, seed: int = 0) -> int:
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _M32
    n = len(data)
    whole = n - n % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (_rotl32((k * c1) & _M32, 15) * c2) & _M32
        h = (_rotl32(h ^ k, 13) * 5 + 0xE6546B64) & _M32
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (_rotl32((k * c1) & _M32, 15) * c2) & _M32
        h ^= k
    return _fmix32(h ^ n)


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def murmur3_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """MurmurHash3_x64_128: (h1, h2)."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed & _M64
    n = len(data)
    whole = n - n % 16
    for i in range(0, whole, 16):
        k1 = int.from_bytes(data[i:i + 8], "little")
        k2 = int.from_bytes(data[i + 8:i + 16], "little")
        h1 ^= (_rotl64((k1 * c1) & _M64, 31) * c2) & _M64
        h1 = ((_rotl64(h1, 27) + h2) * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl64((k2 * c2) & _M64, 33) * c1) & _M64
        h2 = ((_rotl64(h2, 31) + h1) * 5 + 0x38495AB5) & _M64
    tail = data[whole:]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl64((k2 * c2) & _M64, 33) * c1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl64((k1 * c1) & _M64, 31) * c2) & _M64
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


@converter("Murmur3Hash", "target:string")
def murmur3_hash(target: Getter) -> Run:
    def run(env: Env) -> str:
        return murmur3_32(target(env).encode()).to_bytes(4, "little").hex()
    return run


@converter("Murmur3Hash128", "target:string")
def murmur3_hash128(target: Getter) -> Run:
    def run(env: Env) -> str:
        h1, h2 = murmur3_128(target(env).encode())
        return (h1.to_bytes(8, "little") + h2.to_bytes(8, "little")).hex()
    return run


# ---------------------------------------------------------------- base64, Go style

_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _decode_map(alphabet: bytes) -> list[int]:
    table = [-1] * 256
    for i, c in enumerate(alphabet):
        table[c] = i
    return table


_STD_MAP, _URL_MAP = _decode_map(_STD), _decode_map(_URL)
# variant: (decode map, padded)
VARIANTS: dict[str, tuple[list[int], bool]] = {
    "base64": (_STD_MAP, True), "base64-raw": (_STD_MAP, False),
    "base64-url": (_URL_MAP, True), "base64-raw-url": (_URL_MAP, False),
}
_NEWLINES = (0x0A, 0x0D)


class CorruptInput(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")


def go_b64decode(src: bytes, table: list[int], padded: bool) -> bytes:
    """Go's `Encoding.DecodeString` (non-strict), quantum by quantum; CorruptInput as Go's error."""
    out = bytearray()
    si, n = 0, len(src)
    while True:
        quantum = [0, 0, 0, 0]
        j = 0
        dlen = 4
        trailing: int | None = None
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                if j == 1 or padded:
                    raise CorruptInput(si - j)
                dlen = j
                break
            c = src[si]
            si += 1
            v = table[c]
            if v >= 0:
                quantum[j] = v
                j += 1
                continue
            if c in _NEWLINES:
                continue
            if not padded or c != 0x3D:
                raise CorruptInput(si - 1)
            if j < 2:  # padding too early
                raise CorruptInput(si - 1)
            while si < n and src[si] in _NEWLINES:
                si += 1
            if j == 2:  # a second "=" is due
                if si == n:
                    raise CorruptInput(n)
                if src[si] != 0x3D:
                    raise CorruptInput(si - 1)
                si += 1
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si < n:
                trailing = si
            dlen = j
            break
        val = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3]
        out += val.to_bytes(3, "big")[:dlen - 1]
        if trailing is not None:
            raise CorruptInput(trailing)
        if dlen < 4:
            return bytes(out)


def go_b64encode(data: bytes, variant: str) -> str:
    if variant in ("base64-url", "base64-raw-url"):
        text = base64.urlsafe_b64encode(data).decode()
    else:
        text = base64.b64encode(data).decode()
    return text.rstrip("=") if "raw" in variant else text


def go_string(data: bytes) -> str:
    """`string(b)` as a Python string: bytes that are not UTF-8 become U+FFFD."""
    return data.decode("utf-8", "replace")


@converter("Base64Decode", "value:string")
def base64_decode(value: Getter) -> Run:
    def run(env: Env) -> str:
        try:
            return go_string(go_b64decode(value(env).encode(), _STD_MAP, True))
        except CorruptInput as exc:
            raise EvalError(str(exc)) from None
    return run


@converter("Base64Encode", "value:string, ?variant:string")
def base64_encode(value: Getter, variant: Getter | None) -> Run:
    def run(env: Env) -> str:
        data = value(env).encode()
        name = "base64" if variant is None else variant(env)
        if name not in VARIANTS:
            raise EvalError(f"unsupported base64 variant: {name}")
        return go_b64encode(data, name)
    return run


# ---------------------------------------------------------------- text encodings (Decode, Encode)

# `textutils.LookupEncoding`'s overrides (lower-cased names); anything else is an IANA name, which
# Python's codec registry resolves for the common ones (ISO-8859-x, windows-125x, Shift_JIS, ...).
_OVERRIDES = {
    "": "utf-8", "nop": "nop", "ascii": "utf-8", "us-ascii": "utf-8", "utf8": "utf-8", "utf-8": "utf-8",
    "utf16": "utf-16-le", "utf-16": "utf-16-le", "utf16le": "utf-16-le", "utf-16le": "utf-16-le",
    "utf16be": "utf-16-be", "utf-16be": "utf-16-be",
}
# Python codecs that are no IANA character set (or transform bytes rather than text).
_NOT_IANA = frozenset({"mbcs", "oem", "palmos", "punycode", "idna", "raw_unicode_escape", "unicode_escape",
                       "undefined", "utf_8_sig", "utf_7", "cp65001", "kz1048", "ptcp154", "hz", "mac_roman",
                       "mac_cyrillic", "mac_greek", "mac_iceland", "mac_latin2", "mac_turkish", "mac_arabic",
                       "mac_croatian", "mac_farsi", "mac_romanian"})
_WHITESPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
              "\u2028\u2029\u202f\u205f\u3000"


def lookup_encoding(name: str) -> str:
    """A Python codec name for a `textutils.LookupEncoding` name, or EvalError as its error."""
    override = _OVERRIDES.get(name.lower())
    if override is not None:
        return override
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise EvalError(f"unsupported encoding '{name}'") from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_IANA:
        raise EvalError(f"unsupported encoding '{name}'")
    return info.name


def _raw_bytes(v: Any, function: str) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes) and type(v) is bytes:
        return v
    raise EvalError(f"unsupported type provided to {function} function: {type_name(v)}")


@converter("Decode", "value:getter, encoding:string")
def decode(value: Getter, encoding: Getter) -> Run:
    def run(env: Env) -> str:
        v = value(env)
        name = encoding(env)
        data = _raw_bytes(v, "Decode")
        if name in VARIANTS:
            table, padded = VARIANTS[name]
            trimmed = data.decode("utf-8", "surrogateescape").strip(_WHITESPACE).encode("utf-8", "surrogateescape")
            try:
                return go_string(go_b64decode(trimmed, table, padded))
            except CorruptInput as exc:
                raise EvalError(f"could not decode: {exc}") from None
        codec = lookup_encoding(name)
        if codec == "nop":
            return go_string(data)
        return data.decode(codec, "replace")
    return run


def _sanitize(data: bytes, replacement: str, utf8: bool) -> str:
    """`encodeAndSanitize`'s last step: when the output is no valid UTF-8 (or is UTF-8 and a replacement
    is given), every byte that is no UTF-8, and every U+FFFD, becomes `replacement`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    else:
        if not (utf8 and replacement != "\ufffd"):
            return text
    return text.replace("\ufffd", replacement)


@converter("Encode", "value:getter, encoding:lit_string, ?replacement:string")
def encode(value: Getter, encoding: str, replacement: Getter | None) -> Run:
    def run(env: Env) -> str:
        data = _raw_bytes(value(env), "Encode")
        repl = "\ufffd"
        if replacement is not None:
            try:
                repl = replacement(env)
            except EvalError as exc:
                raise EvalError(f"failed to get replacement charset: {exc}") from None
        if encoding in VARIANTS:
            return go_b64encode(data, encoding)
        if encoding in ("utf8-raw", "utf-8-raw", "nop"):
            return go_string(data)
        if encoding in ("ascii", "us-ascii"):
            try:
                return data.decode("utf-8", "replace").encode("ascii").decode("ascii")
            except UnicodeEncodeError:
                raise EvalError("could not encode: encoding: rune not supported by encoding.") from None
        codec = lookup_encoding(encoding)
        if codec == "nop":
            return go_string(data)
        text = data.decode("utf-8", "replace")
        try:
            out = text.encode(codec)
        except UnicodeEncodeError:
            try:
                out = text.replace("\ufffd", repl).encode(codec)
            except UnicodeEncodeError:
                raise EvalError("could not encode: encoding: rune not supported by encoding.") from None
        return _sanitize(out, repl, codec == "utf-8")
    return run
