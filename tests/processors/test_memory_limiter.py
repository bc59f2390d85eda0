"""The `memory_limiter` processor's keys, each against its default: the stage built by its factory,
with the limiter's memory reading replaced by a chosen figure (and the total memory, for the
percentages), refuses or admits; `check_interval` paces the readings and the `min_gc_interval_*`
keys the garbage collections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.processors import memory_limiter as ml
from gateway.telemetry import Telemetry
from pipelines.errors import RetryableError
from pipelines.processors.memory_limiter import MIB, Config
from tests.exporters.recorder import spans


class _Next:
    def admit(self, batch: Any) -> None:
        pass

    async def consume(self, batch: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _fresh_limiters() -> Iterator[None]:
    ml._LIMITERS.clear()
    yield
    ml._LIMITERS.clear()


def config(body: dict[str, Any]) -> Config:
    errors = Errors()
    cfg = decode(Config, {"check_interval": "1s", **body}, "processors::memory_limiter", errors)
    assert cfg is not None and not errors, errors.lines
    return cfg


def admits(body: dict[str, Any], rss_mib: float, total_mib: int | None = None,
           monkeypatch: pytest.MonkeyPatch | None = None) -> bool:
    """Whether the stage takes a request while the process uses `rss_mib` MiB."""
    if total_mib is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(ml, "total_memory", lambda: total_mib * MIB)
    cfg = config(body)
    ml._LIMITERS[cfg] = ml.MemoryLimiter(cfg, read=lambda: int(rss_mib * MIB))
    stage = ml.FACTORY.create(Settings("memory_limiter", cfg, Telemetry(), None), _Next(), "traces")  # type: ignore[arg-type]

    async def run() -> bool:
        await stage.start()
        try:
            stage.admit(spans(1))
        except RetryableError:
            return False
        finally:
            await stage.shutdown()
        return True

    return asyncio.run(run())


def test_limit_mib_sets_where_refusing_starts() -> None:
    # The soft limit is limit_mib less the spike (20% of it by default).
    assert admits({"limit_mib": 200}, 150)
    assert not admits({"limit_mib": 100}, 150)
    assert not admits({"limit_mib": 100}, 85)
    assert admits({"limit_mib": 100}, 79)


def test_spike_limit_mib_replaces_the_default_fifth() -> None:
    assert not admits({"limit_mib": 100}, 85)
    assert admits({"limit_mib": 100, "spike_limit_mib": 10}, 85)
    assert not admits({"limit_mib": 100, "spike_limit_mib": 10}, 91)


def test_limit_percentage_and_spike_limit_percentage_are_of_the_total_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10% of 1000 MiB: a hard limit of 100 MiB, soft at 80 MiB with the default spike.
    assert admits({"limit_percentage": 10}, 60, 1000, monkeypatch)
    assert not admits({"limit_percentage": 10}, 85, 1000, monkeypatch)
    assert admits({"limit_percentage": 20}, 85, 1000, monkeypatch)
    # A spike of 5% of the total (50 MiB) puts the soft limit at 50 MiB.
    assert not admits({"limit_percentage": 10, "spike_limit_percentage": 5}, 60, 1000, monkeypatch)


def _readings_and_collections(body: dict[str, Any], rss_mib: int, seconds: float,
                              monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    reads: list[int] = []
    collections: list[int] = []

    def collect(*args: Any) -> int:
        collections.append(1)
        return 0

    monkeypatch.setattr(gc, "collect", collect)  # as the limiter calls it
    cfg = config(body)

    def read() -> int:
        reads.append(1)
        return rss_mib * MIB

    limiter = ml.MemoryLimiter(cfg, read=read)

    async def run() -> None:
        limiter.acquire()
        await asyncio.sleep(seconds)
        await limiter.release()

    asyncio.run(run())
    return len(reads), len(collections)


def test_check_interval_paces_the_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, _ = _readings_and_collections({"limit_mib": 100, "check_interval": "10ms"}, 10, 0.3, monkeypatch)
    slow, _ = _readings_and_collections({"limit_mib": 100, "check_interval": "10s"}, 10, 0.3, monkeypatch)
    assert fast >= 10 and slow <= 2  # at start, then every check_interval


def test_min_gc_interval_when_soft_limited_spaces_the_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    soft = {"limit_mib": 100, "check_interval": "10ms"}  # 85 MiB: above the soft limit, under the hard one
    _, by_default = _readings_and_collections(soft, 85, 0.3, monkeypatch)
    _, every_check = _readings_and_collections({**soft, "min_gc_interval_when_soft_limited": "0s"}, 85, 0.3,
                                               monkeypatch)
    assert by_default == 1, "the default 10s: one collection"
    assert every_check >= 10


def test_min_gc_interval_when_hard_limited_spaces_the_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = {"limit_mib": 100, "check_interval": "10ms"}  # 150 MiB: above the hard limit
    _, by_default = _readings_and_collections(hard, 150, 0.3, monkeypatch)
    _, spaced = _readings_and_collections({**hard, "min_gc_interval_when_hard_limited": "10s"}, 150, 0.3,
                                          monkeypatch)
    assert by_default >= 10, "the default 0s: a collection at every check"
    assert spaced == 1
