"""The exporter helper's keys, each against its default, on an exporter built in-process around a
recording pusher: `sending_queue` (enabled, num_consumers, sizer, blocking, wait_for_result) and
`retry_on_failure` (enabled, and the backoff: initial_interval, multiplier, max_interval,
randomization_factor)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.exporters import retry
from gateway.exporters.retry import RetrySender
from pipelines.errors import PermanentError, RetryableError
from pipelines.processors.batch import BatchPolicy
from tests.exporters.recorder import Recorder, common, exporter, spans

# One request per batch: the consumers do not merge what is queued.
ONE_BY_ONE = BatchPolicy(send_batch_size=1, send_batch_max_size=1)


async def _settle(until: Callable[[], bool] = lambda: False, within: float = 0.1) -> None:
    """Let the consumers run: until `until()` holds, or for `within` seconds."""
    for _ in range(int(within / 0.005)):
        if until():
            return
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("enabled", [True, False])
def test_sending_queue_enabled_false_sends_before_answering_and_hands_back_the_refusal(enabled: bool) -> None:
    async def run() -> tuple[BaseException | None, int]:
        pusher = Recorder()
        pusher.failures = [PermanentError("bad data")]
        x = exporter({"sending_queue": {"enabled": enabled}, "retry_on_failure": {"enabled": False}}, pusher)
        await x.start()
        try:
            await x.consume(spans(2))
        except PermanentError as exc:
            return exc, len(pusher.calls)
        finally:
            await x.shutdown()
        return None, len(pusher.calls)

    error, calls = asyncio.run(run())
    if enabled:
        # Acknowledged once queued: the backend's refusal comes later and is counted, not answered.
        assert error is None
    else:
        # No queue: the request is sent before the answer, and the backend's refusal is the answer.
        assert isinstance(error, PermanentError) and calls == 1


@pytest.mark.parametrize(("num_consumers", "peak"), [(None, 5), (1, 1), (3, 3)])
def test_num_consumers_is_how_many_sends_run_at_once(num_consumers: int | None, peak: int) -> None:
    async def run() -> int:
        pusher = Recorder()
        pusher.gate = asyncio.Event()
        queue: dict[str, Any] = {} if num_consumers is None else {"num_consumers": num_consumers}
        x = exporter({"sending_queue": queue}, pusher, ONE_BY_ONE)
        await x.start()
        for i in range(5):
            await x.consume(spans(1, f"r{i}"))
        await _settle(lambda: pusher.peak >= peak, within=5)
        await _settle()
        seen = pusher.peak
        pusher.gate.set()
        await x.shutdown()
        assert len(pusher.batches) == 5
        return seen

    # The default is 10 consumers: all five requests go out at once.
    assert asyncio.run(run()) == peak


@pytest.mark.parametrize(("sizer", "accepted"), [(None, 2), ("items", 1)])
def test_sizer_counts_queue_size_in_requests_or_items(sizer: str | None, accepted: int) -> None:
    async def run() -> int:
        pusher = Recorder()
        pusher.gate = asyncio.Event()
        queue: dict[str, Any] = {"queue_size": 10, "num_consumers": 1}
        if sizer:
            queue["sizer"] = sizer
        x = exporter({"sending_queue": queue}, pusher, ONE_BY_ONE)
        await x.start()
        taken = 0
        for n in (6, 6):
            try:
                await x.consume(spans(n))
                taken += 1
            except RetryableError as exc:
                assert "sending queue is full (6/10 items)" in str(exc)
        pusher.gate.set()
        await x.shutdown()
        return taken

    # queue_size 10: two requests of 6 spans fit in 10 requests, not in 10 items.
    assert asyncio.run(run()) == accepted


@pytest.mark.parametrize("blocking", [False, True])
def test_blocking_waits_for_room_instead_of_refusing(blocking: bool) -> None:
    async def run() -> None:
        pusher = Recorder()
        pusher.gate = asyncio.Event()
        x = exporter({"sending_queue": {"queue_size": 1, "num_consumers": 1, "blocking": blocking}}, pusher,
                     ONE_BY_ONE)
        await x.start()
        await x.consume(spans(1, "first"))  # held by the backend: the queue is full
        second = asyncio.ensure_future(x.consume(spans(1, "second")))
        await _settle()
        if blocking:
            assert not second.done(), "a blocking queue waits for room"
            pusher.gate.set()
            await asyncio.wait_for(second, 5)
        else:
            assert second.done() and isinstance(second.exception(), RetryableError)
            pusher.gate.set()
        await x.shutdown()
        assert pusher.names() == (["first-0", "second-0"] if blocking else ["first-0"])

    asyncio.run(run())


@pytest.mark.parametrize("wait_for_result", [False, True])
def test_wait_for_result_answers_once_the_backend_took_the_request(wait_for_result: bool) -> None:
    async def run() -> None:
        pusher = Recorder()
        pusher.gate = asyncio.Event()
        x = exporter({"sending_queue": {"wait_for_result": wait_for_result}}, pusher)
        await x.start()
        answer = asyncio.ensure_future(x.consume(spans(1)))
        await _settle()
        assert answer.done() is not wait_for_result
        pusher.gate.set()
        await asyncio.wait_for(answer, 5)
        assert len(pusher.batches) == 1
        await x.shutdown()

    asyncio.run(run())


# ---------------------------------------------------------------- retry_on_failure


@pytest.mark.parametrize("enabled", [True, False])
def test_retry_on_failure_enabled_false_sends_once(enabled: bool) -> None:
    async def run() -> tuple[BaseException | None, int]:
        pusher = Recorder()
        pusher.failures = [RetryableError("backend down")]
        retry_cfg = {"enabled": enabled, "initial_interval": "10ms"}
        x = exporter({"sending_queue": {"enabled": False}, "retry_on_failure": retry_cfg}, pusher)
        await x.start()
        try:
            await x.consume(spans(1))
        except RetryableError as exc:
            return exc, len(pusher.calls)
        finally:
            await x.shutdown()
        return None, len(pusher.calls)

    error, calls = asyncio.run(run())
    assert (error is None, calls) == ((True, 2) if enabled else (False, 1))


def _delays(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], failures: int = 6) -> list[float]:
    """The waits the retry sender takes between attempts, for a backend failing `failures` times."""
    waits: list[float] = []

    async def no_sleep(stop: asyncio.Event, delay: float) -> bool:
        waits.append(delay)
        return False

    monkeypatch.setattr(retry, "sleep_unless", no_sleep)

    async def run() -> None:
        pusher = Recorder()
        pusher.failures = [RetryableError("down") for _ in range(failures)]
        await RetrySender("x", common({"retry_on_failure": config}).retry_on_failure, asyncio.Event()).send(
            pusher.push, spans(1))

    asyncio.run(run())
    return waits


def test_initial_interval_multiplier_and_max_interval_shape_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = {"randomization_factor": 0}
    # The defaults: 5s, times 1.5, up to 30s.
    assert _delays(monkeypatch, exact) == [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0]
    assert _delays(monkeypatch, {**exact, "initial_interval": "1s"}) == [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375]
    assert _delays(monkeypatch, {**exact, "initial_interval": "1s", "multiplier": 2}) == [1, 2, 4, 8, 16, 30]
    assert _delays(monkeypatch, {**exact, "initial_interval": "1s", "multiplier": 2, "max_interval": "5s"}) == [
        1, 2, 4, 5, 5, 5]


def test_randomization_factor_spreads_each_wait_around_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = {"initial_interval": "1s", "multiplier": 1, "max_elapsed_time": 0}
    assert set(_delays(monkeypatch, {**flat, "randomization_factor": 0}, 50)) == {1.0}
    spread = _delays(monkeypatch, {**flat, "randomization_factor": 0.2}, 50)
    assert all(0.8 <= d <= 1.2 for d in spread) and len(set(spread)) > 40
    wide = _delays(monkeypatch, flat, 200)  # the default, 0.5
    assert all(0.5 <= d <= 1.5 for d in wide) and min(wide) < 0.8 and max(wide) > 1.2
