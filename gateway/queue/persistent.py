"""The disk store of a persistent sending queue: append-only segment files plus an ack file each.

A record is `length u32 | crc32 u32 | body`, body = `header length u32 | JSON header | OTLP bytes`. A
record is written (to the page cache, so it survives kill -9; `fsync: true` for power loss) before the
request is acknowledged to the client. Acks are `seq u64 | crc32 u32` records in the segment's `.ack`
file; a segment whose records are all acknowledged is deleted. At start, every segment is read back: a
torn or corrupt record ends that segment (the rest of it is skipped and truncated away, logged), so a
crash mid-write never becomes a crash loop. A new run appends to a new segment, never after a tear.
Delivery is at least once: a batch sent but not yet acked when the process dies is sent again.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Protocol

from gateway.queue.sending import Entry
from pipelines.batch import RequestContext
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.storage")

_REC = struct.Struct("<II")
_HDR = struct.Struct("<I")
_ACK = struct.Struct("<QI")
_SIGNALS = ("traces", "metrics", "logs")
# bbolt's flockRetryTimeout: how often a held queue directory lock is tried again.
_LOCK_RETRY = 0.05


class Budget(Protocol):
    """The storage extension's disk bound, shared by its queues."""

    def refusal(self, nbytes: int) -> str | None: ...

    def add(self, nbytes: int) -> None: ...


class _Segment:
    __slots__ = ("ack_fd", "acked", "id", "path", "read_fd", "size", "total", "write_fd")

    def __init__(self, directory: Path, seg_id: int) -> None:
        self.id = seg_id
        self.path = directory / f"{seg_id:012d}.seg"
        self.write_fd: int | None = None
        self.read_fd: int | None = None
        self.ack_fd: int | None = None
        self.size = 0
        self.total = 0
        self.acked = 0

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(".ack")

    def reader(self) -> int:
        if self.read_fd is None:
            self.read_fd = os.open(self.path, os.O_RDONLY)
        return self.read_fd

    def close(self) -> None:
        for fd in (self.write_fd, self.read_fd, self.ack_fd):
            if fd is not None:
                os.close(fd)
        self.write_fd = self.read_fd = self.ack_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def encode(entry: Entry, data: bytes) -> tuple[bytes, int]:
    """The record for an entry, and the offset of its OTLP bytes inside the record."""
    ctx = entry.context
    header = json.dumps({
        "seq": entry.seq, "signal": entry.signal, "items": entry.items,
        "tenant": ctx.tenant, "metadata": {k: list(v) for k, v in ctx.metadata.items()},
        "auth": {k: list(v) for k, v in ctx.auth.items()},
    }, separators=(",", ":")).encode()
    body = _HDR.pack(len(header)) + header + data
    return _REC.pack(len(body), zlib.crc32(body)) + body, _REC.size + _HDR.size + len(header)


def decode_records(blob: bytes) -> tuple[list[tuple[dict[str, Any], int, int]], int]:
    """Records of a segment as (header, data offset, data length), and the length of the valid prefix."""
    out: list[tuple[dict[str, Any], int, int]] = []
    pos = 0
    while pos + _REC.size <= len(blob):
        length, crc = _REC.unpack_from(blob, pos)
        body_at = pos + _REC.size
        if length < _HDR.size or body_at + length > len(blob):
            break
        body = blob[body_at:body_at + length]
        if zlib.crc32(body) != crc:
            break
        (hlen,) = _HDR.unpack_from(body, 0)
        try:
            header = json.loads(body[_HDR.size:_HDR.size + hlen])
            if header["signal"] not in _SIGNALS:
                raise ValueError(header["signal"])
        except (ValueError, KeyError, TypeError):
            break
        data_at = body_at + _HDR.size + hlen
        out.append((header, data_at, length - _HDR.size - hlen))
        pos = body_at + length
    return out, pos


def decode_acks(blob: bytes) -> set[int]:
    acked = set()
    for pos in range(0, len(blob) - _ACK.size + 1, _ACK.size):
        seq, crc = _ACK.unpack_from(blob, pos)
        if zlib.crc32(blob[pos:pos + 8]) == crc:
            acked.add(seq)
    return acked


