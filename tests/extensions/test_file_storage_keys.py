"""file_storage's keys, each against its default, with an exporter's persistent sending queue
(`sending_queue::storage`) kept by the extension, both built in-process: `directory`,
`create_directory`, `directory_permissions`, `fsync`, `max_size_mib` and `timeout`."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.exporters.helper import Exporter
from gateway.extensions.file_storage import FACTORY, Config, FileStorage, queue_dirname
from gateway.telemetry import Telemetry
from pipelines.errors import RetryableError
from tests.exporters.recorder import Recorder, common, spans


class _Host:
    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage

    def extension(self, component_id: str) -> Any:
        assert component_id == "file_storage"
        return self.storage


def storage(body: dict[str, Any]) -> FileStorage:
    errors = Errors()
    cfg = decode(Config, body, "extensions::file_storage", errors)
    assert cfg is not None and not errors, errors.lines
    ext = FACTORY.create(Settings("file_storage", cfg, Telemetry(), None))  # type: ignore[arg-type]
    assert isinstance(ext, FileStorage)
    return ext


def queue_for(ext: FileStorage, pusher: Recorder, queue: dict[str, Any] | None = None) -> Exporter:
    cfg = common({"sending_queue": {"storage": "file_storage", **(queue or {})}})
    return Exporter(Settings("otlp/a", cfg, Telemetry(), _Host(ext)), pusher, cfg)


def hold(ext: FileStorage, requests: int, pad: int = 0, queue: dict[str, Any] | None = None) -> list[str]:
    """Queue `requests` while the backend holds them; what the queue answered to each."""
    async def run() -> list[str]:
        pusher = Recorder()
        pusher.gate = asyncio.Event()
        await ext.start()
        x = queue_for(ext, pusher, queue)
        await x.start()
        answers = []
        for i in range(requests):
            try:
                await x.consume(spans(10, f"r{i}", pad=pad))
                answers.append("ok")
            except RetryableError as exc:
                answers.append(str(exc))
        await x.drain(0)
        await x.shutdown()
        await ext.shutdown()
        return answers

    return asyncio.run(run())


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_directory_is_where_the_queue_files_are(tmp_path: Path) -> None:
    assert hold(storage({"directory": str(tmp_path)}), 3) == ["ok"] * 3
    segments = list((tmp_path / "exporter_otlp_a").glob("*.seg"))
    assert segments and b"r2-9" in b"".join(p.read_bytes() for p in segments)


def test_create_directory_creates_a_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    with pytest.raises(RuntimeError, match="does not exist"):
        asyncio.run(storage({"directory": str(missing)}).start())
    asyncio.run(storage({"directory": str(missing), "create_directory": True}).start())
    assert missing.is_dir()


@pytest.mark.usefixtures("umask")
def test_directory_permissions_is_the_mode_of_a_created_directory(tmp_path: Path) -> None:
    asyncio.run(storage({"directory": str(tmp_path / "a"), "create_directory": True}).start())
    asyncio.run(storage({"directory": str(tmp_path / "b"), "create_directory": True,
                         "directory_permissions": "0700"}).start())
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750  # the default
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o700


@pytest.mark.parametrize("fsync", [False, True])
def test_fsync_syncs_the_queue_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)  # as gateway.queue.persistent calls it
    assert hold(storage({"directory": str(tmp_path), "fsync": fsync}), 3) == ["ok"] * 3
    assert bool(calls) is fsync


def test_max_size_mib_bounds_the_disk_the_queues_use(tmp_path: Path) -> None:
    big = {"queue_size": 100_000}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert hold(storage({"directory": str(tmp_path / "a")}), 8, pad=20_000, queue=big) == ["ok"] * 8
    answers = hold(storage({"directory": str(tmp_path / "b"), "max_size_mib": 1}), 8, pad=20_000, queue=big)
    assert answers[:4] == ["ok"] * 4, "about 200 KB a request: four fit in 1 MiB"
    assert "file_storage is full" in answers[-1]


class _StoreLog(logging.Handler):
    """What the queue store logs (at info), and an event set once it says it waits for a lock."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.waiting = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if "is locked by another process" in record.getMessage():
            self.waiting.set()


def start_against_a_held_lock(directory: Path, body: dict[str, Any], release_when_waiting: bool) -> tuple[str, str]:
    """Start exporter otlp/a's persistent queue in `directory` while another open file holds the queue
    directory's lock (flock locks belong to an open file, so this conflicts as another process would);
    with `release_when_waiting`, let go once the store logs that it waits. What the start came to, and
    what the store logged."""
    queue_dir = directory / queue_dirname("otlp/a")
    queue_dir.mkdir(parents=True)
    holder = os.open(queue_dir / "lock", os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(holder, fcntl.LOCK_EX)
    logger = logging.getLogger("gateway.storage")

    async def run() -> tuple[str, str]:
        store_log = _StoreLog()
        logger.addHandler(store_log)
        level, logger.level = logger.level, logging.INFO
        ext = storage({"directory": str(directory), **body})
        await ext.start()
        x = queue_for(ext, Recorder())
        start = asyncio.create_task(x.start())
        try:
            if release_when_waiting:
                await store_log.waiting.wait()
                os.close(holder)
            await start
            outcome = "started"
        except RuntimeError as exc:
            outcome = str(exc)
        finally:
            logger.removeHandler(store_log)
            logger.level = level
            await x.shutdown()
            await ext.shutdown()
        return outcome, " ".join(store_log.messages)

    try:
        return asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        if not release_when_waiting:
            os.close(holder)


def test_timeout_is_how_long_a_start_waits_for_a_locked_queue_directory(tmp_path: Path) -> None:
    outcome, logged = start_against_a_held_lock(tmp_path / "a", {"timeout": "200ms"}, release_when_waiting=False)
    assert outcome == (f"queue directory {tmp_path / 'a' / 'exporter_otlp_a'} is in use by another process: "
                       "still locked after 0.2s (file_storage timeout)")
    assert logged.endswith("waiting up to 0.2s for it (file_storage timeout)")
    # The default, 1s: the holder lets go while the start waits, and it goes on.
    outcome, logged = start_against_a_held_lock(tmp_path / "b", {}, release_when_waiting=True)
    assert (outcome, logged.endswith("waiting up to 1s for it (file_storage timeout)")) == ("started", True)
    # 0, as in bbolt: no limit.
    outcome, logged = start_against_a_held_lock(tmp_path / "c", {"timeout": 0}, release_when_waiting=True)
    assert (outcome, logged.endswith("waiting with no limit for it (file_storage timeout)")) == ("started", True)
