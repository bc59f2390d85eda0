"""Taps: sampled copies of the items crossing one edge of the running graph, for `/api/v1/tap`.

A tap hooks the consumers already in the graph: while at least one tap is open on a consumer, its
`consume` is an instance attribute that offers each batch to the taps and then calls the class's
`consume`; when the last tap on it closes the attribute is deleted, so the consumer is exactly what it was
(no flag asked per request: with no tap open the hot path is unchanged).

A tap never slows the pipeline: `offer` is a token bucket (`rate` items a second, bursts of `rate`); with no
token left it returns at once, and otherwise it keeps a new handle on the batch (`Batch.share()`, no copy)
in a short bounded buffer. The tap's reader parses it later, outside the request, and writes a line per span.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

from pipelines.batch import Batch

Direction = Literal["in", "out"]

DEFAULT_RATE = 10.0
MAX_RATE = 1000.0
# Batches a tap holds for its reader; one more is dropped (a slow client never holds the gateway's memory).
_BUFFER = 32


class Tap:
    def __init__(self, component: str, direction: Direction, rate: float = DEFAULT_RATE) -> None:
        self.component = component
        self.direction = direction
        self.rate = rate
        self._tokens = rate
        self._at = time.monotonic()
        self._held: collections.deque[tuple[Batch, int]] = collections.deque(maxlen=_BUFFER)
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, batch: Batch) -> None:
        now = time.monotonic()
        # Room for one item at least: a rate under 1 still yields items.
        tokens = min(max(self.rate, 1.0), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens < 1:
            self._tokens = tokens
            return
        take = min(int(tokens), batch.items) or 1
        self._tokens = tokens - take
        self._held.append((self.keep(batch), take))
        self._ready.set()

    def keep(self, batch: Batch) -> Batch:
        """What the tap holds of a sampled batch for its reader: a new handle, no copy."""
        return batch.share()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, wait: float) -> tuple[Batch, int] | None:
        """The next sampled batch and how many of its items to show; None after `wait` seconds or once closed."""
        if not self._held and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                return None
        return self._held.popleft() if self._held else None


_Consume = Callable[[Batch], Awaitable[None]]


class Taps:
    """The taps open on each hooked consumer (by object identity)."""

    def __init__(self) -> None:
        self._on: dict[int, tuple[Any, list[Tap]]] = {}

    def hooked(self) -> Iterator[Any]:
        return (obj for obj, _ in self._on.values())

    def open(self, tap: Tap, consumers: list[Any]) -> None:
        """Hook `tap` on each of `consumers`; ValueError if one cannot be hooked."""
        for obj in consumers:
            if not hasattr(obj, "__dict__"):
                raise ValueError(f"{type(obj).__name__} cannot be tapped")
        for obj in consumers:
            entry = self._on.get(id(obj))
            if entry is None:
                taps: list[Tap] = []
                self._on[id(obj)] = (obj, taps)
                obj.consume = _hook(obj.consume, taps)
            else:
                taps = entry[1]
            taps.append(tap)

    def close(self, tap: Tap, consumers: list[Any]) -> None:
        tap.close()
        for obj in consumers:
            entry = self._on.get(id(obj))
            if entry is None or tap not in entry[1]:
                continue
            entry[1].remove(tap)
            if not entry[1]:
                del self._on[id(obj)]
                del obj.consume  # the class's method again

    def close_all(self) -> None:
        for obj, taps in list(self._on.values()):
            for tap in list(taps):
                self.close(tap, [obj])


def _hook(consume: _Consume, taps: list[Tap]) -> _Consume:
    # Not a coroutine of its own: the caller awaits the consumer's, so a tap adds no frame to the await.
    def tapped(batch: Batch) -> Awaitable[None]:
        for tap in taps:
            tap.offer(batch)
        return consume(batch)

    return tapped
