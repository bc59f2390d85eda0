"""The joint after a batch processor joins the requests of one event-loop turn, so the processors after
it run once per group: same tenant and metadata only, within send_batch_size and send_batch_max_bytes;
each request is answered when its group is held, or refused with it; a lone request passes as it came."""

from __future__ import annotations

import asyncio

import pytest

from gateway.join import RequestJoiner
from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.errors import RetryableError
from tests.delivery.load import request


class _Recorder:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.batches: list[Batch] = []
        self.fail = fail

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail


def _stage(rec: _Recorder, send_batch_size: int = 8192, send_batch_max_bytes: int = 4 << 20) -> RequestJoiner:
    return RequestJoiner("batch", rec, send_batch_size, send_batch_max_bytes)


def _batch(names: list[str], tenant: str | None = None, metadata: dict[str, tuple[str, ...]] | None = None) -> Batch:
    data = request(names).SerializeToString()
    items, ids = otlp.check("traces", data)
    return Batch("traces", data, items, RequestContext(tenant, metadata or {}), ids=ids)


def _names(batch: Batch) -> list[str]:
    msg = otlp.parse("traces", batch.data())
    return [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_requests_of_one_turn_are_joined_per_tenant_and_metadata() -> None:
    rec = _Recorder()
    stage = _stage(rec)
    requests = [_batch([f"a{i}"], "acme") for i in range(5)] + [_batch([f"b{i}"], "beta") for i in range(3)]
    requests.append(_batch(["m0"], "acme", {"x-env": ("prod",)}))

    async def run() -> None:
        await asyncio.gather(*(stage.consume(b) for b in requests))

    asyncio.run(run())
    assert sorted(sorted(_names(b)) for b in rec.batches) == [
        ["a0", "a1", "a2", "a3", "a4"], ["b0", "b1", "b2"], ["m0"]]
    joined = next(b for b in rec.batches if b.items == 5)
    assert joined.context.tenant == "acme"
    # What the receiver's check learnt holds for the joined bytes: the sampler's fast path stays on.
    assert joined.ids is not None and joined.ids.ids_first and joined.ids.plain_states


def test_groups_stay_within_send_batch_size_and_a_lone_request_passes_unchanged() -> None:
    rec = _Recorder()
    stage = _stage(rec, send_batch_size=4)
    requests = [_batch([f"r{i}-{k}" for k in range(2)]) for i in range(5)]

    async def run() -> None:
        await asyncio.gather(*(stage.consume(b) for b in requests))
        await stage.consume(lone := _batch(["alone"]))
        assert rec.batches[-1] is lone

    asyncio.run(run())
    assert sorted(b.items for b in rec.batches[:3]) == [2, 4, 4] and rec.batches[3].items == 1
    assert sorted(n for b in rec.batches for n in _names(b)) == sorted(
        [f"r{i}-{k}" for i in range(5) for k in range(2)] + ["alone"])


def test_a_refusal_downstream_refuses_every_request_of_the_group() -> None:
    rec = _Recorder(fail=RetryableError("queue full", 1.0))
    stage = _stage(rec)

    async def run() -> list[BaseException | None]:
        return await asyncio.gather(*(stage.consume(_batch([f"x{i}"])) for i in range(4)), return_exceptions=True)

    results = asyncio.run(run())
    assert len(rec.batches) == 1 and rec.batches[0].items == 4
    assert all(isinstance(r, RetryableError) for r in results)


def test_requests_in_different_turns_are_not_held_for_each_other() -> None:
    rec = _Recorder()
    stage = _stage(rec)

    async def run() -> None:
        for i in range(3):
            await stage.consume(_batch([f"s{i}"]))

    asyncio.run(run())
    assert [b.items for b in rec.batches] == [1, 1, 1]


@pytest.mark.parametrize("max_bytes", [1, 10_000])
def test_send_batch_max_bytes_bounds_a_group(max_bytes: int) -> None:
    rec = _Recorder()
    stage = _stage(rec, send_batch_max_bytes=max_bytes)

    async def run() -> None:
        await asyncio.gather(*(stage.consume(_batch([f"y{i}"])) for i in range(6)))

    asyncio.run(run())
    assert sum(b.items for b in rec.batches) == 6
    assert all(b.nbytes() <= max_bytes or b.items == 1 for b in rec.batches)
    assert len(rec.batches) == (6 if max_bytes == 1 else 1)


def test_a_cancelled_member_does_not_cancel_the_others_answer() -> None:
    """A follower whose client went away (its task cancelled) leaves the group alone; a leader cancelled
    before it passed the group on still gets the followers their answer. Every span is consumed once."""
    rec = _Recorder()
    stage = _stage(rec)

    async def run() -> list[str]:
        tasks = [asyncio.ensure_future(stage.consume(_batch([f"c{i}"]))) for i in range(4)]
        await asyncio.sleep(0)  # all four have joined one group; the first leads
        tasks[2].cancel()  # a follower
        tasks[0].cancel()  # the leader, while it yields its turn
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return ["cancelled" if isinstance(r, asyncio.CancelledError) else "ok" if r is None else repr(r)
                for r in results]

    assert asyncio.run(run()) == ["cancelled", "ok", "cancelled", "ok"]
    assert sorted(n for b in rec.batches for n in _names(b)) == ["c0", "c1", "c2", "c3"]
