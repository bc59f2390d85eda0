"""The batch processor's decisions, free of clocks and sockets: the gateway drives its timer.

Semantics follow the Collector's batch processor: a batch is sent once `send_batch_size` items are
pending (or at once when `timeout` is 0), in chunks of at most `send_batch_max_size`; the timer sends
one chunk. On top, a byte bound (`send_batch_max_bytes`) keeps every batch under a downstream's gRPC
message limit, which the Collector does not guarantee.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines import otlp
from pipelines.batch import RequestContext
from pipelines.config_types import Duration
from pipelines.errors import PermanentError

Chunk = tuple[bytes, int]


@dataclass(frozen=True)
class Config:
    send_batch_size: int = 8192
    timeout: Duration = 0.2
    send_batch_max_size: int = 0
    # 4 MiB is the default gRPC receive limit; leave room for the envelope and headers.
    send_batch_max_bytes: int = 4 * 1024 * 1024 - 64 * 1024
    metadata_keys: tuple[str, ...] = ()
    metadata_cardinality_limit: int = 1000

    def validate(self) -> list[str]:
        errors = []
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            errors.append("send_batch_max_size must be greater or equal to send_batch_size")
        for name in ("send_batch_size", "send_batch_max_size", "send_batch_max_bytes"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must not be negative")
        if self.timeout < 0:
            errors.append("timeout must not be negative")
        return errors


class MetadataCombinations:
    """`metadata_cardinality_limit`: how many distinct combinations of `metadata_keys` values one
    `batch` processor batches by over the process's lifetime; a request bringing one more is refused
    permanently, as the Collector does ("too many batcher metadata-value combinations")."""

    def __init__(self, keys: tuple[str, ...], limit: int) -> None:
        self.keys = keys
        self.limit = limit
        self._seen: set[tuple[tuple[str, ...], ...]] = set()

    def _key(self, context: RequestContext) -> tuple[tuple[str, ...], ...]:
        return tuple(context.get_metadata(k) for k in self.keys)

    def check(self, context: RequestContext) -> None:
        if len(self._seen) >= self.limit and self._key(context) not in self._seen:
            raise PermanentError(f"too many batcher metadata-value combinations (metadata_cardinality_limit "
                                 f"{self.limit})")

    def add(self, context: RequestContext) -> None:
        self._seen.add(self._key(context))


@dataclass(frozen=True)
class BatchPolicy:
    """How an exporter's consumers batch queued entries: the upstream `batch` processor's settings
    (`policy`), or, with none upstream, merge what is queued."""

    send_batch_size: int = 8192
    send_batch_max_size: int = 0
    send_batch_max_bytes: int = 4 * 1024 * 1024 - 64 * 1024
    timeout: float = 0.0
    metadata_keys: tuple[str, ...] = ()
    processor: str | None = None
    # Called with (items, bytes, size_triggered) for each batch formed, for the batch processor's metrics.
    observe: Callable[[int, int, bool], None] | None = None
    # Shared by every exporter the processor feeds, as the processor's one set of batchers is.
    combinations: MetadataCombinations | None = field(default=None, compare=False)

    def key(self, context: RequestContext) -> tuple[Any, ...]:
        return context.batch_key(self.metadata_keys)

    def kept(self, context: RequestContext) -> RequestContext:
        """What of a request's context the queue keeps: the tenant and the batching `metadata_keys`.

        Nothing after the queue reads other headers, and a persistent queue must not write request
        headers such as `authorization` to disk."""
        if not context.metadata:
            return context
        wanted = {k: v for k in self.metadata_keys if (v := context.get_metadata(k))}
        return RequestContext(context.tenant, wanted, context.auth)


def policy(c: Config, processor: str, observe: Callable[[int, int, bool], None] | None = None) -> BatchPolicy:
    """The batching a `batch` processor's config asks of the exporters downstream of it."""
    return BatchPolicy(
        # `timeout: 0` in the Collector means "send at once": no waiting, whatever is queued goes.
        # `send_batch_size: 0`: no size trigger, only the timer (bounded by the max sizes).
        send_batch_size=0 if c.timeout <= 0 else c.send_batch_size or c.send_batch_max_size or 1 << 62,
        send_batch_max_size=c.send_batch_max_size,
        send_batch_max_bytes=c.send_batch_max_bytes,
        timeout=c.timeout,
        metadata_keys=tuple(k.lower() for k in c.metadata_keys),
        processor=processor,
        observe=observe,
        combinations=MetadataCombinations(tuple(k.lower() for k in c.metadata_keys), c.metadata_cardinality_limit)
        if c.metadata_keys and c.metadata_cardinality_limit > 0 else None,
    )


class Batcher:
    """The pending items of one batch key (tenant and metadata values)."""

    def __init__(self, signal: str, config: Config) -> None:
        self.signal = signal
        self.config = config
        self._parts: deque[Chunk] = deque()
        self.items = 0
        self.nbytes = 0

    def add(self, data: bytes, items: int) -> list[Chunk]:
        """Take a request; return the chunks the size trigger sends now."""
        max_bytes = self.config.send_batch_max_bytes
        if max_bytes and len(data) > max_bytes:
            parts = otlp.split(self.signal, otlp.parse(self.signal, data), 0, max_bytes)
        else:
            parts = [(data, items)]
        for part in parts:
            self._parts.append(part)
            self.items += part[1]
            self.nbytes += len(part[0])
        out = []
        while self.items > 0 and self._size_triggered():
            out.append(self.take())
        return out

    def _size_triggered(self) -> bool:
        c = self.config
        return (
            c.timeout == 0
            or self.items >= c.send_batch_size
            or bool(c.send_batch_max_bytes and self.nbytes >= c.send_batch_max_bytes)
        )

    def take(self) -> Chunk:
        """One chunk of the pending items, within both bounds."""
        max_items = self.config.send_batch_max_size
        max_bytes = self.config.send_batch_max_bytes
        taken: list[bytes] = []
        items = 0
        nbytes = 0
        while self._parts:
            data, n = self._parts[0]
            room = max_items - items if max_items else n
            if n > room:
                if room <= 0:
                    break
                head, tail = otlp.split_at(self.signal, data, room)
                if taken and max_bytes and nbytes + len(head[0]) > max_bytes:
                    break
                self._parts[0] = tail
                self.items -= n
                self.nbytes -= len(data)
                self.items += tail[1]
                self.nbytes += len(tail[0])
                taken.append(head[0])
                items += head[1]
                nbytes += len(head[0])
                break
            if taken and max_bytes and nbytes + len(data) > max_bytes:
                break
            self._parts.popleft()
            self.items -= n
            self.nbytes -= len(data)
            taken.append(data)
            items += n
            nbytes += len(data)
        return b"".join(taken), items

    def drain(self) -> list[Chunk]:
        out = []
        while self.items > 0 or self._parts:
            chunk = self.take()
            if not chunk[1] and not chunk[0]:
                self._parts.clear()
                break
            out.append(chunk)
        return out
