"""The `batch` processor's keys as the gateway applies them: its config becomes the batching policy
(`FACTORY.batching`) of the exporters downstream, whose queue consumers form the batches. Each key
against its default, on an exporter built in-process around a recording pusher."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.processors import batch as batch_processor
from gateway.telemetry import Telemetry
from pipelines.batch import Batch
from pipelines.processors.batch import BatchPolicy, Config
from tests.exporters.recorder import Recorder, exporter, spans


def policy(config: dict[str, Any]) -> BatchPolicy:
    errors = Errors()
    cfg = decode(Config, config, "processors::batch", errors)
    assert cfg is not None and not errors, errors.lines
    factory_batching = batch_processor.FACTORY.batching
    assert factory_batching is not None
    return factory_batching(Settings("batch", cfg, Telemetry(), None))  # type: ignore[arg-type]


def run(config: dict[str, Any], requests: list[Batch], wait: float) -> tuple[list[int], Recorder]:
    """Queue `requests` behind an exporter batching by `config`; the batch sizes sent within `wait` seconds."""
    async def go() -> tuple[list[int], Recorder]:
        pusher = Recorder()
        x = exporter({"sending_queue": {"num_consumers": 1}}, pusher, policy(config))
        await x.start()
        for r in requests:
            await x.consume(r)
        for _ in range(int(wait / 0.01)):
            if sum(pusher.sizes()) >= sum(r.items for r in requests):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sent = pusher.sizes()
        await x.shutdown()
        return sent, pusher

    return asyncio.run(go())


def test_send_batch_size_sends_once_that_many_items_wait() -> None:
    ten = [spans(1, f"r{i}") for i in range(10)]
    # The default (8192) waits for the 5s timer; 5 sends two batches at once.
    assert run({"timeout": "5s"}, ten, 0.3)[0] == []
    assert run({"timeout": "5s", "send_batch_size": 5}, ten, 2)[0] == [5, 5]


def test_timeout_sends_what_waits_when_it_passes() -> None:
    three = [spans(1, f"r{i}") for i in range(3)]
    start = time.monotonic()
    assert run({"timeout": "100ms"}, three, 3)[0] == [3]
    assert time.monotonic() - start < 2
    assert run({"timeout": "10s"}, three, 0.5)[0] == [], "nothing sent before the timeout"


def test_send_batch_max_size_cuts_a_request_larger_than_it() -> None:
    one = [spans(10)]
    assert run({"timeout": "0s", "send_batch_size": 4}, one, 2)[0] == [10]
    sizes, pusher = run({"timeout": "0s", "send_batch_size": 4, "send_batch_max_size": 4}, one, 2)
    assert sizes == [4, 4, 2]
    assert pusher.names() == [f"s-{i}" for i in range(10)]


def test_send_batch_max_bytes_keeps_every_batch_under_it() -> None:
    big = [spans(50, pad=10_000)]  # about 500 KB in one request
    sizes, pusher = run({"timeout": "0s"}, big, 2)
    assert sizes == [50], "under the default bound of almost 4 MiB"
    sizes, pusher = run({"timeout": "0s", "send_batch_max_bytes": 100_000}, big, 2)
    assert len(sizes) >= 5 and sum(sizes) == 50
    assert all(b.nbytes() <= 100_000 for b in pusher.batches)


@pytest.mark.parametrize(("metadata_keys", "teams"), [((), [["a", "a", "b", "b"]]),
                                                      (("X-Team",), [["a", "a"], ["b", "b"]])])
def test_metadata_keys_keep_batches_of_different_values_apart(metadata_keys: tuple[str, ...],
                                                              teams: list[list[str]]) -> None:
    requests = [spans(1, team, metadata={"x-team": (team,)}) for team in ("a", "b", "a", "b")]
    config: dict[str, Any] = {"timeout": "100ms", "send_batch_size": 100}
    if metadata_keys:
        config["metadata_keys"] = list(metadata_keys)
    _, pusher = run(config, requests, 3)
    got = []
    for b in pusher.batches:
        one = Recorder()
        one.batches = [b]
        got.append(sorted(n.split("-")[0] for n in one.names()))
    assert sorted(got) == teams
