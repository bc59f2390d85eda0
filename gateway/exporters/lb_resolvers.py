"""Where the load-balancing exporter's endpoints come from: `static` (a fixed list) or `dns` (every
address a name resolves to, asked again each `interval`), as the Collector's resolvers. A resolver calls
`on_change` with the sorted endpoints whenever they differ from the last answer; a failed or empty DNS
answer keeps the endpoints in use (the Collector's keeps them on failure too).

`k8s` and `aws_cloud_map` are refused: neither can be proved here against a real API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.transport.resolve import DNS_PORT, Target, resolve, split_host_port
from pipelines.config_types import Duration, unsupported

log = logging.getLogger("gateway.exporter")

DEFAULT_PORT = 4317  # an endpoint written without a port, as the Collector's `endpointWithPort`

OnChange = Callable[[list[str]], None]


@dataclass(frozen=True)
class StaticConfig:
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsConfig:
    hostname: str = ""
    port: str = ""
    interval: Duration = 5.0
    timeout: Duration = 1.0
    # Ours: ask this DNS server (`host[:port]`, A and AAAA) instead of the system's resolver, as the otlp
    # exporter's `dns://server/host:port` does.
    server: str = ""


@dataclass(frozen=True)
class ResolverConfig:
    static: StaticConfig | None = None
    dns: DnsConfig | None = None
    k8s: Any = unsupported("the k8s resolver cannot be proved here against a real API server: use dns with "
                           "a headless Service's name")
    aws_cloud_map: Any = unsupported("the aws_cloud_map resolver cannot be proved here against AWS: use dns or static")

    def validate(self) -> list[str]:
        chosen = [name for name in ("static", "dns") if getattr(self, name) is not None]
        if not chosen:
            return ["no resolvers specified for the exporter (want static or dns)"]
        if len(chosen) > 1:
            return ["only one resolver should be specified"]
        errors = []
        if self.static is not None:
            if not self.static.hostnames:
                errors.append("static: no endpoints specified for the static resolver (hostnames)")
            for i, h in enumerate(self.static.hostnames):
                try:
                    split_host_port(h, DEFAULT_PORT)
                except ValueError as exc:
                    errors.append(f"static::hostnames[{i}]: {exc}")
        if self.dns is not None:
            dns = self.dns
            if not dns.hostname:
                errors.append("dns: no hostname specified to resolve the backends")
            if dns.port and not (dns.port.isdigit() and 0 < int(dns.port) < 65536):
                errors.append(f"dns::port: invalid port {dns.port!r}")
            if dns.interval < 0 or dns.timeout < 0:
                errors.append("dns: interval and timeout must not be negative")
            if dns.server:
                try:
                    split_host_port(dns.server, DNS_PORT)
                except ValueError as exc:
                    errors.append(f"dns::server: {exc}")
        return errors


def with_port(endpoint: str) -> str:
    return endpoint if ":" in endpoint else f"{endpoint}:{DEFAULT_PORT}"


class Resolver(Protocol):
    async def start(self, on_change: OnChange) -> None: ...

    async def shutdown(self) -> None: ...


class StaticResolver:
    def __init__(self, config: StaticConfig) -> None:
        self.endpoints = sorted({with_port(h) for h in config.hostnames})

    async def start(self, on_change: OnChange) -> None:
        on_change(list(self.endpoints))

    async def shutdown(self) -> None:
        pass


class DnsResolver:
    def __init__(self, exporter_id: str, config: DnsConfig) -> None:
        self.id = exporter_id
        self.config = config
        port = int(config.port) if config.port else DEFAULT_PORT
        server = split_host_port(config.server, DNS_PORT) if config.server else None
        self.target = Target(config.hostname, port, f"{config.hostname}:{port}", dns=True, server=server)
        self.endpoints: list[str] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_change: OnChange) -> None:
        await self._resolve(on_change)  # a failure here is logged: the name may come later
        self._task = asyncio.get_running_loop().create_task(self._periodically(on_change))

    async def _periodically(self, on_change: OnChange) -> None:
        while True:
            await asyncio.sleep(self.config.interval or 5.0)
            await self._resolve(on_change)

    async def _resolve(self, on_change: OnChange) -> None:
        try:
            async with asyncio.timeout(self.config.timeout or 1.0):
                addresses = await resolve(self.target)
        except (OSError, TimeoutError) as exc:
            log.warning("exporter %s: cannot resolve %s: %s", self.id, self.config.hostname, exc or "timed out")
            return
        endpoints = sorted({_join(ip, port) for ip, port in addresses})
        if not endpoints or endpoints == self.endpoints:
            return
        self.endpoints = endpoints
        log.info("exporter %s: %s resolves to %s", self.id, self.config.hostname, ", ".join(endpoints))
        on_change(list(endpoints))

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _join(host: str, port: int) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


def make(exporter_id: str, config: ResolverConfig) -> Resolver:
    if config.dns is not None:
        return DnsResolver(exporter_id, config.dns)
    assert config.static is not None
    return StaticResolver(config.static)