def lock_directory(directory: Path) -> int | None:
    """Take `directory`'s lock (creating both) if no other open file holds it (flock: another process,
    or another store on the same directory in this one); the lock's descriptor, or None."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class DiskStore:
    persistent = True

    def __init__(self, directory: Path, fsync: bool, budget: Budget, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = directory
        self.fsync = fsync
        self.budget = budget
        self.segment_bytes = segment_bytes
        self._segments: dict[int, _Segment] = {}
        self._live: _Segment | None = None
        self._next_id = 1
        self._lock_fd: int | None = None
        self._sync_lock = asyncio.Lock()
        self._written = 0
        self._synced = 0

    # -- startup
    def _try_lock(self) -> bool:
        self._lock_fd = lock_directory(self.directory)
        return self._lock_fd is not None

    def open(self) -> None:
        """Lock the directory now; RuntimeError if it is held."""
        if not self._try_lock():
            raise RuntimeError(f"queue directory {self.directory} is in use by another process")

    async def open_within(self, seconds: float) -> None:
        """Lock the directory, waiting up to `seconds` for another holder to let go (0: for as long as it
        takes), as bbolt's Open does with the Collector's file_storage `timeout`: a try every 50 ms,
        since flock has no timeout of its own, and a last one at the deadline. RuntimeError naming the
        directory and the timeout when it is still held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        if self._try_lock():
            return
        log.info("queue directory %s is locked by another process; waiting %s for it (file_storage timeout)",
                 self.directory, f"up to {seconds:g}s" if seconds else "with no limit")
        while not self._try_lock():
            left = deadline - loop.time()
            if seconds and left <= 0:
                raise RuntimeError(f"queue directory {self.directory} is in use by another process: still locked "
                                   f"after {seconds:g}s (file_storage timeout)")
            await asyncio.sleep(min(_LOCK_RETRY, left) if seconds else _LOCK_RETRY)

    def load(self) -> list[Entry]:
        entries: list[Entry] = []
        for path in sorted(self.directory.glob("*.seg")):
            try:
                seg_id = int(path.stem)
            except ValueError:
                continue
            self._next_id = max(self._next_id, seg_id + 1)
            seg = _Segment(self.directory, seg_id)
            try:
                entries.extend(self._load_segment(seg))
            except OSError as exc:
                log.error("cannot read queue segment %s, skipping it: %s", path, exc)
        return entries

    def _load_segment(self, seg: _Segment) -> list[Entry]:
        blob = seg.path.read_bytes()
        records, valid = decode_records(blob)
        if valid < len(blob):
            log.warning("queue segment %s: %d bytes after offset %d are torn or corrupt; skipped and truncated "
                        "(%d intact records kept)", seg.path, len(blob) - valid, valid, len(records))
            os.truncate(seg.path, valid)
        acked = decode_acks(seg.ack_path.read_bytes()) if seg.ack_path.exists() else set()
        seg.size = valid
        seg.total = len(records)
        entries = []
        for header, at, length in records:
            if header["seq"] in acked:
                seg.acked += 1
                continue
            ctx = RequestContext(header.get("tenant"), {k: tuple(v) for k, v in header.get("metadata", {}).items()},
                                 {k: tuple(v) for k, v in header.get("auth", {}).items()})
            e = Entry(int(header["seq"]), header["signal"], int(header["items"]), length, ctx, None, 0.0)
            e.loc = (seg, at, length)
            entries.append(e)
        if not entries:
            self._delete(seg, count=False)
            return []
        self._segments[seg.id] = seg
        self.budget.add(seg.size + (seg.ack_path.stat().st_size if seg.ack_path.exists() else 0))
        return entries

    # -- the queue's side
    def refusal(self, nbytes: int) -> str | None:
        return self.budget.refusal(nbytes + 256)

    def write(self, entry: Entry, data: bytes) -> None:
        record, data_at = encode(entry, data)
        seg = self._live
        if seg is None or (seg.size and seg.size + len(record) > self.segment_bytes):
            seg = self._rotate()
        assert seg.write_fd is not None
        before = seg.size
        try:
            _write_all(seg.write_fd, record)
        except OSError as exc:
            # A partial record would read back as a tear; remove it now and refuse the request.
            try:
                os.ftruncate(seg.write_fd, before)
                os.lseek(seg.write_fd, before, os.SEEK_SET)
            except OSError:
                log.exception("cannot truncate %s after a failed write", seg.path)
            reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"write failed: {exc}"
            raise RetryableError(f"persistent queue {self.directory.name}: {reason}", 1.0) from None
        seg.size += len(record)
        seg.total += 1
        self._written += 1
        self.budget.add(len(record))
        entry.loc = (seg, before + data_at, len(data))

    def _rotate(self) -> _Segment:
        old = self._live
        if old is not None:
            if old.write_fd is not None:
                if self.fsync:
                    os.fsync(old.write_fd)
                os.close(old.write_fd)
                old.write_fd = None
            if old.acked == old.total:
                self._delete(old)
        seg = _Segment(self.directory, self._next_id)
        self._next_id += 1
        seg.write_fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        if self.fsync:
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._segments[seg.id] = seg
        self._live = seg
        return seg

    async def sync(self) -> None:
        """Group commit: one fsync covers every record written before it started."""
        if not self.fsync:
            return
        target = self._written
        async with self._sync_lock:
            if self._synced >= target or self._live is None or self._live.write_fd is None:
                return
            upto = self._written
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, self._live.write_fd)
            self._synced = upto

    def read(self, entry: Entry) -> bytes:
        seg, at, length = entry.loc
        return os.pread(seg.reader(), length, at)

    def ack(self, entries: list[Entry]) -> None:
        by_seg: dict[int, list[int]] = {}
        for e in entries:
            by_seg.setdefault(e.loc[0].id, []).append(e.seq)
        for seg_id, seqs in by_seg.items():
            seg = self._segments.get(seg_id)
            if seg is None:
                continue
            seg.acked += len(seqs)
            if seg is not self._live and seg.acked >= seg.total:
                self._delete(seg)
                continue
            if seg.ack_fd is None:
                seg.ack_fd = os.open(seg.ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            blob = b"".join(_ACK.pack(s, zlib.crc32(struct.pack("<Q", s))) for s in seqs)
            try:
                _write_all(seg.ack_fd, blob)
                self.budget.add(len(blob))
            except OSError as exc:
                log.warning("cannot record acks in %s (they will be sent again after a restart): %s",
                            seg.ack_path, exc)

    def _delete(self, seg: _Segment, count: bool = True) -> None:
        freed = 0
        for path in (seg.path, seg.ack_path):
            try:
                freed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
        seg.close()
        self._segments.pop(seg.id, None)
        if count:
            self.budget.add(-freed)

    def close(self) -> None:
        for seg in list(self._segments.values()):
            if seg.write_fd is not None and self.fsync:
                os.fsync(seg.write_fd)
            seg.close()
        self._segments.clear()
        self._live = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
