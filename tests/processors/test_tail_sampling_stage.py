"""The tail sampler's stage and disk store, without a process: fsync off the event loop and an answer
only after it; kept traces at shutdown offered again until the deadline, and what is left counted."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.processors import tail_sampling_store
from gateway.processors.tail_sampling_store import PendingStore
from pipelines.batch import EMPTY_CONTEXT
from pipelines.tail_sampling import policies as pol
from tests.processors.test_tail_sampling import tid, trace


class _Storage:
    def __init__(self) -> None:
        self.config = SimpleNamespace(fsync=True)

    def refusal(self, nbytes: int) -> str | None:
        return None

    def add(self, nbytes: int) -> None:
        pass


def _all_durable(directory: Path, synced: list[tuple[int, int, int]]) -> None:
    durable = {ino: size for _, ino, size in synced}
    for seg in sorted(directory.glob("*.tsl")):
        st = seg.stat()
        assert durable.get(st.st_ino) == st.st_size, f"{seg.name} answered before it was durable"


def test_store_fsyncs_off_the_loop_and_sync_returns_once_every_record_is_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    synced: list[tuple[int, int, int]] = []  # (thread, inode, size when synced)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((threading.get_ident(), st.st_ino, st.st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(tail_sampling_store, "SEGMENT_BYTES", 1)  # every record rotates to a new segment
    store = PendingStore(tmp_path, _Storage())
    store.lock()

    async def run() -> None:
        # Two requests in flight: the second rotates the first's segment out while the first waits for
        # its fsync. Each answer comes only once its record is durable.
        store.append(trace(1), 1.0)
        first = asyncio.ensure_future(store.sync())
        await asyncio.sleep(0)
        store.append(trace(2), 2.0)
        await asyncio.gather(first, store.sync())
        _all_durable(tmp_path, synced)
        assert all(thread != loop_thread for thread, _, _ in synced), "fsync ran on the event loop"
        store.decided([(EMPTY_CONTEXT, tid(1)[1], pol.SAMPLED)])
        await store.close()  # the last records made durable, off the loop too

    asyncio.run(run())
    assert synced and all(thread != loop_thread for thread, _, _ in synced), "fsync ran on the event loop"
