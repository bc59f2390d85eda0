"""The tail sampler's stage and disk store, without a process: fsync off the event loop and an answer
only after it; kept traces at shutdown offered again until the deadline, and what is left counted."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.component import Settings
from gateway.processors import tail_sampling_store
from gateway.processors.tail_sampling import TailSamplingStage
from gateway.processors.tail_sampling_store import PendingStore
from gateway.telemetry import Telemetry
from pipelines.batch import EMPTY_CONTEXT, Batch, RequestContext
from pipelines.errors import RetryableError
from pipelines.tail_sampling import policies as pol
from tests.processors.build import batch_of
from tests.processors.build import span_request as _span_request
from tests.processors.test_tail_sampling import config, tid, trace


def trace_request(spans: int) -> object:
    """`spans` spans of `spans` traces (span_request gives each its own trace id)."""
    return _span_request([{} for _ in range(spans)])


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


class _Refusing:
    """A next consumer that refuses (retryable) its first `refusals` requests, then takes them."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.got: list[Batch] = []

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise RetryableError("queue full", 1.0)
        self.got.append(batch)


def _stage(next_consumer: _Refusing) -> tuple[TailSamplingStage, Telemetry]:
    telemetry = Telemetry()
    cfg = config(decision_wait="30s")
    return TailSamplingStage(Settings("tail_sampling", cfg, telemetry, SimpleNamespace()), next_consumer), telemetry


def _dropped(telemetry: Telemetry) -> float:
    value = telemetry.registry.get_sample_value("otelcol_processor_dropped_spans_total",
                                                {"processor": "tail_sampling"})
    return value or 0.0


def test_kept_traces_refused_at_shutdown_are_offered_again_until_taken() -> None:
    downstream = _Refusing(refusals=3)
    stage, telemetry = _stage(downstream)

    async def run() -> None:
        await stage.start()
        await stage.consume(batch_of(trace_request(5)))
        await stage.shutdown()  # decides the pending traces; the next consumer refuses three times

    asyncio.run(run())
    assert sum(b.items for b in downstream.got) == 5 and _dropped(telemetry) == 0


def test_kept_traces_still_refused_at_the_shutdown_deadline_are_counted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    downstream = _Refusing(refusals=1 << 30)
    stage, telemetry = _stage(downstream)

    async def run() -> None:
        await stage.start()
        await stage.consume(batch_of(trace_request(5)))
        with pytest.raises(TimeoutError):  # the service's deadline, as Service._stop_one gives it
            await asyncio.wait_for(stage.shutdown(), 0.3)

    asyncio.run(run())
    assert not downstream.got and _dropped(telemetry) == 5
    assert any(r.levelname == "WARNING" and "5 spans" in r.getMessage() and "dropped" in r.getMessage()
               for r in caplog.records)


def test_storage_refuses_to_start_when_it_would_write_a_credential_header(tmp_path: Path) -> None:
    """`validate` refuses it with the config path; a service built without it refuses at start."""
    host = SimpleNamespace(extension=lambda _: SimpleNamespace(config=SimpleNamespace(directory=str(tmp_path),
                                                                                      fsync=False),
                                                               refusal=lambda n: None, add=lambda n: None))
    stage = TailSamplingStage(Settings("tail_sampling", config(storage="file_storage"), Telemetry(), host),
                              _Refusing(0))
    stage.metadata_keys = ("authorization",)
    with pytest.raises(ValueError, match=r"'authorization'.*may carry credentials"):
        asyncio.run(stage.start())
    assert not list(tmp_path.iterdir())


def test_a_kept_trace_goes_on_as_one_batch_whatever_per_request_headers_and_holds_no_credentials() -> None:
    """Each held piece keeps its identity and only the metadata downstream batches by or reads: requests
    of one trace with different user-agents leave as one batch, and no Authorization is held."""
    downstream = _Refusing(0)
    now = [1000.0]
    stage = TailSamplingStage(Settings("tail_sampling", config(decision_wait="1s"), Telemetry(), SimpleNamespace()),
                              downstream, clock=lambda: now[0])
    stage.metadata_keys, stage.read_keys = ("x-team",), ("x-out",)
    tid = (7).to_bytes(16, "big")

    def request(agent: str, length: str) -> Batch:
        metadata = {"authorization": ("Bearer secret",), "user-agent": (agent,), "content-length": (length,),
                    "x-team": ("a",), "x-out": ("o",)}
        return batch_of(_span_request([{"trace_id": tid}]), context=RequestContext("t1", metadata))

    async def run() -> None:
        await stage.consume(request("sdk/1", "100"))
        await stage.consume(request("sdk/2", "200"))
        held = [p.context for t in stage.engine.pending.values() for p in t.pieces]
        assert len(held) == 2
        assert all(c.metadata == {"x-team": ("a",), "x-out": ("o",)} and c.tenant == "t1" for c in held)
        now[0] += 2
        await stage.decide_due()

    asyncio.run(run())
    assert [(b.items, dict(b.context.metadata)) for b in downstream.got] == [(2, {"x-team": ("a",), "x-out": ("o",)})]
