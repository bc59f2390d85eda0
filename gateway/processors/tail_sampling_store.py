"""Where a tail sampler keeps its pending spans across a crash: a log of segment files in the
`file_storage` extension's directory (`processor_<type>_<name>`, locked against a second process).

Records are `length u32 | crc32 u32 | body`, written (to the page cache, so they survive kill -9;
`fsync: true` for power loss) before the request is answered. The fsync runs in a thread, off the event
loop, and the request is answered only after it (`sync`: one fsync covers every record written before
it started, in the live segment and in any rotated out since the last one).
- `Q`: arrival time (f64), the request's context (`length u32 | JSON`: tenant, the identity's
  attributes, and of the request metadata only the batching `metadata_keys` downstream: never a
  credential or another header), then its pending pieces, each `id length u8 | trace id | spans u32 |
  length u32 | ResourceSpans bytes`;
- `E`: decisions of one identity: its context (as in `Q`, without metadata), then each `id length u8 |
  trace id | decision u8`, written once a kept trace is held downstream, or when a trace is dropped.
- `P` and `D`, as `Q` and `E` without a context, are read as the records of an earlier version.

At start every segment is read in order: `Q` adds pieces to pending traces, `E` ends them and is
remembered, so late spans after a restart still follow it. A torn or corrupt record ends its segment.
Segments are deleted from the oldest on, once every trace with a piece in it is decided: a decision
is never deleted while the pieces it ends are still on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from gateway.component import Host
from gateway.queue.persistent import lock_directory
from pipelines.batch import EMPTY_CONTEXT, RequestContext
from pipelines.errors import RetryableError
from pipelines.tail_sampling import policies as pol
from pipelines.tail_sampling.engine import Engine, Part, TraceKey, trace_key
from pipelines.tail_sampling.split import Piece

log = logging.getLogger("gateway.processor.tail_sampling")

_REC = struct.Struct("<II")
_ARRIVAL = struct.Struct("<d")
_PIECE = struct.Struct("<II")
_CTX = struct.Struct("<I")
_CODES = {pol.SAMPLED: 0, pol.NOT_SAMPLED: 1, pol.DROPPED: 2}
_DECISIONS = {v: k for k, v in _CODES.items()}
SEGMENT_BYTES = 8 * 1024 * 1024


class Storage(Protocol):
    """What a tail sampler needs of the `file_storage` extension: where, how, and its disk budget."""

    config: Any

    def refusal(self, nbytes: int) -> str | None: ...

    def add(self, nbytes: int) -> None: ...


class _Segment:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.pending: set[TraceKey] = set()


def _record(body: bytes) -> bytes:
    return _REC.pack(len(body), zlib.crc32(body)) + body


def _encode_context(context: RequestContext, metadata_keys: Iterable[str]) -> bytes:
    metadata = {k: list(v) for k in metadata_keys if (v := context.get_metadata(k))}
    doc = {"tenant": context.tenant, "auth": {k: list(v) for k, v in context.auth.items()}, "metadata": metadata}
    blob = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return _CTX.pack(len(blob)) + blob


def _decode_context(body: bytes, at: int) -> tuple[RequestContext, int]:
    (n,) = _CTX.unpack_from(body, at)
    at += _CTX.size
    doc = json.loads(body[at:at + n])
    context = RequestContext(doc["tenant"], {k: tuple(v) for k, v in doc["metadata"].items()},
                             {k: tuple(v) for k, v in doc["auth"].items()})
    return context, at + n


class PendingStore:
    def __init__(self, directory: Path, storage: Storage) -> None:
        self.directory = directory
        self.storage = storage
        self.fsync = bool(storage.config.fsync)
        # Request metadata written with the pending pieces: the batching keys downstream, nothing else.
        self.metadata_keys: tuple[str, ...] = ()
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._next = 1
        # fsync: records written, records made durable, and the files of rotated-out segments not yet
        # synced (the sync owns and closes them, so no close races an fsync running off the loop).
        self._written = 0
        self._synced = 0
        self._retired: list[int] = []
        self._sync_lock = asyncio.Lock()

    def lock(self) -> None:
        self._lock_fd = lock_directory(self.directory)
        if self._lock_fd is None:
            raise RuntimeError(f"tail sampling directory {self.directory} is in use by another process")

    # -- start
    def load(self, engine: Engine) -> int:
        """Replay every segment into `engine`; how many traces are pending after it."""
        for path in sorted(self.directory.glob("*.tsl")):
            try:
                self._next = max(self._next, int(path.stem) + 1)
            except ValueError:
                continue
            seg = _Segment(path)
            blob = path.read_bytes()
            seg.size = self._replay(blob, seg, engine)
            if seg.size < len(blob):
                log.warning("tail sampling segment %s: %d torn or corrupt bytes after offset %d skipped",
                            path, len(blob) - seg.size, seg.size)
                os.truncate(path, seg.size)
            self._segments.append(seg)
            self.storage.add(seg.size)
        for seg in self._segments:
            seg.pending &= engine.pending.keys()
        self._collect()
        return len(engine.pending)

    def _replay(self, blob: bytes, seg: _Segment, engine: Engine) -> int:
        pos = 0
        while pos + _REC.size <= len(blob):
            length, crc = _REC.unpack_from(blob, pos)
            body = blob[pos + _REC.size:pos + _REC.size + length]
            if len(body) < length or zlib.crc32(body) != crc or not body:
                break
            try:
                self._apply(body, seg, engine)
            except (struct.error, KeyError, IndexError, ValueError, TypeError):
                break
            pos += _REC.size + length
        return pos

    def _apply(self, body: bytes, seg: _Segment, engine: Engine) -> None:
        kind, at = body[:1], 1
        context = EMPTY_CONTEXT
        if kind in (b"P", b"Q"):
            (arrival,) = _ARRIVAL.unpack_from(body, at)
            at += _ARRIVAL.size
            if kind == b"Q":
                context, at = _decode_context(body, at)
            while at < len(body):
                n = body[at]
                key = trace_key(context, body[at + 1:at + 1 + n])
                spans, size = _PIECE.unpack_from(body, at + 1 + n)
                at += 1 + n + _PIECE.size
                engine.restore(key, Part(context, body[at:at + size], spans), arrival)
                seg.pending.add(key)
                at += size
        elif kind in (b"D", b"E"):
            if kind == b"E":
                context, at = _decode_context(body, at)
            while at < len(body):
                n = body[at]
                key, decision = trace_key(context, body[at + 1:at + 1 + n]), _DECISIONS[body[at + 1 + n]]
                at += 2 + n
                if key in engine.pending:
                    engine.discard(key)
                engine.remember(key, decision)
        else:
            raise KeyError(kind)

    # -- running
    def refusal(self, nbytes: int) -> str | None:
        return self.storage.refusal(nbytes + 64)

    def append(self, pieces: list[Piece], now: float, context: RequestContext = EMPTY_CONTEXT) -> None:
        parts = [b"Q", _ARRIVAL.pack(now), _encode_context(context, self.metadata_keys)]
        for p in pieces:
            parts += [bytes([len(p.trace_id)]), p.trace_id, _PIECE.pack(p.spans, len(p.data)), p.data]
        seg = self._write(_record(b"".join(parts)))
        seg.pending.update(trace_key(context, p.trace_id) for p in pieces)

    def decided(self, decisions: list[tuple[RequestContext, bytes, str]]) -> None:
        """(context of the trace's identity, trace id, decision) for each trace decided."""
        if not decisions:
            return
        groups: dict[object, tuple[RequestContext, list[bytes]]] = {}
        for context, tid, d in decisions:
            entry = bytes([len(tid)]) + tid + bytes([_CODES[d]])
            groups.setdefault(context.identity_key(), (context, []))[1].append(entry)
        try:
            for context, entries in groups.values():
                self._write(_record(b"".join([b"E", _encode_context(context, ()), *entries])))
        except RetryableError as exc:
            log.warning("%s (the decisions will be made again after a restart)", exc)
        keys = {trace_key(context, tid) for context, tid, _ in decisions}
        for seg in self._segments:
            seg.pending -= keys
        self._collect()

    def _write(self, record: bytes) -> _Segment:
        live = self._segments[-1] if self._segments and self._fd is not None else None
        if live is None or live.size + len(record) > SEGMENT_BYTES:
            live = self._rotate()
        assert self._fd is not None
        try:
            os.write(self._fd, record)
        except OSError as exc:
            os.ftruncate(self._fd, live.size)
            raise RetryableError(f"tail sampling storage {self.directory.name}: write failed: {exc}", 1.0) from None
        live.size += len(record)
        self.storage.add(len(record))
        self._written += 1
        return live

    def _rotate(self) -> _Segment:
        if self._fd is not None:
            if self.fsync and self._synced < self._written:
                self._retired.append(self._fd)  # the next sync makes it durable and closes it
            else:
                os.close(self._fd)
        seg = _Segment(self.directory / f"{self._next:012d}.tsl")
        self._next += 1
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._segments.append(seg)
        return seg

    async def sync(self) -> None:
        """With `fsync: true`, return once every record written before the call is durable. The fsync
        runs in a thread, off the event loop; one covers every record written before it started."""
        if not self.fsync:
            return
        target = self._written
        async with self._sync_lock:
            if self._synced >= target:
                return
            await self._fsync_all()

    async def _fsync_all(self) -> None:
        """fsync the live segment and the rotated-out ones, in a thread, on descriptors that only this
        call closes (the live one duplicated), so the loop may rotate or close meanwhile."""
        upto = self._written
        fds, self._retired = self._retired, []
        if self._fd is not None:
            fds.append(os.dup(self._fd))
        await asyncio.get_running_loop().run_in_executor(None, _fsync_close, fds)
        self._synced = max(self._synced, upto)

    def _collect(self) -> None:
        """Delete the oldest segments whose traces are all decided (never the one being written)."""
        while len(self._segments) > (1 if self._fd is not None else 0) and not self._segments[0].pending:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink()
                self.storage.add(-seg.size)
            except FileNotFoundError:
                pass

    async def close(self) -> None:
        try:
            if self.fsync:
                async with self._sync_lock:
                    await self._fsync_all()
        finally:
            for fd in (*self._retired, self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._retired = []
            self._fd = self._lock_fd = None


def _fsync_close(fds: list[int]) -> None:
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


async def open_store(host: Host, storage_id: str, owner: str) -> PendingStore:
    ext: Any = host.extension(storage_id)
    if not all(hasattr(ext, a) for a in ("config", "refusal", "add")):
        raise TypeError(f"processor {owner}: storage {storage_id!r} is not a file_storage extension")
    name = "processor_" + re.sub(r"[^A-Za-z0-9_.-]", "_", owner.replace("/", "_"))
    store = PendingStore(Path(ext.config.directory) / name, ext)
    store.lock()
    return store
