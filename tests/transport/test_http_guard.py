"""`write_timeout` on an aiohttp server held by `http_guard`, in process: an answer not written within
it (here: a handler slower than it) ends the connection without one, as Go's WriteTimeout does."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.receivers.otlp_config import HttpConfig
from gateway.transport.http_site import start_site


async def _answer(write_timeout: float) -> bytes:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/", slow)
    runner, port = await start_site(app, "127.0.0.1:0", limits=HttpConfig(write_timeout=write_timeout).limits())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        got = await asyncio.wait_for(reader.read(1 << 16), 5)
        writer.close()
        return got
    finally:
        await runner.cleanup()


def test_write_timeout_ends_the_connection_when_the_answer_is_late() -> None:
    assert asyncio.run(_answer(write_timeout=0.1)) == b""  # closed, no answer


def test_write_timeout_0_waits_for_the_answer() -> None:
    assert asyncio.run(_answer(write_timeout=0)).startswith(b"HTTP/1.1 200")
