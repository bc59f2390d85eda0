"""The `healthcheckv2` extension (the Collector's healthcheckv2extension): component status, aggregated
per pipeline and overall, over HTTP (`status` and `config` endpoints) and the gRPC health service.

With `use_v2: false` (the default, as in the Collector) it is the old `health_check`: the same keys, and
200 / 503 from the overall status. With `use_v2: true` the `http` and `grpc` blocks say what is served
(neither is served unless configured), and `component_health` whether errors make it unhealthy.

Statuses come from `Host.component_status()` (`gateway.status`). As in the Collector, until the
service says the pipelines are ready every component that reported shows as starting, so the status
does not flap while the components start one by one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from gateway.component import ExtensionFactory, Settings, StatusEvent
from gateway.extensions import health, health_grpc
from gateway.extensions.health_status import LEGACY_HTTP_CODES, Aggregate, Rules, aggregate, scope, to_json
from gateway.transport.http_site import start_site
from pipelines.config_types import Duration, unsupported

_LOCAL_ONLY = "the health endpoints are meant for localhost; put a proxy in front for TLS"


@dataclass(frozen=True)
class StatusPath:
    enabled: bool = True
    path: str = "/status"


@dataclass(frozen=True)
class ConfigPath:
    enabled: bool = False
    path: str = "/config"


@dataclass(frozen=True)
class HttpConfig:
    endpoint: str = "localhost:13133"
    tls: Any = unsupported(_LOCAL_ONLY)
    status: StatusPath = field(default_factory=StatusPath)
    config: ConfigPath = field(default_factory=ConfigPath)

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        errors += [f"{key}::path must start with '/'" for key, p in (("status", self.status), ("config", self.config))
                   if p.enabled and not p.path.startswith("/")]
        if self.status.enabled and self.config.enabled and self.status.path == self.config.path:
            errors.append("status::path and config::path must differ")
        return errors


@dataclass(frozen=True)
class GrpcConfig:
    endpoint: str = "localhost:13132"
    transport: str = "tcp"
    tls: Any = unsupported(_LOCAL_ONLY)

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        if self.transport != "tcp":
            errors.append(f"transport {self.transport!r}: only tcp is supported by this gateway")
        return errors


@dataclass(frozen=True)
class ComponentHealth:
    include_permanent_errors: bool = False
    include_recoverable_errors: bool = False
    recovery_duration: Duration = 300.0

    def validate(self) -> list[str]:
        return [] if self.recovery_duration >= 0 else ["recovery_duration must not be negative"]


@dataclass(frozen=True)
class Config(health.Config):
    """The old health_check's keys (used with `use_v2: false`), and the v2 blocks."""

    use_v2: bool = False
    http: HttpConfig | None = None
    grpc: GrpcConfig | None = None
    component_health: ComponentHealth | None = None

    def validate(self) -> list[str]:
        errors = super().validate()
        v2 = [k for k in ("http", "grpc", "component_health") if getattr(self, k) is not None]
        if not self.use_v2:
            return errors + [f"{k}: used only with use_v2: true (the Collector ignores it otherwise)" for k in v2]
        if self.http is None and self.grpc is None:
            errors.append("use_v2: configure http, grpc or both")
        legacy = health.Config()
        errors += [f"{k}: used only with use_v2: false (the Collector ignores it with use_v2: true)"
                   for k in ("endpoint", "path", "tls", "response_body") if getattr(self, k) != getattr(legacy, k)]
        return errors


class HealthCheckV2:
    def __init__(self, settings: Settings[Config]) -> None:
        self.config: Config = settings.config
        self._host = settings.host
        self._reuse_port = settings.reuse_port
        ch = self.config.component_health
        self.rules = Rules() if ch is None else Rules(True, ch.include_permanent_errors,
                                                      ch.include_recoverable_errors, ch.recovery_duration)
        self._ready = False
        self._start_time = time.time()
        self._runner: web.AppRunner | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health_service: health_grpc.HealthService | None = None
        self.port: int | None = None
        self.grpc_port: int | None = None

    # -- Extension
    def ready(self) -> None:
        self._ready = True

    def not_ready(self) -> None:
        """Nothing, as in the Collector: from here on the components report stopping."""

    def tree(self) -> Aggregate:
        statuses = self._host.component_status().statuses()
        if not self._ready:
            statuses = {i: StatusEvent("StatusStarting", None, e.timestamp) for i, e in statuses.items()}
        return aggregate(statuses, self.rules, time.time())

    # -- HTTP
    async def _status(self, request: web.Request) -> web.Response:
        agg = scope(self.tree(), request.query.get("pipeline", ""))
        if agg is None:
            return web.Response(status=404)
        verbose = "verbose" in request.query and request.query["verbose"] != "false"
        now = time.time()
        body = to_json(agg, self.rules, now, verbose, self._start_time)
        return web.json_response(body, status=self.rules.http_code(agg, now), dumps=json.dumps)

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self._host.config_view())

    async def _legacy(self, request: web.Request) -> web.Response:
        code = LEGACY_HTTP_CODES[self.tree().status]
        custom = self.config.response_body
        if custom is not None:
            return web.Response(text=custom.healthy if code == 200 else custom.unhealthy, status=code)
        body: dict[str, str] = {"status": "Server available" if code == 200 else "Server not available"}
        if code == 200:
            body["upSince"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._start_time))
            body["uptime"] = f"{time.time() - self._start_time:.3f}s"
        return web.json_response(body, status=code)

    # -- lifecycle
    async def start(self) -> None:
        self._start_time = time.time()
        c = self.config
        app = web.Application()
        endpoint, tls = c.endpoint, c.tls
        if not c.use_v2:
            app.router.add_get(c.path, self._legacy)
        elif c.http is not None:
            endpoint, tls = c.http.endpoint, None
            if c.http.status.enabled:
                app.router.add_get(c.http.status.path, self._status)
            if c.http.config.enabled:
                app.router.add_get(c.http.config.path, self._config)
        if not c.use_v2 or c.http is not None:
            ssl_ctx = tls.ssl_context() if tls else None
            self._runner, self.port = await start_site(app, endpoint, ssl_context=ssl_ctx, reuse_port=self._reuse_port)
        if c.use_v2 and c.grpc is not None:
            self._health_service = health_grpc.HealthService(self.tree, self._host.component_status().watch,
                                                             self.rules)
            try:
                self._grpc, self.grpc_port = await health_grpc.serve(self._health_service, c.grpc.endpoint,
                                                                     self._reuse_port)
            except BaseException:
                await self.shutdown()
                raise

    async def shutdown(self) -> None:
        if self._health_service is not None:
            self._health_service.close()
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
            self._grpc = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def create(settings: Settings[Config]) -> HealthCheckV2:
    return HealthCheckV2(settings)


FACTORY = ExtensionFactory(type="healthcheckv2", config=Config, create=create)
