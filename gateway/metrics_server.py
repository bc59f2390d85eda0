"""Serves the gateway's own metrics as Prometheus text at /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.transport.http_site import start_site


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
        self._runner, self.port = await start_site(app, self.address, reuse_port=self._reuse_port)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
