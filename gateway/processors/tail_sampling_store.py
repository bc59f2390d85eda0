"""Where a tail sampler keeps its pending spans across a crash: a log of segment files in the
`file_storage` extension's directory (`processor_<type>_<name>`, locked against a second process).

Records are `length u32 | crc32 u32 | body`, written (to the page cache, so they survive kill -9;
`fsync: true` for power loss) before the request is answered:
- `P`: arrival time (f64), then the request's pending pieces, each `id length u8 | trace id |
  spans u32 | length u32 | ResourceSpans bytes`;
- `D`: decisions, each `id length u8 | trace id | decision u8`, written once a kept trace is held
  downstream, or when a trace is dropped.

At start every segment is read in order: `P` adds pieces to pending traces, `D` ends them and is
remembered, so late spans after a restart still follow it. A torn or corrupt record ends its segment.
Segments are deleted from the oldest on, once every trace with a piece in it is decided: a decision
is never deleted while the pieces it ends are still on disk.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Protocol

from gateway.component import Host
from gateway.queue.persistent import lock_directory
from pipelines.errors import RetryableError
from pipelines.tail_sampling import policies as pol
from pipelines.tail_sampling.engine import Engine
from pipelines.tail_sampling.split import Piece

log = logging.getLogger("gateway.processor.tail_sampling")

_REC = struct.Struct("<II")
_ARRIVAL = struct.Struct("<d")
_PIECE = struct.Struct("<II")
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
        self.pending: set[bytes] = set()


def _record(body: bytes) -> bytes:
    return _REC.pack(len(body), zlib.crc32(body)) + body


class PendingStore:
    def __init__(self, directory: Path, storage: Storage) -> None:
        self.directory = directory
        self.storage = storage
        self.fsync = bool(storage.config.fsync)
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._next = 1
        self._dirty = False

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
            except (struct.error, KeyError, IndexError):
                break
            pos += _REC.size + length
        return pos

    def _apply(self, body: bytes, seg: _Segment, engine: Engine) -> None:
        kind, at = body[:1], 1
        if kind == b"P":
            (arrival,) = _ARRIVAL.unpack_from(body, at)
            at += _ARRIVAL.size
            while at < len(body):
                n = body[at]
                tid = body[at + 1:at + 1 + n]
                spans, size = _PIECE.unpack_from(body, at + 1 + n)
                at += 1 + n + _PIECE.size
                engine.restore(tid, body[at:at + size], spans, arrival)
                seg.pending.add(tid)
                at += size
        elif kind == b"D":
            while at < len(body):
                n = body[at]
                tid, decision = body[at + 1:at + 1 + n], _DECISIONS[body[at + 1 + n]]
                at += 2 + n
                if tid in engine.pending:
                    engine.discard(tid)
                engine.remember(tid, decision)
        else:
            raise KeyError(kind)

    # -- running
    def refusal(self, nbytes: int) -> str | None:
        return self.storage.refusal(nbytes + 64)

    def append(self, pieces: list[Piece], now: float) -> None:
        parts = [b"P", _ARRIVAL.pack(now)]
        for p in pieces:
            parts += [bytes([len(p.trace_id)]), p.trace_id, _PIECE.pack(p.spans, len(p.data)), p.data]
        seg = self._write(_record(b"".join(parts)))
        seg.pending.update(p.trace_id for p in pieces)

    def decided(self, decisions: list[tuple[bytes, str]]) -> None:
        if not decisions:
            return
        body = b"D" + b"".join(bytes([len(t)]) + t + bytes([_CODES[d]]) for t, d in decisions)
        try:
            self._write(_record(body))
        except RetryableError as exc:
            log.warning("%s (the decisions will be made again after a restart)", exc)
        ids = {t for t, _ in decisions}
        for seg in self._segments:
            seg.pending -= ids
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
        self._dirty = True
        return live

    def _rotate(self) -> _Segment:
        if self._fd is not None:
            os.close(self._fd)
        seg = _Segment(self.directory / f"{self._next:012d}.tsl")
        self._next += 1
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._segments.append(seg)
        return seg

    async def sync(self) -> None:
        if self.fsync and self._dirty and self._fd is not None:
            self._dirty = False
            os.fsync(self._fd)

    def _collect(self) -> None:
        """Delete the oldest segments whose traces are all decided (never the one being written)."""
        while len(self._segments) > (1 if self._fd is not None else 0) and not self._segments[0].pending:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink()
                self.storage.add(-seg.size)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                if fd == self._fd and self.fsync:
                    os.fsync(fd)
                os.close(fd)
        self._fd = self._lock_fd = None


async def open_store(host: Host, storage_id: str, owner: str) -> PendingStore:
    ext: Any = host.extension(storage_id)
    if not all(hasattr(ext, a) for a in ("config", "refusal", "add")):
        raise TypeError(f"processor {owner}: storage {storage_id!r} is not a file_storage extension")
    name = "processor_" + re.sub(r"[^A-Za-z0-9_.-]", "_", owner.replace("/", "_"))
    store = PendingStore(Path(ext.config.directory) / name, ext)
    store.lock()
    return store
