"""The `otlp` (alias `otlp_grpc`) exporter: OTLP over gRPC, the batch sent as the bytes it already is."""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from gateway import __version__
from gateway.component import ExporterFactory, Settings
from gateway.exporters import classify
from gateway.exporters.helper import Exporter, check_kept_metadata
from gateway.exporters.otlp_common import CallHeaders, OtlpCommon, exporter_refs, log_partial_success
from gateway.transport.grpc_channel import BALANCERS, Balancer, H2Client
from gateway.transport.grpc_client import GrpcCallError, Keepalive
from gateway.transport.grpc_status import Status
from gateway.transport.resolve import parse_target
from gateway.transport.tls import TLSClientConfig
from pipelines import otlp
from pipelines.batch import Batch
from pipelines.config_types import Duration
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.exporter")

_COMPRESSION = ("gzip", "deflate", "none", "")
USER_AGENT = f"otel-trace-gateway/{__version__} (asyncio h2)"
MAX_RESPONSE = 16 * 1024 * 1024
# grpc-go raises a keepalive `time` below 10s to 10s (keepalive.ClientParameters), and so do we.
MIN_KEEPALIVE_TIME = 10.0
# grpc-go's keepalive `timeout` when 0.
DEFAULT_KEEPALIVE_TIMEOUT = 20.0


@dataclass(frozen=True)
class KeepaliveConfig:
    """configgrpc's KeepaliveClientConfig, with the Collector's defaults; `time: 0` turns PINGs off."""

    time: Duration = 10.0
    timeout: Duration = 10.0
    permit_without_stream: bool = False

    def params(self) -> Keepalive | None:
        if self.time <= 0:
            return None
        return Keepalive(max(self.time, MIN_KEEPALIVE_TIME), self.timeout or DEFAULT_KEEPALIVE_TIMEOUT,
                         self.permit_without_stream)


@dataclass(frozen=True)
class GrpcKeys:
    """The keys only the gRPC side has (configgrpc.ClientConfig); destinations carry them too."""

    keepalive: KeepaliveConfig | None = field(default_factory=KeepaliveConfig)
    balancer_name: str = "round_robin"

    def grpc_errors(self) -> list[str]:
        errors = []
        if self.balancer_name not in BALANCERS:
            errors.append(f"invalid balancer_name: {self.balancer_name} (want {' or '.join(BALANCERS)})")
        ka = self.keepalive
        if ka is not None and (ka.time < 0 or ka.timeout < 0):
            errors.append("keepalive: time and timeout must not be negative")
        return errors


@dataclass(frozen=True)
class Config(GrpcKeys, OtlpCommon):
    def validate(self) -> list[str]:
        errors = self.grpc_errors()
        if not self.endpoint:
            errors.append("missing endpoint")
        else:
            try:
                parse_target(target_of(self.endpoint)[0], 443)
            except ValueError as exc:
                errors.append(f"endpoint: {exc}")
        if self.compression not in _COMPRESSION:
            errors.append(f"compression {self.compression!r} is not supported over gRPC (want gzip, deflate or none)")
        return errors


def target_of(endpoint: str) -> tuple[str, bool | None]:
    """host:port for gRPC, and whether the scheme forces TLS on (True), off (False) or says nothing."""
    for scheme, secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme):].rstrip("/"), secure
    return endpoint, None


def client_ssl_context(tls: TLSClientConfig) -> ssl.SSLContext:
    """The shared client TLS settings with ALPN "h2"; without a CA, grpcio's
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH stands for the system roots if set (deployments and tests set it)."""
    return tls.ssl_context(("h2",), os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH") or None)


def balancer(name: str) -> Balancer:
    for known in BALANCERS:
        if name == known:
            return known
    raise ValueError(f"invalid balancer_name: {name}")


class GrpcPusher:
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._client: H2Client | None = None
        self.headers = CallHeaders(settings.id, settings.config, settings.host)

    def _make_client(self) -> H2Client:
        cfg = self.config
        target, scheme_secure = target_of(cfg.endpoint)
        secure = scheme_secure if scheme_secure is not None else not cfg.tls.insecure
        try:
            ctx = client_ssl_context(cfg.tls) if secure else None
        except (OSError, ValueError) as exc:  # unreadable or invalid CA / certificate / key
            raise RetryableError(f"TLS settings of {self.id}: {exc}") from None
        override = cfg.tls.server_name_override or None
        return H2Client(
            target, ssl_context=ctx, server_hostname=override, authority=override,
            # With an authenticator, every header is the call's: it may change or delete the configured ones.
            metadata=[] if self.headers.auth is not None else list(self.headers.static.items()),
            compression=cfg.compression, user_agent=USER_AGENT, max_response=MAX_RESPONSE,
            connect_timeout=max(cfg.timeout or 20.0, 1.0),
            keepalive=cfg.keepalive.params() if cfg.keepalive is not None else None,
            balancer=balancer(cfg.balancer_name),
        )

    async def start(self) -> None:
        # Connections are made on the first push: a backend that is down at start must not stop the gateway.
        try:
            self._client = self._make_client()
        except RetryableError as exc:
            log.warning("exporter %s: %s; will retry", self.id, exc)

    def metadata(self, batch: Batch) -> tuple[tuple[str, str], ...]:
        """Per-call metadata beyond the configured headers: the tenant header."""
        tenant = batch.context.tenant
        if self.config.tenant_header and tenant:
            return ((self.config.tenant_header.lower(), tenant),)
        return ()

    async def push(self, batch: Batch) -> int:
        """Send a batch; return how many items the backend rejected in a partial-success answer."""
        client = self._client
        if client is None:
            client = self._client = self._make_client()
        path = otlp.GRPC_EXPORT_PATHS[batch.signal]
        refreshed = False
        while True:
            if self.headers.auth is None:
                metadata = self.metadata(batch)
            else:
                metadata = tuple((await self.headers.for_call(batch.context)).items())
            try:
                data = await client.unary(path, batch.chunks(), metadata, self.config.timeout or None)
                break
            except GrpcCallError as exc:
                # A token the backend no longer takes: one more call with fresh credentials.
                if exc.code == Status.UNAUTHENTICATED and not refreshed \
                        and await self.headers.refresh(dict(metadata)):
                    refreshed = True
                    continue
                raise classify.from_grpc(exc.code, exc.message, exc.trailing, answered=exc.answered,
                                         unreachable=exc.unreachable) from None
        try:
            response = otlp.SHAPES[batch.signal].response.FromString(data)
        except DecodeError as exc:
            raise RetryableError(f"gRPC: cannot parse the backend's response: {exc}", answered=True) from None
        return log_partial_success(self.id, batch.signal, response)

    async def shutdown(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def create(settings: Settings[Config]) -> Exporter:
    pusher = GrpcPusher(settings)
    return Exporter(settings, pusher, settings.config, pusher.headers.context_keys())


FACTORY = ExporterFactory(type="otlp", config=Config, create=create, extension_refs=exporter_refs,
                           check_kept_metadata=check_kept_metadata)
