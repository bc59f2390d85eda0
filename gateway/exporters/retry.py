"""The retry layer: jittered exponential backoff under one overall deadline (`max_elapsed_time`), as
the Collector's retry sender does, with the OTLP rule that the server's delay (RetryInfo, Retry-After)
sets the next wait. A stop event interrupts the backoff sleep at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.retry_state import RetryState
from pipelines.batch import Batch
from pipelines.config_types import Duration
from pipelines.errors import ConsumerError, PermanentError, RetryableError

log = logging.getLogger("gateway.exporter")

T = TypeVar("T")


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


class GaveUp(RetryableError):
    """Retries ran out (`max_elapsed_time`, or the server asked for a wait beyond it)."""


class Interrupted(Exception):
    """The stop event was set while waiting to retry; the batch was neither sent nor refused."""


class Backoff:
    """The Collector's (cenkalti) exponential backoff: each interval drawn uniformly from
    `current * (1 ± randomization_factor)`, then `current` grows by `multiplier` up to `max_interval`."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._current = config.initial_interval

    def next_delay(self) -> float:
        current = self._current
        r = self.config.randomization_factor
        delay = current * (1 + r * (2 * self._rng.random() - 1))
        self._current = min(current * self.config.multiplier, self.config.max_interval)
        return max(0.0, delay)


async def sleep_unless(stop: asyncio.Event, delay: float) -> bool:
    """Sleep `delay` seconds; return True if `stop` was set first."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return False
    return True


class RetrySender:
    """Calls `push` until it succeeds, fails permanently, or the deadline passes."""

    def __init__(self, exporter_id: str, config: RetryConfig, stop: asyncio.Event,
                 clock: Callable[[], float] = time.monotonic, state: RetryState | None = None) -> None:
        self.id = exporter_id
        self.config = config
        self.stop = stop
        self._clock = clock
        self._last_warning = -1e9
        self.state = state or RetryState(clock)

    async def send(self, push: Callable[[Batch], Awaitable[T]], batch: Batch) -> T:
        if not self.config.enabled:
            return await push(batch)
        start = self._clock()
        backoff = Backoff(self.config)
        state = self.state
        while True:
            try:
                result = await push(batch)
            except (PermanentError, Interrupted):  # Interrupted: the pusher itself saw the stop
                raise
            except ConsumerError as exc:
                error: ConsumerError = exc
                server_delay = exc.delay if isinstance(exc, RetryableError) else None
            except Exception as exc:  # a bug or an unclassified transport error: retry, but say so
                log.exception("exporter %s: unexpected error while sending", self.id)
                error = RetryableError(f"unexpected error: {exc!r}")
                server_delay = None
            else:
                if state.failures:
                    state.succeeded()
                return result
            state.failed(error)
            delay = backoff.next_delay()
            if server_delay is not None:
                delay = server_delay
            elapsed = self._clock() - start
            limit = self.config.max_elapsed_time
            if limit > 0 and elapsed + delay > limit:
                raise GaveUp(f"no more retries left after {elapsed:.1f}s: {error}") from error
            if self.stop.is_set():
                raise Interrupted(str(error))
            now = self._clock()
            if now - self._last_warning >= 10.0:
                self._last_warning = now
                log.warning("exporter %s: sending %d %s failed, will retry in %.2fs: %s",
                            self.id, batch.items, batch.signal, delay, error)
            token = state.waiting(delay)
            try:
                stopped = await sleep_unless(self.stop, delay)
            finally:
                state.woke(token)
            if stopped:
                raise Interrupted(str(error))
