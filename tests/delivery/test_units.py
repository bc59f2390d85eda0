"""In-process tests of the delivery layers: backoff and retry, the sending queue's batching, the disk
store's records (torn tails, acks, segments, the bound), and the config rules."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.load import ConfigError, load_text
from gateway.exporters.retry import Backoff, GaveUp, Interrupted, RetryConfig, RetrySender
from gateway.queue.persistent import DiskStore
from gateway.queue.sending import MemoryStore, SendingQueue
from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.errors import PermanentError, RetryableError
from pipelines.processors.batch import BatchPolicy
from pipelines.processors.memory_limiter import MIB, Config, Limits
from tests.delivery.load import request


def _batch(names: list[str], tenant: str | None = None) -> Batch:
    return Batch("traces", request(names).SerializeToString(), len(names), RequestContext(tenant))


def _names(data: bytes) -> list[str]:
    msg = otlp.parse("traces", data)
    return [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]


# ---------------------------------------------------------------- retry


def test_backoff_follows_the_collector_defaults() -> None:
    b = Backoff(RetryConfig(), random.Random(1))
    current = 5.0
    for _ in range(12):
        d = b.next_delay()
        assert current * 0.5 <= d <= current * 1.5
        current = min(current * 1.5, 30.0)


class _Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[float] = []

    async def push(self, batch: Batch) -> int | None:
        self.calls.append(time.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        return None


def test_server_delay_wins_and_permanent_is_not_retried() -> None:
    async def run() -> None:
        fast = RetryConfig(initial_interval=0.01, max_interval=0.01)
        flaky = _Flaky([RetryableError("throttled", delay=0.3), RetryableError("down")])
        await RetrySender("x", fast, asyncio.Event()).send(flaky.push, _batch(["a"]))
        assert flaky.calls[1] - flaky.calls[0] >= 0.3
        assert flaky.calls[2] - flaky.calls[1] < 0.3
        bad = _Flaky([PermanentError("bad data")])
        with pytest.raises(PermanentError):
            await RetrySender("x", fast, asyncio.Event()).send(bad.push, _batch(["a"]))
        assert len(bad.calls) == 1

    asyncio.run(run())


def test_max_elapsed_time_gives_up_and_stop_interrupts_the_sleep() -> None:
    async def run() -> None:
        cfg = RetryConfig(initial_interval=0.05, max_interval=0.05, max_elapsed_time=0.3)
        with pytest.raises(GaveUp):
            await RetrySender("x", cfg, asyncio.Event()).send(_Flaky([RetryableError("down")] * 100).push,
                                                              _batch(["a"]))
        stop = asyncio.Event()
        slow = RetryConfig(initial_interval=60.0)
        task = asyncio.ensure_future(RetrySender("x", slow, stop).send(_Flaky([RetryableError("d")]).push,
                                                                       _batch(["a"])))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        stop.set()
        with pytest.raises(Interrupted):
            await task
        assert time.monotonic() - t0 < 1.0

    asyncio.run(run())


# ---------------------------------------------------------------- queue batching


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([None, "a", "b"]), st.integers(1, 6)), min_size=1, max_size=30),
       st.integers(1, 15), st.integers(0, 8))
def test_batches_conserve_spans_never_mix_tenants_and_respect_bounds(
        requests: list[tuple[str | None, int]], size: int, extra: int) -> None:
    async def run() -> list[list[tuple[str | None, list[str]]]]:
        queue = SendingQueue(10_000, "requests", MemoryStore())
        policy = BatchPolicy(send_batch_size=size, send_batch_max_size=size + extra if extra else 0)
        for i, (tenant, n) in enumerate(requests):
            queue.put(_batch([f"{tenant}/{i}-{k}" for k in range(n)], tenant), policy)
        queue.draining = True
        out = []
        while (entries := await queue.take(policy)) is not None:
            out.append([(e.context.tenant, _names(queue.store.read(e))) for e in entries])
            if policy.send_batch_max_size and len(entries) > 1:
                assert sum(e.items for e in entries) <= policy.send_batch_max_size
            queue.done(entries)
        assert queue.used == 0
        return out

    batches = asyncio.run(run())
    total = 0
    for batch in batches:
        tenants = {t for t, _ in batch}
        assert len(tenants) == 1
        for t, names in batch:
            total += len(names)
            assert {n.split("/")[0] for n in names} == {str(t)}
    assert total == sum(n for _, n in requests)


def test_queue_counts_capacity_in_its_sizer_and_refuses_when_full() -> None:
    queue = SendingQueue(25, "items", MemoryStore())
    policy = BatchPolicy()
    queue.put(_batch([str(i) for i in range(20)]), policy)
    assert queue.refusal(_batch(["a"] * 5)) is None
    assert "full" in (queue.refusal(_batch(["a"] * 6)) or "")
    with pytest.raises(PermanentError):
        queue.refusal(_batch(["a"] * 26))


# ---------------------------------------------------------------- disk store


class _Budget:
    def __init__(self, limit: int = 1 << 30) -> None:
        self.limit = limit
        self.used = 0

    def refusal(self, nbytes: int) -> str | None:
        return "full" if self.used + nbytes > self.limit else None

    def add(self, nbytes: int) -> None:
        self.used += nbytes


def _store(path: Path, budget: _Budget | None = None, segment_bytes: int = 1 << 20) -> DiskStore:
    store = DiskStore(path, fsync=False, budget=budget or _Budget(), segment_bytes=segment_bytes)
    store.open()
    return store


def test_disk_store_survives_a_torn_tail_and_forgets_what_was_acked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    queue = SendingQueue(100, "requests", store)
    policy = BatchPolicy()
    entries = [queue.put(_batch([f"s{i}"], tenant="t"), policy) for i in range(5)]
    queue.inflight.update(entries[:2])
    queue.done(entries[:2])
    store.close()
    seg = next(tmp_path.glob("*.seg"))
    size = seg.stat().st_size
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00")  # a header cut short
    again = _store(tmp_path)
    loaded = again.load()
    assert [e.seq for e in loaded] == [3, 4, 5]
    assert [_names(again.read(e)) for e in loaded] == [["s2"], ["s3"], ["s4"]]
    assert loaded[0].context.tenant == "t"
    assert seg.stat().st_size == size, "the torn tail was truncated away"
    # A flipped bit in the middle ends the segment there: the records before it survive.
    again.close()
    blob = bytearray(seg.read_bytes())
    blob[size - 3] ^= 0xFF
    seg.write_bytes(bytes(blob))
    third = _store(tmp_path)
    assert [e.seq for e in third.load()] == [3, 4]
    third.close()


def test_disk_store_deletes_acked_segments_and_honours_its_budget(tmp_path: Path) -> None:
    budget = _Budget(limit=64 * 1024)
    store = _store(tmp_path, budget, segment_bytes=4096)
    queue = SendingQueue(10_000, "requests", store)
    policy = BatchPolicy()
    puts = []
    while queue.refusal(b := _batch([f"x{len(puts)}"] * 10)) is None:
        puts.append(queue.put(b, policy))
    assert 0 < budget.used <= budget.limit
    assert len(list(tmp_path.glob("*.seg"))) > 3
    queue.inflight.update(puts)
    queue.done(puts)
    assert len(list(tmp_path.glob("*.seg"))) == 1, "only the live segment is left"
    assert budget.used < 4096 + 1024
    store.close()
    holder = _store(tmp_path)
    with pytest.raises(RuntimeError, match="in use"):
        _store(tmp_path)
    holder.close()


# ---------------------------------------------------------------- config


def test_memory_limiter_limits_and_validation() -> None:
    assert Limits.of(Config(check_interval=1, limit_mib=100), None) == Limits(100 * MIB, 80 * MIB)
    assert Limits.of(Config(check_interval=1, limit_mib=100, spike_limit_mib=10), None).soft == 90 * MIB
    assert Limits.of(Config(check_interval=1, limit_percentage=50, spike_limit_percentage=10), 1000).soft == 400
    assert Config(limit_mib=1).validate() == ["'check_interval' must be greater than zero"]
    assert Config(check_interval=1).validate() == ["'limit_mib' or 'limit_percentage' must be greater than zero"]
    assert Config(check_interval=1, limit_mib=5, spike_limit_mib=5).validate() == [
        "'spike_limit_mib' must be smaller than 'limit_mib'"]
    assert "less than or equal to hundred" in Config(check_interval=1, limit_percentage=120).validate()[0]


_CONFIG = """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:4317"}}}}
exporters:
  otlp/a: {endpoint: "127.0.0.1:1", sending_queue: {storage: STORAGE}}
