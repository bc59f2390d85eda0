"""The `otlp` receiver: its factory, and the receiver that runs its gRPC and HTTP sides
(config in `otlp_config`)."""

from __future__ import annotations

from typing import Any

from gateway.auth import Authenticator
from gateway.component import Consumer, Settings
from gateway.components import Factory
from gateway.receivers.ingest import Ingest
from gateway.receivers.otlp_config import AuthConfig, Config
from gateway.receivers.otlp_grpc import GrpcServer
from gateway.receivers.otlp_http import HttpServer
from pipelines.batch import Signal


class OtlpReceiver:
    def __init__(self, settings: Settings, consumers: dict[Signal, Consumer]) -> None:
        self.id = settings.id
        cfg: Config = settings.config
        self._servers: list[GrpcServer | HttpServer] = []

        def ingests(transport: str, auth: AuthConfig | None, include_metadata: bool) -> dict[Signal, Ingest]:
            authenticator: Authenticator | None = (
                settings.host.extension(auth.authenticator) if auth is not None else None
            )
            return {
                signal: Ingest(settings.id, transport, signal, consumer, settings.telemetry, authenticator,
                               include_metadata)
                for signal, consumer in consumers.items()
            }

        if cfg.protocols.grpc is not None:
            g = cfg.protocols.grpc
            self._servers.append(GrpcServer(g, ingests("grpc", g.auth, g.include_metadata), settings.reuse_port))
        if cfg.protocols.http is not None:
            h = cfg.protocols.http
            self._servers.append(HttpServer(h, ingests("http", h.auth, h.include_metadata), settings.reuse_port))

    @property
    def servers(self) -> list[Any]:
        return list(self._servers)

    async def start(self) -> None:
        try:
            for server in self._servers:
                await server.start()
        except Exception:
            # The service shuts down only components that started: close the transport that did.
            await self.shutdown()
            raise

    async def shutdown(self) -> None:
        for server in self._servers:
            await server.shutdown()


def create(settings: Settings, consumers: dict[Signal, Consumer]) -> OtlpReceiver:
    return OtlpReceiver(settings, consumers)


FACTORY = Factory(type="otlp", config=Config, create=create)
