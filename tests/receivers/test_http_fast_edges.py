"""Odd request heads, byte for byte the same answers, contexts and metrics with the lane and without: the
lane frames nothing it cannot frame for certain, so nothing can be smuggled past aiohttp's parser."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from tests.receivers.test_http_fast import JSON_SPANS, SPANS, _both, post

P = post()
CASES = {
    "leading zero length": [P.replace(b"Content-Length: ", b"Content-Length: 00")],
    "empty host": [P.replace(b"Host: gw", b"Host:")],
    "obs-text value": [post(extra=b"X-A: caf\xc3\xa9 \xff\r\n")],
    "tab in value": [post(extra=b"X-A: a\tb\r\n")],
    "DEL in value": [post(extra=b"X-A: a\x7fb\r\n")],
    "ctype quoted": [post(ctype=b'"application/json"')],
    "ctype params": [post(JSON_SPANS, ctype=b"application/json ; charset=utf-8")],
    "ctype trailing ;": [post(JSON_SPANS, ctype=b"application/json;")],
    "ctype space before slash": [post(JSON_SPANS, ctype=b"application /json")],
    "ctype tab": [post(JSON_SPANS, ctype=b"\tapplication/json\t")],
    "ctype bad param": [post(JSON_SPANS, ctype=b"application/json; =")],
    "ctype two types": [post(JSON_SPANS, ctype=b"application/json, text/plain")],
    "encoding upper": [post(gzip.compress(SPANS), extra=b"Content-Encoding: GZIP\r\n")],
    "encoding x-gzip": [post(gzip.compress(SPANS), extra=b"Content-Encoding: x-gzip\r\n")],
    "encoding identity": [post(extra=b"Content-Encoding: identity\r\n")],
    "encoding empty": [post(extra=b"Content-Encoding:\r\n")],
    "encoding gzip, identity": [post(gzip.compress(SPANS), extra=b"Content-Encoding: gzip, identity\r\n")],
    "connection Keep-Alive": [post(extra=b"Connection: Keep-Alive\r\n")],
    "keep-alive header": [post(extra=b"Keep-Alive: timeout=5\r\n")],
    "absolute target": [P.replace(b"POST /v1/traces", b"POST http://gw/v1/traces")],
    "double slash target": [P.replace(b"POST /v1/traces", b"POST //v1/traces")],
    "percent target": [P.replace(b"POST /v1/traces", b"POST /v1/%74races")],
    "lower-case version": [P.replace(b"HTTP/1.1", b"http/1.1", 1)],
    "HTTP/1.2": [P.replace(b"HTTP/1.1", b"HTTP/1.2", 1)],
    "leading CRLF": [b"\r\n" + P],
    "header no space": [P.replace(b"Host: gw", b"Host:gw")],
    "content-length with tab": [P.replace(b"Content-Length: ", b"Content-Length:\t")],
    "te header": [post(extra=b"TE: trailers\r\n")],
    "traceparent": [post(extra=b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n")],
    "upper method": [P.replace(b"POST", b"post", 1)],
    "empty header name char": [post(extra=b"X-\xff: 1\r\n")],
    "two lengths same": [post(extra=b"Content-Length: %d\r\n" % len(SPANS))],
    "cookie": [post(extra=b"Cookie: a=b\r\n")],
    "authorization": [post(extra=b"Authorization: Bearer good\r\n")],
    "hop headers": [post(extra=b"Proxy-Connection: keep-alive\r\n")],
    "expect empty": [post(extra=b"Expect:\r\n")],
    "content-length 0 json": [post(b"", b"application/json")],
    "empty json": [post(b"{}", b"application/json")],
}


@pytest.mark.parametrize("case", CASES)
def test_edge(case: str) -> None:
    fast, slow = asyncio.run(_both(CASES[case] + [post()], 2, max_request_body_size=4096))
    assert fast == slow


@pytest.mark.parametrize("case", ["two lengths same", "leading CRLF", "HTTP/1.2", "absolute target"])
def test_edge_auth(case: str) -> None:
    fast, slow = asyncio.run(_both(CASES[case] + [post()], 2, auth=True))
    assert fast == slow
