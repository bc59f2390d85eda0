"""The `file_storage` extension: where persistent sending queues keep their data.

The Collector's keys (`directory`, `fsync`, `create_directory`, `timeout`, `compaction`, ...) plus a
bound of our own, `max_size_mib`, on the disk all its queues may use together: reaching it (or a full
disk) refuses new data with a retryable error and never drops what is stored. Each exporter's queue
lives in its own subdirectory, `exporter_<type>_<name>`, locked against a second process: a start
waits up to `timeout` (0: with no limit) for another holder to let go, as bbolt's Open does in the Collector.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.component import ExtensionFactory, Settings
from gateway.queue.persistent import DiskStore
from pipelines.config_types import Duration, unsupported

log = logging.getLogger("gateway.storage")

MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    directory: str = "/var/lib/otelcol/file_storage"
    fsync: bool = False
    create_directory: bool = False
    directory_permissions: str = "0750"
    timeout: Duration = 1.0
    compaction: Any = unsupported("the gateway's queue files need no compaction: a segment is deleted once "
                                  "every request in it is acknowledged")
    recreate: bool = unsupported("a damaged queue file is never recreated: its torn records are skipped by "
                                 "their CRC and the rest is sent", default=False)
    # Beyond the Collector: the disk all queues of this storage may use together.
    max_size_mib: int = 1024

    def validate(self) -> list[str]:
        errors = []
        if not self.directory:
            errors.append("directory must not be empty")
        if self.max_size_mib <= 0:
            errors.append("max_size_mib must be positive")
        if self.timeout < 0:
            errors.append("timeout must not be negative (0 waits for a locked queue directory with no limit)")
        if not re.fullmatch(r"0?[0-7]{3}", self.directory_permissions):
            errors.append(f"directory_permissions {self.directory_permissions!r}: want an octal mode such as 0750")
        return errors


def queue_dirname(owner: str) -> str:
    return "exporter_" + re.sub(r"[^A-Za-z0-9_.-]", "_", owner.replace("/", "_"))


class FileStorage:
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self.limit = self.config.max_size_mib * MIB
        self.used = 0
        self._used_gauge = settings.telemetry.storage_used.labels(settings.id)
        settings.telemetry.storage_capacity.labels(settings.id).set(self.limit)
        self._stores: list[DiskStore] = []

    async def start(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        path = Path(self.config.directory)
        if not path.is_dir():
            if not self.config.create_directory:
                raise RuntimeError(f"{self.id}: directory {path} does not exist (create it, or set create_directory)")
            path.mkdir(parents=True, mode=int(self.config.directory_permissions, 8), exist_ok=True)
        if not os.access(path, os.W_OK):
            raise RuntimeError(f"{self.id}: directory {path} is not writable")

    # Budget
    def refusal(self, nbytes: int) -> str | None:
        if self.used + nbytes > self.limit:
            return f"{self.id} is full ({self.used} of {self.limit} bytes used)"
        return None

    def add(self, nbytes: int) -> None:
        self.used = max(0, self.used + nbytes)
        self._used_gauge.set(self.used)

    async def open_queue(self, owner: str) -> DiskStore:
        """The store for one exporter's queue; opened (locked, waiting up to `timeout` for another process
        to let go of it) here, loaded by the queue."""
        store = DiskStore(Path(self.config.directory) / queue_dirname(owner), self.config.fsync, self,
                          segment_bytes=min(8 * MIB, max(64 * 1024, self.limit // 16)))
        await store.open_within(self.config.timeout)
        self._stores.append(store)
        return store

    def ready(self) -> None:
        pass  # nothing of this extension changes when the pipelines start or stop taking data

    def not_ready(self) -> None:
        pass

    async def shutdown(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()


def create(settings: Settings[Config]) -> FileStorage:
    return FileStorage(settings)


FACTORY = ExtensionFactory(type="file_storage", config=Config, create=create, roles=frozenset({"storage"}))
