"""The `otlp` receiver's config: the Collector's keys and defaults, for its gRPC and HTTP sides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.transport.h2_lifecycle import ServerLimits
from gateway.transport.tls import TLSServerConfig
from pipelines.batch import Signal


@dataclass(frozen=True)
class AuthConfig:
    authenticator: str


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    max_age: int = 0


DEFAULT_MAX_CONCURRENT_STREAMS = 100


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

    def limits(self) -> ServerLimits:
        return ServerLimits(max_concurrent_streams=self.max_concurrent_streams or DEFAULT_MAX_CONCURRENT_STREAMS)

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
