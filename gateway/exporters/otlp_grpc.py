"""The `otlp` (alias `otlp_grpc`) exporter: OTLP over gRPC, the batch sent as the bytes it already is."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import grpc

from gateway.component import Settings
from gateway.components import Factory
from gateway.exporters import classify
from gateway.exporters.helper import Exporter
from gateway.exporters.otlp_common import OtlpCommon, log_partial_success
from gateway.receivers.otlp_grpc import SERVICES
from pipelines import otlp
from pipelines.batch import Batch
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.exporter")

_COMPRESSION = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate,
                "none": grpc.Compression.NoCompression, "": grpc.Compression.NoCompression}


@dataclass(frozen=True)
class Config(OtlpCommon):
    def validate(self) -> list[str]:
        errors = []
        if not self.endpoint:
            errors.append("missing endpoint")
        if self.compression not in _COMPRESSION:
            errors.append(f"compression {self.compression!r} is not supported over gRPC (want gzip, deflate or none)")
        return errors


def target_of(endpoint: str) -> tuple[str, bool | None]:
    """host:port for gRPC, and whether the scheme forces TLS on (True), off (False) or says nothing."""
    for scheme, secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme):].rstrip("/"), secure
    return endpoint, None


class GrpcPusher:
    def __init__(self, settings: Settings) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._metadata = tuple((k.lower(), v) for k, v in self.config.headers.items())

    async def _credentials(self, host: str) -> grpc.ChannelCredentials:
        tls = self.config.tls
        ca, cert, key = tls.read()
        if tls.insecure_skip_verify:
            # gRPC Python cannot turn verification off: trust the certificate the server presents
            # (fetched off the event loop; the host name is still checked).
            h, _, p = host.rpartition(":")
            try:
                ca = (await asyncio.to_thread(ssl.get_server_certificate, (h.strip("[]"), int(p)), timeout=5)).encode()
            except OSError as exc:
                raise RetryableError(f"cannot fetch {host}'s certificate for insecure_skip_verify: {exc}") from None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    async def start(self) -> None:
        try:
            await self._connect()
        except RetryableError as exc:
            # A backend that is down at start must not stop the gateway: connect again on the first push.
            log.warning("exporter %s: %s; will retry", self.id, exc)

    async def _connect(self) -> None:
        cfg = self.config
        target, scheme_secure = target_of(cfg.endpoint)
        secure = scheme_secure if scheme_secure is not None else not cfg.tls.insecure
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ]
        if cfg.tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", cfg.tls.server_name_override))
        compression = _COMPRESSION[cfg.compression]
        if secure:
            self._channel = grpc.aio.secure_channel(target, await self._credentials(target), options, compression)
        else:
            self._channel = grpc.aio.insecure_channel(target, options, compression)
        for signal, service in SERVICES.items():
            self._calls[signal] = self._channel.unary_unary(
                f"/{service}/Export",
                request_serializer=None,
                response_deserializer=otlp.SHAPES[signal].response.FromString,
            )

    def metadata(self, batch: Batch) -> tuple[tuple[str, str], ...]:
        tenant = batch.context.tenant
        if self.config.tenant_header and tenant:
            return (*self._metadata, (self.config.tenant_header.lower(), tenant))
        return self._metadata

    async def push(self, batch: Batch) -> int:
        """Send a batch; return how many items the backend rejected in a partial-success answer."""
        if self._channel is None:
            await self._connect()
        call = self._calls[batch.signal]
        try:
            response = await call(batch.data(), timeout=self.config.timeout or None, metadata=self.metadata(batch))
        except grpc.aio.AioRpcError as exc:
            trailing: Any = exc.trailing_metadata()
            raise classify.from_grpc(exc.code(), exc.details() or "", trailing) from None
        return log_partial_success(self.id, batch.signal, response)

    async def shutdown(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None


def create(settings: Settings) -> Exporter:
    return Exporter(settings, GrpcPusher(settings))


FACTORY = Factory(type="otlp", config=Config, create=create)
