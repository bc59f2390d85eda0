"""The top-level config: the Collector's sections, and `service`'s pipelines and telemetry."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.telemetry import TelemetryConfig
from gateway.transport.tls import TLSServerConfig
from pipelines.config_types import Duration

SIGNALS = ("traces", "metrics", "logs")
SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(/[^\s/]+)?$")


def valid_id(text: str) -> bool:
    return bool(_ID.match(text))


@dataclass(frozen=True)
class PipelineConfig:
    receivers: tuple[str, ...] = ()
    processors: tuple[str, ...] = ()
    exporters: tuple[str, ...] = ()


def pipeline_order(pipes: Mapping[str, PipelineConfig], connectors: frozenset[str]) -> list[str]:
    """The pipeline ids with every pipeline a connector feeds placed before the pipelines feeding it
    (the order the graph is built in), otherwise in config order. ValueError names a cycle."""
    feeds = {pid: [o for o, q in pipes.items() if any(x in connectors and x in q.receivers for x in p.exporters)]
             for pid, p in pipes.items()}
    state: dict[str, bool] = {}  # False: being placed, True: placed
    order: list[str] = []

    def place(pid: str, path: tuple[str, ...]) -> None:
        if state.get(pid) is True:
            return
        if state.get(pid) is False:
            cycle = (*path[path.index(pid):], pid)
            raise ValueError("connectors join pipelines in a cycle: " + " -> ".join(cycle))
        state[pid] = False
        for nxt in feeds[pid]:
            place(nxt, (*path, pid))
        state[pid] = True
        order.append(pid)

    for pid in pipes:
        place(pid, ())
    return order


@dataclass(frozen=True)
class ReloadConfig:
    """Beyond the Collector (which restarts its whole service on SIGHUP): reload in place, and when to."""

    # Reload when a config file changes (its inode, size or mtime), checked every `watch_interval`.
    watch: bool = False
    watch_interval: Duration = 5.0

    def validate(self) -> list[str]:
        return [] if self.watch_interval > 0 else ["watch_interval must be positive"]


@dataclass(frozen=True)
class AuthConfig:
    """`auth: {authenticator: ID}`: a server authenticator extension (a receiver's, the admin endpoint's)."""

    authenticator: str


@dataclass(frozen=True)
class AdminConfig:
    """Beyond the Collector: the admin JSON API (`gateway.admin`) that `gateway top` and `gateway tap` read.
    55690: next to zpages' 55679 and free of the Collector's other defaults."""

    endpoint: str = "localhost:55690"
    enabled: bool = True
    # Every route behind this server authenticator (bearertokenauth, basicauth, oidc), as a receiver's.
    auth: AuthConfig | None = None
    # Served over TLS, with the keys of the OTLP/HTTP receiver's `tls`.
    tls: TLSServerConfig | None = None

    def validate(self) -> list[str]:
        if ":" not in self.endpoint:
            return [f"endpoint {self.endpoint!r}: want host:port"]
        host = self.endpoint.rpartition(":")[0].strip("[]")
        if not self.enabled or _loopback(host):
            return []
        # A tap shows span data: beyond loopback only behind an authenticator, and over TLS.
        if self.auth is None:
            return [f"endpoint {self.endpoint!r}: beyond loopback (localhost, 127.x, ::1) the admin endpoint "
                    "needs auth: {authenticator: ID}, as taps show span data"]
        if self.tls is None:
            return [f"endpoint {self.endpoint!r}: beyond loopback (localhost, 127.x, ::1) the admin endpoint "
                    "needs tls: {cert_file: ..., key_file: ...} as well as auth: without it its credentials "
                    "and the span data taps show cross the network in clear"]
        return []


_LOOPBACK = frozenset({"localhost", "::1"})


def _loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); a name that merely starts with "127." is not."""
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    pipelines: dict[str, PipelineConfig] = field(default_factory=dict)
    extensions: tuple[str, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # Beyond the Collector: worker processes sharing the listening ports.
    workers: int = 1
    # Beyond the Collector: how long shutdown may spend draining batches and exporters.
    shutdown_timeout: Duration = 30.0
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)

    def validate(self) -> list[str]:
        errors = []
        if self.workers < 1:
            errors.append("workers must be at least 1")
        if self.shutdown_timeout <= 0:
            errors.append("shutdown_timeout must be positive")
        return errors


@dataclass(frozen=True)
class GatewayConfig:
    receivers: dict[str, Any]
    processors: dict[str, Any]
    exporters: dict[str, Any]
    extensions: dict[str, Any]
    service: ServiceConfig
    connectors: dict[str, Any] = field(default_factory=dict)

    def metrics_address(self) -> str | None:
        """Where /metrics listens, or None when telemetry metrics are off."""
        m = self.service.telemetry.metrics
        if m.level == "none":
            return None
        for reader in m.readers:
            prom = reader.pull.exporter.prometheus if reader.pull is not None else None
            if prom is not None:
                return f"{prom.host}:{prom.port}"
        return m.address
