"""The unit that flows through a pipeline: one OTLP export request, kept serialized until needed.

Protobuf concatenates repeated fields, so joined serialized requests are one valid request; a
`Batch` therefore carries bytes and parses them only when a processor must look inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines import otlp, wire

Signal = Literal["traces", "metrics", "logs"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What travels with the data besides the data: the authenticated tenant and request metadata."""

    tenant: str | None = None
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The authenticated identity's attributes (`username`, `subject`, `membership`): never a credential.
    auth: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get_metadata(self, key: str) -> tuple[str, ...]:
        return self.metadata.get(key.lower(), ())

    def get_auth(self, name: str) -> tuple[str, ...]:
        """`auth.<name>`: the tenant, or an attribute of the authenticated identity."""
        if name == "tenant":
            return (self.tenant,) if self.tenant is not None else ()
        return self.auth.get(name, ())

    def identity_key(self) -> tuple[Any, ...]:
        return (self.tenant, *sorted(self.auth.items())) if self.auth else (self.tenant,)

    def batch_key(self, metadata_keys: tuple[str, ...]) -> tuple[Any, ...]:
        """Batches never mix identities (tenants, users), nor values of the batch processor's `metadata_keys`."""
        return (self.identity_key(), *(self.get_metadata(k) for k in metadata_keys))


EMPTY_CONTEXT = RequestContext()


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Bytes a wire-level processor built from `request` (a split request with `added`/`replaced`),
    whose spans have the trace ids and trace states of `source`'s spans, in order. It travels with the
    new bytes in `Batch.rewrite`, so the next processor reads those fields from `source` (free when the
    receiver checked it) and builds from the same pieces without splitting again."""

    request: wire.Request
    source: Batch


class Batch:
    """A request of one signal: serialized bytes and/or a parsed message, its item count and context.

    `message()` gives a parse that may be shared with other pipelines: read it only.
    `mutable_message()` gives a message this batch owns; after changing it, call `changed()`.
    `ids`: what `otlp.check` learnt about the bytes (the receiver's; None when unchecked). It says the
    bytes parse, and holds facts about their ids; it goes with the bytes, so it is dropped when they
    change, and a processor that makes new bytes does not pass it on.
    `rewrite`: set by a wire-level processor on the bytes it built: how they
    were built and from which batch, for the next processor (`Rewrite`); like `ids`, dropped when the bytes change.
    """

    __slots__ = ("_data", "_msg", "_owned", "_parts", "context", "ids", "items", "rewrite", "signal")

    def __init__(
        self,
        signal: Signal,
        data: bytes | None,
        items: int,
        context: RequestContext = EMPTY_CONTEXT,
        msg: Any = None,
        owned: bool = False,
        ids: otlp.Checked | None = None,
        rewrite: Rewrite | None = None,
    ) -> None:
        if data is None and msg is None:
            raise ValueError("a batch needs bytes or a message")
        if ids is not None and data is None:
            raise ValueError("checked ids describe bytes")
        self.signal: Signal = signal
        self._data = data
        self._parts: list[bytes] | None = None
        self._msg = msg if msg is not None or ids is None else ids.msg
        self._owned = owned
        self.items = items
        self.context = context
        self.ids = ids
        self.rewrite = rewrite

    @classmethod
    def from_message(cls, signal: Signal, msg: Any, context: RequestContext = EMPTY_CONTEXT) -> Batch:
        return cls(signal, None, otlp.count_items(signal, msg), context, msg, owned=True)

    @classmethod
    def concat(cls, signal: Signal, parts: list[bytes], items: int, context: RequestContext = EMPTY_CONTEXT) -> Batch:
        """Serialized requests of one signal as one: their bytes concatenate into a valid request (the
        top-level repeated field merges), and are joined only if someone asks for `data()`; a sender
        can write `chunks()` as they are."""
        if len(parts) == 1:
            return cls(signal, parts[0], items, context)
        batch = cls(signal, b"", items, context)
        batch._data = None
        batch._parts = parts
        return batch

    @classmethod
    def merge(cls, batches: list[Batch], context: RequestContext) -> Batch:
        """Requests of one signal and context as one batch (their bytes concatenated, not joined). What
        `otlp.check` learnt holds for the whole when it holds for every part: each part parses and has
        valid ids, so their concatenation does too."""
        if len(batches) == 1:
            return batches[0]
        parts = [chunk for b in batches for chunk in b.chunks()]
        merged = cls.concat(batches[0].signal, parts, sum(b.items for b in batches), context)
        checked = [b.ids for b in batches]
        if all(c is not None for c in checked):
            merged.ids = otlp.Checked(None, all(c.ids_first for c in checked if c is not None),
                                      all(c.plain_states for c in checked if c is not None))
        return merged

    def data(self) -> bytes:
        if self._data is None:
            if self._parts is not None:
                self._data = b"".join(self._parts)
                self._parts = None
            else:
                self._data = self._msg.SerializeToString()
        return self._data

    def chunks(self) -> list[bytes]:
        """The serialized request as pieces whose concatenation is `data()` (without joining them)."""
        return self._parts if self._parts is not None else [self.data()]

    def nbytes(self) -> int:
        if self._parts is not None:
            return sum(map(len, self._parts))
        return len(self.data())

    def message(self) -> Any:
        if self._msg is None:
            self._msg = otlp.parse(self.signal, self.data())
        return self._msg

    def mutable_message(self) -> Any:
        if not self._owned:
            self._msg = otlp.parse(self.signal, self.data())
            self._owned = True
        self._data = self._parts = None
        self.ids = self.rewrite = None
        return self._msg

    def changed(self) -> None:
        """Recount and drop stale bytes after the owned message was modified."""
        self._data = self._parts = None
        self.ids = self.rewrite = None
        self.items = otlp.count_items(self.signal, self._msg)

    def share(self) -> Batch:
        """A new handle on the same data for another branch of a fan-out: its `mutable_message()`
        copies, so no branch sees another's changes."""
        return self.with_context(self.context)

    def with_context(self, context: RequestContext) -> Batch:
        if self._parts is not None:
            shared = Batch.concat(self.signal, self._parts, self.items, context)
            shared.ids, shared.rewrite = self.ids, self.rewrite
            return shared
        return Batch(self.signal, self._data, self.items, context, self._msg, owned=False, ids=self.ids,
                     rewrite=self.rewrite)

    def __repr__(self) -> str:
        return f"Batch({self.signal}, items={self.items}, tenant={self.context.tenant!r})"
