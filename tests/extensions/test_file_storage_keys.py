"""file_storage's keys, each against its default, with an exporter's persistent sending queue
(`sending_queue::storage`) kept by the extension, both built in-process: `directory`,
`create_directory`, `directory_permissions`, `fsync` and `max_size_mib`."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.exporters.helper import Exporter
from gateway.extensions.file_storage import FACTORY, Config, FileStorage
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
