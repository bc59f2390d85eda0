"""The fast lane beside aiohttp's own flow control: aiohttp pauses its parser (32 requests queued, a body
past its high-water mark) and resumes it with `data_received(b"")`, which must reach it; answers keep their
order after such a pause; large bodies split over reads or behind a slow authenticator; configured Server
and Date headers not doubled; a JSON number too large for a double refused with 400 on both paths. Each
compares the lane's answers with aiohttp's alone (`fast=False`). The pauses between writes only shape
the input (separate reads); no assertion depends on them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.receivers.test_http_fast import exchange, post, receiver


async def answers_of(port: int, writes: list[bytes], n: int, pause: float = 0, wait: float = 3) -> list[bytes]:
    """`exchange`'s answers, or those read before `wait` seconds then b"<TIMEOUT>" (a stalled connection)."""
    try:
        async with asyncio.timeout(wait):
            return await exchange(port, writes, n, pause)
    except TimeoutError:
        return [b"<TIMEOUT>"]


async def both(writes: list[bytes], n: int, pause: float = 0, wait: float = 3, **options: Any):
    runs = []
    for fast in (True, False):
        async with receiver(fast, **options) as (port, _sink, _telemetry):
            runs.append(await answers_of(port, writes, n, pause, wait))
    return runs


def test_more_than_32_pipelined_requests_for_aiohttp() -> None:
    fast, slow = asyncio.run(both([post(path=b"/v1/nope") * 40], 40))
    assert len(slow) == 40 and slow[-1] != b"<TIMEOUT>"
    assert fast == slow, (len(fast), fast[-1])


@pytest.mark.parametrize("size", [200_000, 1_000_000])
def test_a_large_body_split_in_two_writes(size: int) -> None:
    raw = post(b"\x0a\x00" * (size // 2))
    cut = raw.index(b"\r\n\r\n") + 5
    fast, slow = asyncio.run(both([raw[:cut], raw[cut:]], 1, pause=0.05))
    assert slow[0].startswith(b"HTTP/1.1 ")
    assert fast == slow


class SlowAuth:
    """An authenticator that takes a while (an OIDC key fetch, a bcrypt check in a thread...)."""

    async def identify(self, headers):
        from gateway.auth import Identity
        await asyncio.sleep(0.3)
        return Identity(tenant="acme")


@pytest.mark.parametrize("size", [100_000, 200_000])
def test_a_large_body_behind_a_slow_authenticator(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.receivers import test_http_fast as h
    monkeypatch.setattr(h, "Bearer", SlowAuth)
    raw = post(b"\x0a\x00" * (size // 2))
    fast, slow = asyncio.run(both([raw], 1, wait=4, auth=True))
    assert slow[0].startswith(b"HTTP/1.1 200")
    assert fast == slow


def test_a_body_whose_last_read_passes_the_high_water(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp pauses its parser when a body's buffer passes 512 KiB and resumes it with
    data_received(b""), which the lane swallows: the request's end is never parsed."""
    from tests.receivers import test_http_fast as h
    monkeypatch.setattr(h, "Bearer", SlowAuth)
    raw = post(b"\x0a\x00" * 265_000)  # 530 000 bytes of body
    cut = raw.index(b"\r\n\r\n") + 4 + 500_000
    fast, slow = asyncio.run(both([raw[:cut], raw[cut:]], 1, pause=0.1, wait=4, auth=True))
    assert slow[0].startswith(b"HTTP/1.1 200")
    assert fast == slow


def test_answers_after_more_than_32_pipelined_keep_their_order() -> None:
    """33..40 sit in aiohttp's parser (its queue was full, the b"" that resumes it was swallowed);
    aiohttp looks idle, so the lane answers the next request before them."""
    writes = [post(path=b"/v1/nope") * 40, post()]
    fast, slow = asyncio.run(both(writes, 41, pause=0.5))
    assert len(slow) == 41 and slow[-1].startswith(b"HTTP/1.1 200")
    assert [a.split(b"\r\n")[0] for a in fast] == [a.split(b"\r\n")[0] for a in slow]


@pytest.mark.parametrize("name", ["Server", "Date"])
def test_configured_server_or_date_header_is_not_doubled(name: str) -> None:
    from gateway.receivers.otlp_config import HttpConfig
    assert HttpConfig(response_headers={name: "custom"}).validate() == []
    fast, slow = asyncio.run(both([post()], 1, response_headers={name: "custom"}))
    assert fast == slow, (fast, slow)


def test_a_json_number_too_large_for_a_double() -> None:
    body = (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"01010101010101010101010101010101",'
            b'"spanId":"0202020202020202","attributes":[{"key":"k","value":{"doubleValue":1'
            + b"0" * 400 + b'}}]}]}]}]}')
    fast, slow = asyncio.run(both([post(body, b"application/json")], 1))
    assert fast == slow and fast[0].startswith(b"HTTP/1.1 400"), (fast, slow)


def test_many_pipelined_lane_requests_are_all_answered() -> None:
    """16,000 small pipelined POSTs (1.5 MB): past MAX_PENDING the lane hands a split request to aiohttp,
    which then holds the connection and queues 32 at a time: the same swallowed b"" leaves the rest unparsed."""
    n = 16_000
    fast, slow = asyncio.run(both([post(b"") * n], n, wait=20))
    assert len(slow) == n and slow[-1] != b"<TIMEOUT>"
    assert len(fast) == n and fast[-1] != b"<TIMEOUT>", (len(fast), fast[-1])
