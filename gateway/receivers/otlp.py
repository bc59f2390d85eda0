"""The `otlp` receiver: its factory, and the receiver that runs its gRPC and HTTP sides
(config in `otlp_config`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.auth import Authenticator
from gateway.component import Consumer, ExtensionRef, ReceiverFactory, Settings
from gateway.config.model import AuthConfig
from gateway.receivers.ingest import Ingest
from gateway.receivers.otlp_config import Config
from gateway.receivers.otlp_grpc import GrpcServer
from gateway.receivers.otlp_http import HttpServer
from pipelines.batch import Signal


def authenticator(settings: Settings[Any], auth: AuthConfig | None) -> Authenticator | None:
    """The server authenticator extension an `auth` block names."""
    if auth is None:
        return None
    ext = settings.host.extension(auth.authenticator)
    if not isinstance(ext, Authenticator):
        raise TypeError(f"{settings.id}: {auth.authenticator!r} is not a server authenticator")
    return ext


def auth_refs(protocols: list[tuple[str, Any]]) -> list[ExtensionRef]:
    """The authenticators the (name, block or None) protocols' `auth` blocks name."""
    return [
        ExtensionRef(f"protocols::{name}::auth::authenticator", protocol.auth.authenticator, "authenticator")
        for name, protocol in protocols if protocol is not None and protocol.auth is not None
    ]


class Servers:
    """A receiver that runs a server per protocol: started in order, all shut down if one fails."""

    def __init__(self) -> None:
        self._servers: list[Any] = []

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


class OtlpReceiver(Servers):
    def __init__(self, settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> None:
        super().__init__()
        self.id = settings.id
        cfg: Config = settings.config

        def ingests(transport: str, auth: AuthConfig | None, include_metadata: bool) -> dict[Signal, Ingest]:
            return {
                signal: Ingest(settings.id, transport, signal, consumer, settings.telemetry,
                               authenticator(settings, auth), include_metadata)
                for signal, consumer in consumers.items()
            }

        if cfg.protocols.grpc is not None:
            g = cfg.protocols.grpc
            self._servers.append(GrpcServer(g, ingests("grpc", g.auth, g.include_metadata), settings.reuse_port))
        if cfg.protocols.http is not None:
            h = cfg.protocols.http
            self._servers.append(HttpServer(h, ingests("http", h.auth, h.include_metadata), settings.reuse_port))


def create(settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> OtlpReceiver:
    return OtlpReceiver(settings, consumers)


def extension_refs(config: Config) -> list[ExtensionRef]:
    return auth_refs([("grpc", config.protocols.grpc), ("http", config.protocols.http)])


FACTORY = ReceiverFactory(type="otlp", config=Config, create=create, extension_refs=extension_refs)
