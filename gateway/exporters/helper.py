"""The exporter helper: a plain push function wrapped in layers (counting, and the sending queue
and retry of the delivery work), as the Collector's exporterhelper does. Shared config blocks live here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.component import Settings
from pipelines.batch import Batch
from pipelines.config_types import Duration
from pipelines.errors import ConsumerError, PermanentError, RetryableError

log = logging.getLogger("gateway.exporter")


@dataclass(frozen=True)
class QueueConfig:
    enabled: bool = True
    num_consumers: int = 10
    queue_size: int = 1000
    sizer: Literal["requests", "items", "bytes"] = "requests"
    storage: str | None = None
    blocking: bool = False
    wait_for_result: bool = False

    def validate(self) -> list[str]:
        errors = []
        if self.enabled and self.num_consumers < 1:
            errors.append("num_consumers must be at least 1")
        if self.enabled and self.queue_size < 1:
            errors.append("queue_size must be positive")
        return errors


@dataclass(frozen=True)
class RetryConfig:
    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = 0.5
    multiplier: float = 1.5
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0

    def validate(self) -> list[str]:
        errors = []
        if self.initial_interval < 0 or self.max_interval < 0 or self.max_elapsed_time < 0:
            errors.append("intervals must not be negative")
        if not 0 <= self.randomization_factor <= 1:
            errors.append("randomization_factor must be between 0 and 1")
        if self.multiplier < 1:
            errors.append("multiplier must be at least 1")
        return errors


@dataclass(frozen=True)
class ExporterCommon:
    """Keys every exporter built on the helper accepts."""

    timeout: Duration = 5.0
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)


class Pusher(Protocol):
    async def start(self) -> None: ...

    async def push(self, batch: Batch) -> None:
        """Send one batch; raise PermanentError or RetryableError on failure."""
        ...

    async def shutdown(self) -> None: ...


class _OncePerInterval:
    """A log filter of our own: the same failure is logged at most once per interval, then counted."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval:
            self._last[key] = now
            return True
        return False


class Exporter:
    """An exporter: a pusher with its metrics. Consumers see this object."""

    def __init__(self, settings: Settings, pusher: Pusher) -> None:
        self.id = settings.id
        self.pusher = pusher
        self._telemetry = settings.telemetry
        self._sent = {s: settings.telemetry.exporter_sent(s, settings.id) for s in ("traces", "metrics", "logs")}
        self._failed = {
            s: settings.telemetry.exporter_send_failed(s, settings.id) for s in ("traces", "metrics", "logs")
        }
        self._log_gate = _OncePerInterval()

    async def start(self) -> None:
        await self.pusher.start()

    async def consume(self, batch: Batch) -> None:
        try:
            await self.pusher.push(batch)
        except ConsumerError as exc:
            self._failed[batch.signal].inc(batch.items)
            kind = "permanent" if isinstance(exc, PermanentError) else "retryable"
            if self._log_gate.allow(f"{kind}:{exc}"):
                log.warning("exporter %s failed to send %d %s (%s): %s", self.id, batch.items,
                            batch.signal, kind, exc)
            raise
        except Exception as exc:
            self._failed[batch.signal].inc(batch.items)
            log.exception("exporter %s failed unexpectedly", self.id)
            raise RetryableError(f"exporter {self.id} failed: {exc}") from exc
        self._sent[batch.signal].inc(batch.items)

    async def shutdown(self) -> None:
        await self.pusher.shutdown()
