"""The `otlp` receiver's config: the Collector's keys and defaults, for its gRPC and HTTP sides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.config.model import AuthConfig
from gateway.transport.fields import has_control, is_token
from gateway.transport.h2_lifecycle import INFINITY, ServerLimits
from gateway.transport.http_guard import ConnectionLimits
from gateway.transport.tls import TLSServerConfig
from pipelines.batch import Signal
from pipelines.config_types import Duration, unsupported


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    max_age: int = 0


DEFAULT_MAX_CONCURRENT_STREAMS = 100  # 0 in the config means this: never unlimited (grpc-go's 0 is 2^32-1)
DEFAULT_WRITE_BUFFER_SIZE = 64 * 1024  # asyncio's high-water mark, where write_buffer_size is 0


@dataclass(frozen=True)
class KeepaliveServerParameters:
    """grpc-go's keepalive.ServerParameters; 0 is grpc-go's default (infinity for the first three)."""

    max_connection_idle: Duration = 0.0
    max_connection_age: Duration = 0.0
    max_connection_age_grace: Duration = 0.0
    time: Duration = 0.0  # 0: 2h; at least 1s, as grpc-go
    timeout: Duration = 0.0  # 0: 20s


@dataclass(frozen=True)
class KeepaliveEnforcementPolicy:
    min_time: Duration = 0.0  # 0: 5m, grpc-go's default
    permit_without_stream: bool = False


@dataclass(frozen=True)
class KeepaliveConfig:
    server_parameters: KeepaliveServerParameters | None = None
    enforcement_policy: KeepaliveEnforcementPolicy | None = None


_READ_BUFFER_DEFAULT = 524288


@dataclass(frozen=True)
class GrpcConfig:
    endpoint: str = "localhost:4317"
    transport: Literal["tcp", "tcp4", "tcp6"] = "tcp"
    max_recv_msg_size_mib: int = 4
    max_concurrent_streams: int = 0
    read_buffer_size: int = _READ_BUFFER_DEFAULT
    write_buffer_size: int = 0
    include_metadata: bool = False
    tls: TLSServerConfig | None = None
    auth: AuthConfig | None = None
    keepalive: KeepaliveConfig | None = None
    max_connections: int = 4096  # ours: connections past it are closed at once
    connection_timeout: Duration = 120.0  # ours (grpc-go's ConnectionTimeout): the preface, a header block

    def limits(self) -> ServerLimits:
        params = (self.keepalive and self.keepalive.server_parameters) or KeepaliveServerParameters()
        policy = (self.keepalive and self.keepalive.enforcement_policy) or KeepaliveEnforcementPolicy()

        def forever(value: float) -> float:
            return value if value > 0 else INFINITY

        return ServerLimits(
            max_concurrent_streams=self.max_concurrent_streams or DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections=self.max_connections,
            connection_timeout=self.connection_timeout,
            max_connection_idle=forever(params.max_connection_idle),
            max_connection_age=forever(params.max_connection_age),
            max_connection_age_grace=forever(params.max_connection_age_grace),
            keepalive_time=max(1.0, params.time) if params.time > 0 else 2 * 3600.0,
            keepalive_timeout=params.timeout if params.timeout > 0 else 20.0,
            min_ping_interval=policy.min_time if policy.min_time > 0 else 300.0,
            permit_without_stream=policy.permit_without_stream,
            read_size=self.read_buffer_size,
            write_high_water=self.write_buffer_size or DEFAULT_WRITE_BUFFER_SIZE,
        )

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        if self.max_recv_msg_size_mib <= 0:
            errors.append("max_recv_msg_size_mib must be positive")
        for key in ("max_concurrent_streams", "read_buffer_size", "write_buffer_size"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must not be negative")
        if self.max_connections <= 0:
            errors.append("max_connections must be positive")
        if self.connection_timeout <= 0:
            errors.append("connection_timeout must be positive")
        if self.tls is not None and self.read_buffer_size != _READ_BUFFER_DEFAULT:
            # asyncio's TLS layer reads the socket itself (256 KiB at a time): the size would do nothing.
            errors.append("read_buffer_size: not supported with tls by this gateway (TLS reads are asyncio's)")
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
    # confighttp's server timeouts, Go's http.Server meaning and the Collector's defaults (0: none)
    read_timeout: Duration = 0.0
    read_header_timeout: Duration = 60.0
    write_timeout: Duration = 30.0
    idle_timeout: Duration = 60.0
    max_connections: int = 4096  # ours: connections past it are answered 503 and closed at once
    include_tls_metadata: bool = unsupported("TLS details are not kept as request metadata", default=False)
    compression_algorithms: Any = unsupported("the accepted request encodings are fixed: gzip, deflate (zlib) "
                                              "and zstd, or none")
    middlewares: Any = unsupported("the gateway has no middleware extensions")

    def limits(self) -> ConnectionLimits:
        # Go: a zero read_header_timeout or idle_timeout falls back to read_timeout
        return ConnectionLimits(header_timeout=self.read_header_timeout or self.read_timeout,
                                read_timeout=self.read_timeout, write_timeout=self.write_timeout,
                                idle_timeout=self.idle_timeout or self.read_timeout,
                                max_connections=self.max_connections)

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        for name in ("traces_url_path", "metrics_url_path", "logs_url_path"):
            if not getattr(self, name).startswith("/"):
                errors.append(f"{name} must start with '/'")
        if self.max_request_body_size <= 0:
            errors.append("max_request_body_size must be positive")
        for key in ("read_timeout", "read_header_timeout", "write_timeout", "idle_timeout"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must not be negative")
        if self.max_connections <= 0:
            errors.append("max_connections must be positive")
        for name, value in self.response_headers.items():
            if name.lower() in _FRAMING_HEADERS:
                errors.append(f"response_headers::{name}: the server sets this header itself (it frames the answer)")
            elif not is_token(name) or has_control(value):
                errors.append(f"response_headers::{name!r}: not a valid header name and value (RFC 9110: a "
                              "name of token characters, a value without control characters)")
        return errors

    def path_for(self, signal: Signal) -> str:
        path: str = getattr(self, f"{signal}_url_path")
        return path


# Headers that frame an HTTP/1.1 answer: `response_headers` cannot set them (Go's server would send a
# broken answer; the Collector does not check).
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
                              "te", "trailer"})


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