extensions:
  file_storage/q: {directory: /tmp}
service:
  extensions: [EXTENSIONS]
  pipelines: {traces: {receivers: [otlp], exporters: [otlp/a]}}
"""


@pytest.mark.parametrize(("storage", "extensions", "message"), [
    ("file_storage/q", "file_storage/q", None),
    ("file_storage/nope", "file_storage/q", "references extension 'file_storage/nope' which is not configured"),
    ("file_storage/q", "", "references extension 'file_storage/q' which is not enabled in service::extensions"),
    ("health_check", "", "references 'health_check', which is not a file_storage extension"),
])
def test_sending_queue_storage_must_name_an_enabled_file_storage(storage: str, extensions: str,
                                                                 message: str | None) -> None:
    text = _CONFIG.replace("STORAGE", storage).replace("EXTENSIONS", extensions)
    if message is None:
        load_text(text)
        return
    with pytest.raises(ConfigError) as err:
        load_text(text)
    assert f"exporters::otlp/a::sending_queue::storage: {message}" in err.value.errors


# ---------------------------------------------------------------- fan-out admission


class _Branch:
    def __init__(self, full: bool) -> None:
        self.full = full
        self.got: list[Batch] = []

    def admit(self, batch: Batch) -> None:
        if self.full:
            raise RetryableError("full", 1.0)

    async def consume(self, batch: Batch) -> None:
        self.admit(batch)
        self.got.append(batch)


def test_a_fanout_refuses_as_a_whole_when_one_branch_cannot_take_the_request() -> None:
    from gateway.fanout import Fanout

    async def run() -> None:
        ok, full = _Branch(False), _Branch(True)
        with pytest.raises(RetryableError):
            await Fanout([ok, full]).consume(_batch(["a"]))
        assert not ok.got, "the branch with room did not take a request the client will send again"
        full.full = False
        await Fanout([ok, full]).consume(_batch(["a"]))
        assert len(ok.got) == len(full.got) == 1

    asyncio.run(run())


class _Queue:
    """A branch that holds at most `room` requests, answering admit and consume from what it holds."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.got: list[Batch] = []

    def admit(self, batch: Batch) -> None:
        if len(self.got) >= self.room:
            raise RetryableError("full", 1.0)

    async def consume(self, batch: Batch) -> None:
        self.admit(batch)
        self.got.append(batch)


def test_concurrent_requests_cannot_fill_a_queue_between_admit_and_put() -> None:
    """Two requests in flight at once through two fan-outs sharing a queue with room for one: the
    second is refused as a whole, and the other branch never got it (its retry duplicates nothing)."""
    from gateway.fanout import Fanout

    async def run() -> list[BaseException | None]:
        shared, a, b = _Queue(1), _Queue(10), _Queue(10)
        first, second = Fanout([a, shared]), Fanout([b, shared])
        results = await asyncio.gather(first.consume(_batch(["r1"])), second.consume(_batch(["r2"])),
                                       return_exceptions=True)
        assert [len(q.got) for q in (a, b, shared)] == [1, 0, 1]
        return results

    first_result, second_result = asyncio.run(run())
    assert first_result is None
    assert isinstance(second_result, RetryableError)
