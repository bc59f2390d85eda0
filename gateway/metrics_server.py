"""Serves the gateway's own metrics as Prometheus text at /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.receivers.otlp import split_endpoint


class MetricsServer:
    def __init__(self, address: str, registry: CollectorRegistry, reuse_port: bool = False) -> None:
        self.address = address
        self._registry = registry
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = split_endpoint(self.address)
        site = web.TCPSite(runner, host, port, reuse_port=self._reuse_port or None)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._runner = runner

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
