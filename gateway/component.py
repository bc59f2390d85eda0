"""The contracts between the service and its components, and what a component is given at creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.batch import Batch

if TYPE_CHECKING:
    from gateway.telemetry import Telemetry


class Consumer(Protocol):
    """Takes a batch or raises a typed refusal (pipelines.errors)."""

    async def consume(self, batch: Batch) -> None: ...


class Component(Protocol):
    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class Host(Protocol):
    """What a component may ask of the running service."""

    def extension(self, component_id: str) -> Any: ...


@dataclass(frozen=True)
class Settings:
    id: str
    config: Any
    telemetry: Telemetry
    host: Host
    # Several worker processes share the listening ports (SO_REUSEPORT).
    reuse_port: bool = False

    @property
    def type(self) -> str:
        return self.id.partition("/")[0]
