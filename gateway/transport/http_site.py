"""Where the gateway's aiohttp servers (OTLP/HTTP receiver, health_check, /metrics) listen."""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any

from aiohttp import web

from gateway.transport.http_fast import FastHandler, FastLane
from gateway.transport.http_guard import ConnectionLimits, GuardedHandler, GuardedRunner


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start_site(app: web.Application, endpoint: str, *, ssl_context: ssl.SSLContext | None = None,
                     reuse_port: bool = False, backlog: int = 128, limits: ConnectionLimits | None = None,
                     fast: FastLane | None = None, **runner_options: Any) -> tuple[web.AppRunner, int]:
    """Serve `app` on `endpoint`; return its runner (to `cleanup()` at shutdown) and the bound port
    (the one the kernel chose for port 0). A runner whose socket cannot be bound is cleaned up here.
    With `limits`, connections are held to them (see `http_guard`); with `fast` too, the requests it
    takes are answered by its routes without aiohttp (see `http_fast`)."""
    options: dict[str, Any] = {"access_log": None, "handle_signals": False, **runner_options}
    if limits is None:
        runner = web.AppRunner(app, **options)
    else:
        protocol = GuardedHandler if fast is None else partial(FastHandler, lane=fast)
        runner = GuardedRunner(app, limits, protocol, **options)
    await runner.setup()
    host, port = split_endpoint(endpoint)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None, backlog=backlog)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port
