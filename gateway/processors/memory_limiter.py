"""The `memory_limiter` processor: measures the process's RSS every `check_interval` (one read of
/proc/self/statm) and, at or above the soft limit, refuses data with a retryable error so clients back
off, instead of the gateway growing until it is killed. Put it first in the pipeline.

Above the soft limit it also collects garbage and returns freed heap to the OS (malloc_trim), at most
every `min_gc_interval_when_soft_limited` (`..._hard_limited` above the hard limit), so RSS can fall
back once queues drain. Limits come from `pipelines.processors.memory_limiter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from gateway.component import Consumer, ProcessorFactory, Settings
from gateway.telemetry import read_rss
from pipelines.batch import Batch, Signal
from pipelines.errors import RetryableError
from pipelines.processors.memory_limiter import Config, Limits, State

log = logging.getLogger("gateway.processor.memory_limiter")

# The delay a refused client is asked to wait.
RETRY_AFTER = 1.0
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def total_memory() -> int | None:
    """The container's memory limit (cgroup v2 or v1) if set, else the host's memory."""
    for path in _CGROUP_LIMITS:
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max" and int(text) < 1 << 60:
                return int(text)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0): hand freed heap back to the OS so RSS reflects what is live."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None

    def run() -> None:
        trim(0)

    return run


class MemoryLimiter:
    """One per process and config: every memory_limiter stage with the same config shares it."""

    def __init__(self, config: Config, read: Callable[[], int] = read_rss) -> None:
        self.config = config
        self.limits = Limits.of(config, total_memory() if config.limit_mib <= 0 else None)
        self.state: State = "ok"
        self.rss = 0
        self._read = read
        self._trim = _malloc_trim()
        self._last_gc = -1e9
        self._task: asyncio.Task[None] | None = None
        self._users = 0

    def check(self) -> None:
        self.rss = self._read()
        state = self.limits.state(self.rss)
        if state != "ok":
            interval = (self.config.min_gc_interval_when_hard_limited if state == "hard"
                        else self.config.min_gc_interval_when_soft_limited)
            now = time.monotonic()
            if now - self._last_gc >= interval:
                self._last_gc = now
                gc.collect()
                self._trim()
                self.rss = self._read()
                state = self.limits.state(self.rss)
        if state != self.state:
            if state == "ok":
                log.info("memory usage back within limits (%d MiB); accepting data again", self.rss >> 20)
            elif self.state == "ok":
                log.warning("memory usage %d MiB is above the soft limit %d MiB; refusing data",
                            self.rss >> 20, self.limits.soft >> 20)
            self.state = state

    async def _run(self) -> None:
        while True:
            try:
                self.check()
            except OSError as exc:
                log.error("cannot read memory usage: %s", exc)
            except Exception:
                # The limiter must keep measuring: a frozen state would refuse or admit forever.
                log.exception("memory limiter check failed")
            await asyncio.sleep(self.config.check_interval)

    def acquire(self) -> None:
        self._users += 1
        if self._task is None:
            self.check()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_LIMITERS: dict[Config, MemoryLimiter] = {}


class MemoryLimiterStage:
    def __init__(self, settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> None:
        self.id = settings.id
        self._next = next_consumer
        self.limiter = _LIMITERS.setdefault(settings.config, MemoryLimiter(settings.config))
        self._refused = settings.telemetry.processor_refused(signal, settings.id)
        self.items = settings.telemetry.processor_items(signal, settings.id)

    async def start(self) -> None:
        self.limiter.acquire()

    def admit(self, batch: Batch) -> None:
        if self.limiter.state != "ok":
            # Passed to the processor and refused, as when `consume` is asked first (one pipeline): a fan-out
            # asks every branch `admit` before any `consume`.
            self.items.incoming += batch.items
            self._refuse(batch)
        self._next.admit(batch)

    def _refuse(self, batch: Batch) -> NoReturn:
        self._refused.inc(batch.items)
        raise RetryableError(f"{self.id}: memory usage {self.limiter.rss >> 20} MiB is above the limit "
                             f"{self.limiter.limits.soft >> 20} MiB", RETRY_AFTER)

    async def consume(self, batch: Batch) -> None:
        self.items.incoming += batch.items
        if self.limiter.state != "ok":
            self._refuse(batch)
        self.items.outgoing += batch.items
        await self._next.consume(batch)

    async def shutdown(self) -> None:
        await self.limiter.release()


def create(settings: Settings[Config], next_consumer: Consumer, signal: Signal) -> MemoryLimiterStage:
    return MemoryLimiterStage(settings, next_consumer, signal)


FACTORY = ProcessorFactory(type="memory_limiter", config=Config, create=create)
