"""Hashing and encoding converters: known vectors (the Collector's own test values where it has
them), empty and unicode input, nil and type mismatches, Go's base64 errors, text encodings."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from pipelines.batch import RequestContext
from pipelines.ottl.compile import compile_condition, compile_statement
from pipelines.ottl.contexts import Env
from pipelines.ottl.functions.hashing import VARIANTS, fnv1a64, go_b64decode, murmur3_32, murmur3_128
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import EvalError
from pipelines.processors import anyvalue


def span_env() -> Env:
    rs = ResourceSpans()
    ss = rs.scope_spans.add()
    sp = ss.spans.add(name="GET /health")
    for key, value in {"s": "hello world", "u": "日本語 ✓", "i": 42, "empty": "", "raw": b"aGk="}.items():
        kv = sp.attributes.add()
        kv.key = key
        if isinstance(value, bytes):
            kv.value.bytes_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        else:
            kv.value.string_value = value
    env = Env(RequestContext())
    env.resource, env.scope, env.item = rs, ss, sp
    return env


def ev(expr: str) -> Any:
    """Evaluate `expr` through a statement: set it into attributes["out"] and read it back."""
    env = span_env()
    compile_statement(f'set(attributes["out"], {expr})', "span").run(env)
    found = anyvalue.get(env.item.attributes, "out")
    return None if found is None else anyvalue.to_raw(found)


@pytest.mark.parametrize(("expr", "expected"), [
    ('SHA256("")', "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ('SHA256("hello world")', "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
    ('SHA256(attributes["u"])', hashlib.sha256("日本語 ✓".encode()).hexdigest()),
    ('SHA1("abc")', "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ('SHA1("")', "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ('SHA512("")', "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                   "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
    ('MD5("")', "d41d8cd98f00b204e9800998ecf8427e"),
    ('MD5("hello world")', "5eb63bbbe01eeed093cb22bb8f5acdc3"),
    ('FNV("hello world")', 8618312879776256743),
    ('FNV("")', -3750763034362895579),
    ('FNV("a")', -5808556873153909620),  # 0xaf63dc4c8601ec8c as int64
    ('Murmur3Hash("Hello World")', "ce837619"),
    ('Murmur3Hash("")', "00000000"),
    ('Murmur3Hash128("Hello World")', "dbc2a0c1ab26631a27b4c09fcf1fe683"),
    ('Murmur3Hash128("")', "00000000000000000000000000000000"),
    ('XXH3("hello world")', "d447b1ea40e6988b"),
    ('XXH3("")', "2d06800538d394c2"),
    ('XXH128("hello world")', "df8d09e93f874900a99b8775cc15b6c7"),
    ('XXH128("")', "99aa06d3014798d86001c324468d497f"),
])
def test_digests(expr: str, expected: Any) -> None:
    assert ev(expr) == expected


def test_reference_vectors() -> None:
    # SMHasher / Appleby's published values.
    assert murmur3_32(b"", 1) == 0x514E28B7
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    assert murmur3_128(b"hello") == (0xCBD8A7B341BD9B02, 0x5B1E906A48AE1D19)
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_hash_in_a_condition_and_on_unicode() -> None:
    env = span_env()
    digest = hashlib.md5("日本語 ✓".encode()).hexdigest()
    assert compile_condition(f'MD5(attributes["u"]) == "{digest}"', "span")(env)
    assert compile_condition('Murmur3Hash(attributes["empty"]) == "00000000"', "span")(env)


@pytest.mark.parametrize("fn", ["SHA1", "SHA256", "SHA512", "MD5", "FNV", "Murmur3Hash", "Murmur3Hash128", "XXH3",
                                "XXH128", "Base64Decode"])
def test_string_only(fn: str) -> None:
    with pytest.raises(EvalError, match="expected string but got int64"):
        ev(f'{fn}(attributes["i"])')
    with pytest.raises(EvalError, match="expected string but got <nil>"):
        ev(f'{fn}(attributes["missing"])')


def test_hash_as_replace_pattern_function() -> None:
    env = span_env()
    compile_statement('replace_pattern(attributes["s"], "world", "x", SHA256)', "span").run(env)
    found = anyvalue.get(env.item.attributes, "s")
    assert found is not None
    assert anyvalue.to_raw(found) == "hello " + hashlib.sha256(b"x").hexdigest()


# ---------------------------------------------------------------- base64

@pytest.mark.parametrize(("expr", "expected"), [
    ('Base64Decode("aGVsbG8gd29ybGQ=")', "hello world"),
    ('Base64Decode("")', ""),
    ('Base64Decode("aGVs\\nbG8=")', "hello"),  # Go skips CR and LF
    ('Base64Decode("5pel5pys6Kqe")', "日本語"),
    ('Decode("aGVsbG8gd29ybGQ=", "base64")', "hello world"),
    ('Decode("aGVsbG8gd29ybGQ", "base64-raw")', "hello world"),
    ('Decode("_-8=", "base64-url")', "\ufffd\ufffd"),  # bytes ff ef: no UTF-8
    ('Decode("PDw_Pz4-", "base64-raw-url")', "<<??>>"),
    ('Decode("  aGVsbG8=\\n", "base64")', "hello"),  # trimmed
    ('Decode(attributes["raw"], "base64")', "hi"),  # bytes in
    ('Decode("café", "ISO-8859-1")', "cafÃ©"),  # the string's UTF-8 bytes read as Latin-1
    ('Decode("hello", "us-ascii")', "hello"),
    ('Decode("héllo", "utf-8")', "héllo"),
    ('Base64Encode("hello world")', "aGVsbG8gd29ybGQ="),
    ('Base64Encode("hi", "base64-raw")', "aGk"),
    ('Base64Encode("<<??>>", "base64-url")', "PDw_Pz4-"),
    ('Base64Encode("<<??>>", "base64-raw-url")', "PDw_Pz4-"),
    ('Base64Encode("")', ""),
    ('Encode("hello world", "base64")', "aGVsbG8gd29ybGQ="),
    ('Encode("hi", "base64-raw")', "aGk"),
    ('Encode("héllo", "utf-8")', "héllo"),
    ('Encode("abc", "latin1")', "abc"),
    ('Encode("café", "latin1")', "caf\ufffd"),  # é is byte e9, no UTF-8: replaced
    ('Encode("café", "latin1", "?")', "caf?"),
])
def test_encodings(expr: str, expected: str) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(("expr", "message"), [
    ('Base64Decode("!@#$%^&*()_+")', "illegal base64 data at input byte 0"),
    ('Base64Decode("cmVtb3ZlZCBwYWRkaW5nCg")', "illegal base64 data at input byte 20"),
    ('Base64Decode("aGk=x")', "illegal base64 data at input byte 4"),
    ('Base64Decode("a===")', "illegal base64 data at input byte 1"),
    ('Decode("aGk=", "base64-raw")', "could not decode: illegal base64 data at input byte 3"),
    ('Decode("x", "klingon")', "unsupported encoding 'klingon'"),
    ('Decode(attributes["i"], "base64")', "unsupported type provided to Decode function: int64"),
    ('Decode(attributes["missing"], "base64")', "unsupported type provided to Decode function: <nil>"),
    ('Encode(attributes["i"], "base64")', "unsupported type provided to Encode function: int64"),
    ('Encode("日本", "latin1")', "could not encode: encoding: rune not supported by encoding."),
    ('Encode("é", "us-ascii")', "could not encode: encoding: rune not supported by encoding."),
    ('Base64Encode("x", "base32")', "unsupported base64 variant: base32"),
])
def test_encoding_errors(expr: str, message: str) -> None:
    with pytest.raises(EvalError) as exc:
        ev(expr)
    assert str(exc.value) == message


def test_go_decoder_edges() -> None:
    table, padded = VARIANTS["base64"]
    assert go_b64decode(b"YQ==", table, padded) == b"a"
    assert go_b64decode(b"YWI=", table, padded) == b"ab"
    assert go_b64decode(b"YQ=\r\n=", table, padded) == b"a"  # newlines inside the padding
    raw_table, raw_padded = VARIANTS["base64-raw"]
    assert go_b64decode(b"YQ", raw_table, raw_padded) == b"a"


def test_encode_needs_a_literal_encoding() -> None:
    with pytest.raises(OttlError, match="string literal"):
        compile_statement('set(attributes["out"], Encode("x", attributes["s"]))', "span")
