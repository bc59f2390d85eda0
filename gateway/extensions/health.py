"""The `health_check` extension: 200 with a JSON body while every pipeline runs, 503 otherwise."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from gateway.component import ExtensionFactory, Settings
from gateway.transport.http_site import start_site
from gateway.transport.tls import TLSServerConfig
from pipelines.config_types import unsupported

_PIPELINE_CHECK = "used only by check_collector_pipeline, which is not supported (deprecated in the Collector)"


@dataclass(frozen=True)
class CheckCollectorPipeline:
    """Deprecated in the Collector ("not working as expected"); accepted only switched off."""

    enabled: bool = False
    interval: str = unsupported(_PIPELINE_CHECK, default="5m")
    exporter_failure_threshold: int = unsupported(_PIPELINE_CHECK, default=5)

    def validate(self) -> list[str]:
        if self.enabled:
            return ["enabled: not supported by this gateway (deprecated in the Collector, which documents it as "
                    "not working as expected); health follows the pipelines' start and shutdown"]
        return []


@dataclass(frozen=True)
class ResponseBody:
    """The body of the answer instead of the JSON status, when given (the Collector's `response_body`)."""

    healthy: str = ""
    unhealthy: str = ""


@dataclass(frozen=True)
class Config:
    endpoint: str = "localhost:13133"
    path: str = "/"
    tls: TLSServerConfig | None = None
    response_body: ResponseBody | None = None
    check_collector_pipeline: CheckCollectorPipeline = field(default_factory=CheckCollectorPipeline)

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        if not self.path.startswith("/"):
            errors.append("path must start with '/'")
        return errors


class HealthCheck:
    """Status is set by the service: `ready()` once all pipelines started, `not_ready()` at shutdown."""

    def __init__(self, settings: Settings[Config]) -> None:
        self.config: Config = settings.config
        self._reuse_port = settings.reuse_port
        self._ready = False
        self._since = time.time()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def ready(self) -> None:
        self._ready = True
        self._since = time.time()

    def not_ready(self) -> None:
        self._ready = False
        self._since = time.time()

    async def _handle(self, request: web.Request) -> web.Response:
        code = 200 if self._ready else 503
        custom = self.config.response_body
        if custom is not None:
            return web.Response(text=custom.healthy if self._ready else custom.unhealthy, status=code)
        status = "Server available" if self._ready else "Server not available"
        body = {
            "status": status,
            "upSince": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._since)),
            "uptime": f"{time.time() - self._since:.3f}s",
        }
        return web.Response(text=json.dumps(body), status=code, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.config.path, self._handle)
        ssl_ctx = self.config.tls.ssl_context() if self.config.tls else None
        self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=ssl_ctx,
                                                   reuse_port=self._reuse_port)

    async def shutdown(self) -> None:
        self.not_ready()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def create(settings: Settings[Config]) -> HealthCheck:
    return HealthCheck(settings)


FACTORY = ExtensionFactory(type="health_check", config=Config, create=create)
