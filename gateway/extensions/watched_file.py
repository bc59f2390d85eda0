"""A file an extension re-reads when it changes (tokens, htpasswd): its identity, and a watch loop.

A file is "changed" when the file its path resolves to has another device, inode, size or mtime; a
Kubernetes ConfigMap/Secret update (the `..data` symlink swapped to a new directory) changes the
resolved inode, so it is seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

log = logging.getLogger("gateway.extension")

FileKey = tuple[int, int, int, int]


def file_key(path: str) -> FileKey | None:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link shows as a new inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


async def watch(interval: float, stop: asyncio.Event, check: Callable[[], object]) -> None:
    """Call `check` every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if not stop.is_set():
            check()


def read_text(path: str, owner: str, what: str) -> str | None:
    """The file's text, or None (logged, naming `owner` and `what` the file holds) when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        log.error("%s: cannot read %s %s: %s", owner, what, path, getattr(exc, "strerror", None) or type(exc).__name__)
        return None
