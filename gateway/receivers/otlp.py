"""The `otlp` receiver: its config (the Collector's keys and defaults) and its factory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.auth import Authenticator
from gateway.component import Consumer, ReceiverFactory, Settings
from gateway.receivers.ingest import Ingest
from gateway.tls import TLSServerConfig
from pipelines.batch import Signal


@dataclass(frozen=True)
class AuthConfig:
    authenticator: str


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    max_age: int = 0


@dataclass(frozen=True)
class GrpcConfig:
    endpoint: str = "localhost:4317"
    transport: Literal["tcp", "tcp4", "tcp6"] = "tcp"
    max_recv_msg_size_mib: int = 4
    max_concurrent_streams: int = 0
    read_buffer_size: int = 524288
    write_buffer_size: int = 0
    include_metadata: bool = False
    tls: TLSServerConfig | None = None
    auth: AuthConfig | None = None
    keepalive: Any = None

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        if self.max_recv_msg_size_mib <= 0:
            errors.append("max_recv_msg_size_mib must be positive")
        return errors


@dataclass(frozen=True)
class HttpConfig:
    endpoint: str = "localhost:4318"
    traces_url_path: str = "/v1/traces"
    metrics_url_path: str = "/v1/metrics"
    logs_url_path: str = "/v1/logs"
    max_request_body_size: int = 20 * 1024 * 1024
    include_metadata: bool = False
    tls: TLSServerConfig | None = None
    auth: AuthConfig | None = None
    cors: CorsConfig | None = None
    response_headers: dict[str, str] = field(default_factory=dict)

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        for name in ("traces_url_path", "metrics_url_path", "logs_url_path"):
            if not getattr(self, name).startswith("/"):
                errors.append(f"{name} must start with '/'")
        if self.max_request_body_size <= 0:
            errors.append("max_request_body_size must be positive")
        return errors

    def path_for(self, signal: Signal) -> str:
        path: str = getattr(self, f"{signal}_url_path")
        return path


@dataclass(frozen=True)
class Protocols:
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None


@dataclass(frozen=True)
class Config:
    protocols: Protocols = field(default_factory=Protocols)

    def validate(self) -> list[str]:
        if self.protocols.grpc is None and self.protocols.http is None:
            return ["protocols: at least one of grpc or http must be set"]
        return []


class OtlpReceiver:
    def __init__(self, settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> None:
        from gateway.receivers.otlp_grpc import GrpcServer
        from gateway.receivers.otlp_http import HttpServer

        self.id = settings.id
        cfg: Config = settings.config
        self._servers: list[GrpcServer | HttpServer] = []

        def ingests(transport: str, auth: AuthConfig | None, include_metadata: bool) -> dict[Signal, Ingest]:
            authenticator: Authenticator | None = None
            if auth is not None:
                ext = settings.host.extension(auth.authenticator)
                if not isinstance(ext, Authenticator):
                    raise TypeError(f"{settings.id}: {auth.authenticator!r} is not a server authenticator")
                authenticator = ext
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


def create(settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> OtlpReceiver:
    return OtlpReceiver(settings, consumers)


FACTORY = ReceiverFactory(type="otlp", config=Config, create=create)
